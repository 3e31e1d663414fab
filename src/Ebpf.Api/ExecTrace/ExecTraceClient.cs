using Ebpf.Api.Grpc;
using Ebpf.Api.V1;

namespace Ebpf.Api.ExecTrace;

/// <summary>Typed client for <c>ebpf.v1.ExecTrace</c>; one method per rpc.</summary>
public sealed class ExecTraceClient : IDisposable
{
    private static readonly string Prefix = "/" + ExecTraceServiceDefinition.ServiceName + "/";
    private readonly GrpcClient _client;
    private readonly bool _ownsClient;

    public ExecTraceClient(GrpcClientOptions options)
        : this(new GrpcClient(options), ownsClient: true)
    {
    }

    public ExecTraceClient(GrpcClient client, bool ownsClient = false)
    {
        _client = client;
        _ownsClient = ownsClient;
    }

    public IAsyncEnumerable<Record> SubscribeAsync(SubscribeRequest request, GrpcCallOptions options = default) =>
        _client.ServerStreamingAsync(Prefix + "Subscribe", request, Record.Parser, options);

    public Task<ListSessionsResponse> ListSessionsAsync(ListSessionsRequest request, GrpcCallOptions options = default) =>
        _client.UnaryAsync(Prefix + "ListSessions", request, ListSessionsResponse.Parser, options);

    public Task<SessionDetail> GetSessionAsync(GetSessionRequest request, GrpcCallOptions options = default) =>
        _client.UnaryAsync(Prefix + "GetSession", request, SessionDetail.Parser, options);

    public Task<WhoTouchedResponse> WhoTouchedAsync(WhoTouchedRequest request, GrpcCallOptions options = default) =>
        _client.UnaryAsync(Prefix + "WhoTouched", request, WhoTouchedResponse.Parser, options);

    public Task<ListFindingsResponse> ListFindingsAsync(ListFindingsRequest request, GrpcCallOptions options = default) =>
        _client.UnaryAsync(Prefix + "ListFindings", request, ListFindingsResponse.Parser, options);

    public Task<AgentStatus> GetStatusAsync(GetStatusRequest request, GrpcCallOptions options = default) =>
        _client.UnaryAsync(Prefix + "GetStatus", request, AgentStatus.Parser, options);

    public void Dispose()
    {
        if (_ownsClient)
        {
            _client.Dispose();
        }
    }
}
