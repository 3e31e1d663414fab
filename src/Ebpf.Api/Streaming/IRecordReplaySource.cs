using Ebpf.Api.V1;

namespace Ebpf.Api.Streaming;

/// <summary>Stored records, read back in sequence order for subscribers that resume (implemented by the store).</summary>
public interface IRecordReplaySource
{
    /// <summary>
    /// Up to <paramref name="max"/> records with <c>sequence &gt;= fromSequence</c>, in ascending sequence order.
    /// Returning fewer than <paramref name="max"/> means the end of what is stored right now.
    /// </summary>
    IAsyncEnumerable<Record> ReplayAsync(ulong fromSequence, int max, CancellationToken cancellationToken);
}
