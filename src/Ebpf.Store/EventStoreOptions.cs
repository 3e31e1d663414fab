namespace Ebpf.Store;

/// <summary>Settings of the <see cref="EventStore"/>. Validated by <see cref="Validate"/> when the store opens.</summary>
public sealed class EventStoreOptions
{
    /// <summary>Directory holding the SQLite database (created if missing). Required.</summary>
    public string DataDirectory { get; set; } = "";

    /// <summary>File name of the database inside <see cref="DataDirectory"/>. Defaults to <c>ebpf-store.db</c>.</summary>
    public string FileName { get; set; } = "ebpf-store.db";

    /// <summary>
    /// Records that <see cref="EventStore.Append"/> may queue ahead of the writer before it starts dropping (and counting).
    /// Defaults to 65 536.
    /// </summary>
    public int QueueCapacity { get; set; } = 65_536;

    /// <summary>Most records committed in one transaction. Defaults to 4 096.</summary>
    public int MaxBatchSize { get; set; } = 4_096;

    /// <summary>
    /// How long the writer waits for a partly filled batch of fire-and-forget records to fill before committing it.
    /// A batch holding a durable append (AppendAsync, AppendAuditAsync, FlushAsync) is committed at once.
    /// Defaults to 20 ms.
    /// </summary>
    public TimeSpan MaxBatchDelay { get; set; } = TimeSpan.FromMilliseconds(20);

    /// <summary>Records older than this are deleted by retention. Defaults to 7 days.</summary>
    public TimeSpan RetentionAge { get; set; } = TimeSpan.FromDays(7);

    /// <summary>
    /// Retention deletes the oldest records while the live data of the database exceeds this many bytes,
    /// down to 90 % of it. Defaults to 1 GiB.
    /// </summary>
    public long RetentionMaxBytes { get; set; } = 1L << 30;

    /// <summary>How often retention runs in the background; <see cref="TimeSpan.Zero"/> disables the timer. Defaults to 5 minutes.</summary>
    public TimeSpan RetentionInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Most records deleted per retention transaction, so writers are never stalled long. Defaults to 50 000.</summary>
    public int RetentionChunkSize { get; set; } = 50_000;

    /// <summary>Rows a lookup returns when the caller asks for 0. Defaults to 100.</summary>
    public int DefaultLimit { get; set; } = 100;

    /// <summary>Upper bound on any lookup's limit. Defaults to 10 000.</summary>
    public int MaxLimit { get; set; } = 10_000;

    /// <summary>Most node events read to build one session's process tree (bounded memory). Defaults to 100 000.</summary>
    public int MaxSessionTreeEvents { get; set; } = 100_000;

    /// <summary>Most connects and most file opens kept per process in a process tree. Defaults to 1 000 each.</summary>
    public int MaxActivitiesPerProcess { get; set; } = 1_000;

    public string DatabasePath => Path.Combine(DataDirectory, FileName);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(DataDirectory))
            throw new ArgumentException("EventStoreOptions.DataDirectory is required (the directory of the store's SQLite database).");
        if (string.IsNullOrWhiteSpace(FileName) || FileName.IndexOfAny(['/', '\\']) >= 0)
            throw new ArgumentException($"EventStoreOptions.FileName '{FileName}' must be a plain file name.");
        Positive(QueueCapacity, nameof(QueueCapacity));
        Positive(MaxBatchSize, nameof(MaxBatchSize));
        Positive(RetentionChunkSize, nameof(RetentionChunkSize));
        Positive(DefaultLimit, nameof(DefaultLimit));
        Positive(MaxLimit, nameof(MaxLimit));
        Positive(MaxSessionTreeEvents, nameof(MaxSessionTreeEvents));
        Positive(MaxActivitiesPerProcess, nameof(MaxActivitiesPerProcess));
        if (MaxBatchDelay < TimeSpan.Zero) throw new ArgumentException("EventStoreOptions.MaxBatchDelay must not be negative.");
        if (RetentionAge <= TimeSpan.Zero) throw new ArgumentException("EventStoreOptions.RetentionAge must be positive.");
        if (RetentionMaxBytes < 1L << 20) throw new ArgumentException("EventStoreOptions.RetentionMaxBytes must be at least 1 MiB.");
        if (RetentionInterval < TimeSpan.Zero) throw new ArgumentException("EventStoreOptions.RetentionInterval must not be negative.");
    }

    private static void Positive(int value, string name)
    {
        if (value <= 0) throw new ArgumentException($"EventStoreOptions.{name} must be positive (was {value}).");
    }
}
