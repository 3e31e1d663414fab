namespace Ebpf.Core.Audit;

/// <summary>
/// Where parsed audit events go (the SQLite store in the agent). The sink owns durability and dedupe on
/// <see cref="AuditDerivedFields.DedupeKey"/>: when AppendAsync completes, the events are durable, and an event whose
/// key was already stored is counted as a duplicate, not stored twice. Receivers acknowledge upstream only after it.
/// </summary>
public interface IAuditEventSink
{
    /// <summary>Durably appends <paramref name="events"/>. Throws <see cref="AuditSinkSaturatedException"/> to ask for a retry later.</summary>
    ValueTask<AuditAppendResult> AppendAsync(IReadOnlyList<AuditEvent> events, CancellationToken ct);
}

/// <summary>Outcome of one append: how many events were new and how many were already stored.</summary>
public readonly record struct AuditAppendResult(int Appended, int Duplicates);

/// <summary>Thrown by a sink that cannot take more events right now (back-pressure); callers retry later.</summary>
public sealed class AuditSinkSaturatedException : Exception
{
    public AuditSinkSaturatedException() : base("The audit event sink is saturated.") { }
    public AuditSinkSaturatedException(string message) : base(message) { }
    public AuditSinkSaturatedException(string message, Exception inner) : base(message, inner) { }

    /// <summary>Suggested delay before retrying, if the sink knows one.</summary>
    public TimeSpan? RetryAfter { get; init; }
}
