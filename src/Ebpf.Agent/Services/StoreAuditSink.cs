using Ebpf.Agent.Pipeline;
using Ebpf.Api.Streaming;
using Ebpf.Core.Audit;
using Ebpf.Store;
using AuditAppendResult = Ebpf.Core.Audit.AuditAppendResult;
using StoreKey = Ebpf.Store.AuditDedupeKey;

namespace Ebpf.Agent.Services;

/// <summary>
/// Where audit events from the webhook, the log tailer and imports go: durably into the store (which drops
/// retried duplicates by auditID, stage and stage time), then to subscribers, then to the pipeline for the join.
/// The webhook answers 200 once <see cref="AppendAsync"/> returns, i.e. once the batch is committed.
/// </summary>
public sealed class StoreAuditSink(EventStore store, RecordHub hub, NodePipeline? pipeline) : IAuditEventSink
{
    public async ValueTask<AuditAppendResult> AppendAsync(IReadOnlyList<AuditEvent> events, CancellationToken ct)
    {
        if (events.Count == 0)
            return new AuditAppendResult(0, 0);
        var entries = new List<(StoreKey Key, Api.V1.Record Record, ReadOnlyMemory<byte> RawJson)>(events.Count);
        foreach (var e in events)
        {
            var record = RecordMapper.FromAuditEvent(e);
            entries.Add((StoreKey.From(record.AuditEvent), record, e.RawJson));
        }
        var result = await store.AppendAuditAsync(entries, ct).ConfigureAwait(false);
        var fresh = new List<AuditEvent>(result.Appended);
        for (int i = 0; i < entries.Count; i++)
        {
            if (result.IsDuplicate[i] || entries[i].Record.Sequence == 0)
                continue;
            hub.Publish(entries[i].Record);
            fresh.Add(events[i]);
        }
        if (pipeline is not null)
            await pipeline.EnqueueAuditAsync(fresh, ct).ConfigureAwait(false);
        return new AuditAppendResult(result.Appended, result.Duplicates);
    }

}
