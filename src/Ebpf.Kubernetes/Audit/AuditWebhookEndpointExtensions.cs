using Ebpf.Core.Audit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Ebpf.Kubernetes.Audit;

/// <summary>Maps the audit webhook endpoint on Kestrel.</summary>
public static class AuditWebhookEndpointExtensions
{
    /// <summary>Maps POST <paramref name="pattern"/> to <paramref name="receiver"/>.</summary>
    public static IEndpointConventionBuilder MapAuditWebhook(this IEndpointRouteBuilder endpoints, string pattern, AuditWebhookReceiver receiver)
        => endpoints.MapPost(pattern, receiver.HandleAsync).WithDisplayName("Kubernetes audit webhook");

    /// <summary>
    /// Maps POST <paramref name="pattern"/> to a new receiver that appends to the registered <see cref="IAuditEventSink"/>.
    /// The receiver (and its counters) is returned through <paramref name="receiver"/>.
    /// </summary>
    public static IEndpointConventionBuilder MapAuditWebhook(this IEndpointRouteBuilder endpoints, string pattern, AuditWebhookOptions options, out AuditWebhookReceiver receiver)
    {
        var services = endpoints.ServiceProvider;
        receiver = new AuditWebhookReceiver(options, services.GetRequiredService<IAuditEventSink>(), services.GetService<ILogger<AuditWebhookReceiver>>());
        return endpoints.MapAuditWebhook(pattern, receiver);
    }
}
