namespace Ebpf.Core.Audit;

/// <summary>Limits applied to every audit input. Every value is validated by <see cref="Validate"/>.</summary>
public sealed class AuditParserOptions
{
    /// <summary>
    /// Largest single event (one JSON line, one EventList item, one envelope). Defaults to 3 MiB: etcd caps an object
    /// at 1.5 MiB and a RequestResponse event can carry two of them.
    /// </summary>
    public int MaxEventBytes { get; set; } = 3 * 1024 * 1024;

    /// <summary>Largest whole document (an EventList, a JSON-lines chunk). Defaults to 64 MiB.</summary>
    public int MaxDocumentBytes { get; set; } = 64 * 1024 * 1024;

    /// <summary>
    /// Most items accepted in one EventList; more makes the whole list a document error. Bounds the per-item
    /// bookkeeping a small body of many tiny items could cause. Defaults to 10,000 (kube-apiserver sends at most
    /// --audit-webhook-batch-max-size, default 400).
    /// </summary>
    public int MaxListItems { get; set; } = 10_000;

    /// <summary>JSON nesting depth limit (JsonReaderOptions.MaxDepth). Defaults to 64, System.Text.Json's default.</summary>
    public int MaxDepth { get; set; } = 64;

    /// <summary>Earliest accepted timestamp; older ones are treated as corrupt. Defaults to 2000-01-01T00:00:00Z.</summary>
    public DateTimeOffset MinTimestamp { get; set; } = new(2000, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>Latest accepted timestamp. Defaults to 2200-01-01T00:00:00Z (far future, but not year 9999).</summary>
    public DateTimeOffset MaxTimestamp { get; set; } = new(2200, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>Longest accepted auditID. Clients can choose it (Audit-ID header); defaults to 256 characters.</summary>
    public int MaxAuditIdLength { get; set; } = 256;

    /// <summary>Throws <see cref="ArgumentException"/> with a clear message when a value is out of range.</summary>
    public void Validate()
    {
        if (MaxEventBytes < 1024)
        {
            throw new ArgumentException($"{nameof(MaxEventBytes)} must be at least 1024 (is {MaxEventBytes}).");
        }

        if (MaxDocumentBytes < MaxEventBytes)
        {
            throw new ArgumentException($"{nameof(MaxDocumentBytes)} ({MaxDocumentBytes}) must be at least {nameof(MaxEventBytes)} ({MaxEventBytes}).");
        }

        if (MaxDepth is < 8 or > 1000)
        {
            throw new ArgumentException($"{nameof(MaxDepth)} must be within 8..1000 (is {MaxDepth}).");
        }

        if (MinTimestamp >= MaxTimestamp)
        {
            throw new ArgumentException($"{nameof(MinTimestamp)} must be before {nameof(MaxTimestamp)}.");
        }

        if (MaxListItems < 1)
        {
            throw new ArgumentException($"{nameof(MaxListItems)} must be positive.");
        }

        if (MaxAuditIdLength < 1)
        {
            throw new ArgumentException($"{nameof(MaxAuditIdLength)} must be positive.");
        }
    }
}

/// <summary>One parsed item: an event, or the reason it was rejected. <see cref="Location"/> says where it was.</summary>
public sealed record AuditParseItem(string Location, AuditEvent? Event, string? Rejection)
{
    public bool IsEvent => Event is not null;

    public override string ToString() => Event is not null ? $"{Location}: event {Event.AuditId}/{Event.Stage}" : $"{Location}: rejected: {Rejection}";
}

/// <summary>Outcome of parsing a document holding several items (EventList, JSON lines).</summary>
public sealed class AuditParseBatch
{
    internal AuditParseBatch(IReadOnlyList<AuditParseItem> items, string? documentError)
    {
        Items = items;
        DocumentError = documentError;
        var events = new List<AuditEvent>(items.Count);
        foreach (var item in items)
        {
            if (item.Event is not null)
            {
                events.Add(item.Event);
            }
        }

        Events = events;
        RejectedCount = items.Count - events.Count;
    }

    /// <summary>Every item in document order.</summary>
    public IReadOnlyList<AuditParseItem> Items { get; }

    /// <summary>The accepted events, in document order.</summary>
    public IReadOnlyList<AuditEvent> Events { get; }

    /// <summary>How many items were rejected.</summary>
    public int RejectedCount { get; }

    /// <summary>Set when the document as a whole is unusable (not JSON, not an EventList, too large); then there are no items.</summary>
    public string? DocumentError { get; }
}
