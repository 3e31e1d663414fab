using Ebpf.Api.Grpc;
using Ebpf.Api.V1;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Ebpf.Api.ExecTrace;

/// <summary>
/// The server side of <c>ebpf.v1.ExecTrace</c>: one method per rpc. End a call with a status by throwing
/// <see cref="GrpcStatusException"/> (e.g. NOT_FOUND); any other exception becomes INTERNAL with a generic message.
/// <see cref="GrpcCallContext.CancellationToken"/> fires on client cancel and on the deadline.
/// </summary>
public interface IExecTraceService
{
    /// <summary>Records matching the request; the sequence is enumerated with the call's cancellation token.</summary>
    IAsyncEnumerable<Record> SubscribeAsync(SubscribeRequest request, GrpcCallContext context);

    Task<ListSessionsResponse> ListSessionsAsync(ListSessionsRequest request, GrpcCallContext context);

    Task<SessionDetail> GetSessionAsync(GetSessionRequest request, GrpcCallContext context);

    Task<WhoTouchedResponse> WhoTouchedAsync(WhoTouchedRequest request, GrpcCallContext context);

    Task<ListFindingsResponse> ListFindingsAsync(ListFindingsRequest request, GrpcCallContext context);

    Task<AgentStatus> GetStatusAsync(GetStatusRequest request, GrpcCallContext context);
}

/// <summary>The method table of <c>ebpf.v1.ExecTrace</c>, bound to an implementation.</summary>
public static class ExecTraceServiceDefinition
{
    /// <summary>Full service name, from the proto descriptor so it cannot drift from exectrace.proto.</summary>
    public static string ServiceName { get; } = ExectraceReflection.Descriptor.Services[0].FullName;

    public static GrpcServiceDefinition Create(IExecTraceService service) => new(ServiceName,
    [
        new ServerStreamingMethod<SubscribeRequest, Record>("Subscribe", SubscribeRequest.Parser, service.SubscribeAsync),
        new UnaryMethod<ListSessionsRequest, ListSessionsResponse>("ListSessions", ListSessionsRequest.Parser, service.ListSessionsAsync),
        new UnaryMethod<GetSessionRequest, SessionDetail>("GetSession", GetSessionRequest.Parser, service.GetSessionAsync),
        new UnaryMethod<WhoTouchedRequest, WhoTouchedResponse>("WhoTouched", WhoTouchedRequest.Parser, service.WhoTouchedAsync),
        new UnaryMethod<ListFindingsRequest, ListFindingsResponse>("ListFindings", ListFindingsRequest.Parser, service.ListFindingsAsync),
        new UnaryMethod<GetStatusRequest, AgentStatus>("GetStatus", GetStatusRequest.Parser, service.GetStatusAsync),
    ]);

    /// <summary>
    /// Maps <c>ebpf.v1.ExecTrace</c>. The implementation defaults to the <see cref="IExecTraceService"/> registered in DI.
    /// </summary>
    public static IEndpointConventionBuilder MapExecTraceService(
        this IEndpointRouteBuilder endpoints, IExecTraceService? service = null, GrpcServerOptions? options = null)
    {
        service ??= endpoints.ServiceProvider.GetRequiredService<IExecTraceService>();
        return endpoints.MapGrpcService(Create(service), options);
    }
}
