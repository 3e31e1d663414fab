using Ebpf.Api.V1;

namespace Ebpf.Store;

/// <summary>
/// Identity of one audit event stage as the API server sends it: the same (auditID, stage, stageTimestamp)
/// arrives again when the webhook batch is retried or a log file is re-read, and must be stored once.
/// </summary>
public readonly record struct AuditDedupeKey(string AuditId, string Stage, long StageTimestampNanos)
{
    /// <summary>The key of an already reduced audit event.</summary>
    public static AuditDedupeKey From(AuditEvent auditEvent) =>
        new(auditEvent.AuditId, auditEvent.Stage, TimeConversion.ToUnixNanos(auditEvent.StageTimestamp));
}

/// <summary>Outcome of <see cref="EventStore.AppendAuditAsync"/>; returned only after the batch committed.</summary>
/// <param name="Appended">Records journaled (their <c>sequence</c> is set).</param>
/// <param name="Duplicates">Records whose key was already stored; not journaled, their <c>sequence</c> is 0.</param>
/// <param name="IsDuplicate">Per input entry, in input order.</param>
public sealed record AuditAppendResult(int Appended, int Duplicates, IReadOnlyList<bool> IsDuplicate);

/// <summary>What one retention pass deleted.</summary>
/// <param name="DeletedRecords">Journal rows deleted.</param>
/// <param name="FirstRetainedSequence">Anchor of the chain after the pass; 0 if nothing was ever deleted.</param>
public sealed record RetentionResult(long DeletedRecords, ulong FirstRetainedSequence);

/// <summary>Point-in-time copy of the store's counters (exported as agent metrics).</summary>
public sealed record EventStoreCounters(
    long Appended,
    long Dropped,
    long AuditDuplicates,
    long WriteFailures,
    long MalformedRowsSkipped,
    long RetentionDeleted,
    int QueueLength);

/// <summary>The database was written by a newer version of the agent; it is not opened, to avoid damaging it.</summary>
public sealed class StoreSchemaException(string message) : Exception(message);

/// <summary>A session id prefix matched more than one session.</summary>
public sealed class AmbiguousSessionIdException(string prefix, IReadOnlyList<string> candidates)
    : Exception($"session id prefix '{prefix}' is ambiguous: it matches {string.Join(", ", candidates)}{(candidates.Count >= AmbiguousCandidateLimit ? ", ..." : "")}; give more characters")
{
    internal const int AmbiguousCandidateLimit = 5;
    public string Prefix { get; } = prefix;
    public IReadOnlyList<string> Candidates { get; } = candidates;
}

internal static class TimeConversion
{
    // Timestamps come from outside (audit JSON, kernel clocks): clamp instead of overflowing.
    private const long MaxSeconds = long.MaxValue / 1_000_000_000 - 1;

    public static long ToUnixNanos(Google.Protobuf.WellKnownTypes.Timestamp? ts)
    {
        if (ts is null) return 0;
        if (ts.Seconds >= MaxSeconds) return long.MaxValue;
        if (ts.Seconds <= -MaxSeconds) return long.MinValue;
        return ts.Seconds * 1_000_000_000 + ts.Nanos;
    }

    public static long ToUnixNanos(DateTimeOffset time) => (time.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) * 100;

    public static Google.Protobuf.WellKnownTypes.Timestamp ToTimestamp(DateTimeOffset time) =>
        Google.Protobuf.WellKnownTypes.Timestamp.FromDateTimeOffset(time);
}
