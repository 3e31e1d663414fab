using Ebpf.Core.Audit;

namespace Ebpf.Kubernetes.Audit;

/// <summary>
/// An <see cref="IAuditEventSink"/> that hands every committed batch to a callback (the forwarder's
/// <see cref="AuditEventForwarder.Offer"/>) once the inner sink has stored it. For sources other than the webhook
/// receiver, which has the same hook built in: the audit log tailer on a control-plane node reads the events of every
/// node's pods, just like the webhook.
/// </summary>
public sealed class ForwardingAuditSink(IAuditEventSink inner, Action<IReadOnlyList<AuditEvent>> committed) : IAuditEventSink
{
    public async ValueTask<AuditAppendResult> AppendAsync(IReadOnlyList<AuditEvent> events, CancellationToken ct)
    {
        var result = await inner.AppendAsync(events, ct).ConfigureAwait(false);
        // Duplicates too (a replay after a restart may be the batch whose forwarding was lost): the peer dedupes.
        if (events.Count > 0) committed(events);
        return result;
    }
}
