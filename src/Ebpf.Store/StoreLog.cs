using Microsoft.Extensions.Logging;

namespace Ebpf.Store;

// Event ids 5000-5099 belong to the store.
internal static partial class StoreLog
{
    [LoggerMessage(5000, LogLevel.Information, "Store opened at {Path}: schema {Version}, last sequence {LastSequence}")]
    public static partial void Opened(ILogger logger, string path, int version, ulong lastSequence);

    [LoggerMessage(5001, LogLevel.Error, "Store batch of {Records} records failed to commit; the records are lost")]
    public static partial void BatchFailed(ILogger logger, int records, Exception exception);

    [LoggerMessage(5002, LogLevel.Warning, "Store queue full: {Dropped} records dropped so far")]
    public static partial void QueueFull(ILogger logger, long dropped);

    [LoggerMessage(5003, LogLevel.Information, "Store retention deleted {Deleted} records; first retained sequence {FirstRetained}")]
    public static partial void RetentionDeleted(ILogger logger, long deleted, ulong firstRetained);

    [LoggerMessage(5004, LogLevel.Error, "Store retention failed")]
    public static partial void RetentionFailed(ILogger logger, Exception exception);

    [LoggerMessage(5005, LogLevel.Warning, "Store skipped an unreadable row at sequence {Sequence} in {Table}")]
    public static partial void MalformedRow(ILogger logger, long sequence, string table);
}
