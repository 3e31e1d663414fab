using System.Collections.Concurrent;
using Ebpf.Core.Audit;

namespace Ebpf.Kubernetes.Tests.Audit;

/// <summary>Test sink: dedupes on the event's dedupe key like the store does, and records every delivery.</summary>
internal sealed class InMemoryAuditSink : IAuditEventSink
{
    private readonly ConcurrentDictionary<AuditDedupeKey, AuditEvent> _stored = new();
    private long _delivered;

    /// <summary>Runs before each append (to block, throw or count).</summary>
    public Func<IReadOnlyList<AuditEvent>, CancellationToken, Task>? BeforeAppend { get; set; }

    public IReadOnlyCollection<AuditEvent> Stored => (IReadOnlyCollection<AuditEvent>)_stored.Values;

    /// <summary>Events handed to AppendAsync that were acknowledged, duplicates included.</summary>
    public long Delivered => Interlocked.Read(ref _delivered);

    public async ValueTask<AuditAppendResult> AppendAsync(IReadOnlyList<AuditEvent> events, CancellationToken ct)
    {
        if (BeforeAppend is { } hook)
        {
            await hook(events, ct);
        }

        int appended = 0, duplicates = 0;
        foreach (var ev in events)
        {
            if (_stored.TryAdd(ev.Derived.DedupeKey, ev))
            {
                appended++;
            }
            else
            {
                duplicates++;
            }
        }

        Interlocked.Add(ref _delivered, events.Count);
        return new AuditAppendResult(appended, duplicates);
    }
}
