using Ebpf.Core.Audit;

namespace Ebpf.Kubernetes.Audit;

/// <summary>Settings of <see cref="AuditLogTailer"/>.</summary>
public sealed class AuditLogTailerOptions
{
    /// <summary>The API server's <c>--audit-log-path</c> (JSON lines). Required.</summary>
    public string Path { get; set; } = string.Empty;

    /// <summary>Where the read position is persisted (atomically, after the sink acknowledged). Required.</summary>
    public string CheckpointPath { get; set; } = string.Empty;

    /// <summary>How often the file is checked for new data, rotation and truncation. Defaults to 1 second.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Most events handed to the sink at once. Defaults to 400 (the API server's webhook batch size).</summary>
    public int MaxBatchEvents { get; set; } = 400;

    /// <summary>Bytes read per read call. Defaults to 256 KiB.</summary>
    public int ReadChunkBytes { get; set; } = 256 * 1024;

    /// <summary>
    /// Bytes at the start of a file whose SHA-256 identifies it in the checkpoint together with device and inode
    /// (inodes are reused after deletion). Defaults to 1024.
    /// </summary>
    public int HeadHashBytes { get; set; } = 1024;

    /// <summary>Parsing limits; <see cref="AuditParserOptions.MaxEventBytes"/> is the longest line. Defaults to the parser defaults.</summary>
    public AuditParserOptions Parser { get; set; } = new();

    /// <summary>Throws <see cref="ArgumentException"/> with a clear message when the settings cannot work.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Path) || string.IsNullOrWhiteSpace(CheckpointPath))
        {
            throw new ArgumentException($"{nameof(Path)} and {nameof(CheckpointPath)} are required.");
        }

        if (PollInterval <= TimeSpan.Zero || MaxBatchEvents < 1 || ReadChunkBytes < 4096 || HeadHashBytes < 16)
        {
            throw new ArgumentException($"{nameof(PollInterval)} must be positive, {nameof(MaxBatchEvents)} >= 1, {nameof(ReadChunkBytes)} >= 4096, {nameof(HeadHashBytes)} >= 16.");
        }

        Parser.Validate();
    }
}

/// <summary>Tailer counters (monotonic).</summary>
public sealed class AuditLogTailerCounters
{
    internal long _lines, _appended, _duplicates, _rejected, _rotations, _truncations, _sinkFailures, _resumeGaps;

    /// <summary>Non-blank lines read.</summary>
    public long Lines => Volatile.Read(ref _lines);

    public long Appended => Volatile.Read(ref _appended);

    public long Duplicates => Volatile.Read(ref _duplicates);

    /// <summary>Lines rejected by the parser (or over the line limit).</summary>
    public long Rejected => Volatile.Read(ref _rejected);

    /// <summary>Rotations or recreations followed (the path pointed to a new file).</summary>
    public long Rotations => Volatile.Read(ref _rotations);

    /// <summary>Truncations detected (size shrank or the first bytes changed): reading restarted at 0.</summary>
    public long Truncations => Volatile.Read(ref _truncations);

    /// <summary>Sink failures; the unacknowledged lines are read again on the next poll.</summary>
    public long SinkFailures => Volatile.Read(ref _sinkFailures);

    /// <summary>Restarts where the checkpointed file could not be found again (data written meanwhile may be missed).</summary>
    public long ResumeGaps => Volatile.Read(ref _resumeGaps);
}
