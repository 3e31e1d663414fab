using Microsoft.Data.Sqlite;

namespace Ebpf.Store;

public sealed partial class EventStore
{
    // Size retention deletes down to this share of RetentionMaxBytes so it does not run again on the next append.
    private const double SizeRetentionTarget = 0.9;

    /// <summary>
    /// Deletes the oldest records: everything before the first record younger than <see cref="EventStoreOptions.RetentionAge"/>,
    /// then more while the live data exceeds <see cref="EventStoreOptions.RetentionMaxBytes"/>. Always a prefix of the
    /// journal, so the remaining chain still verifies from the anchor written in the same transaction.
    /// </summary>
    private RetentionResult ApplyRetention()
    {
        long deleted = 0;
        long cutoffNs = TimeConversion.ToUnixNanos(_time.GetUtcNow() - _options.RetentionAge);
        // Record times are not strictly monotonic in sequence order; the prefix stops at the first young record.
        ulong? cut = FirstSequence("SELECT sequence FROM journal WHERE time_ns >= $p ORDER BY sequence LIMIT 1", cutoffNs)
            ?? (_lastJournaledSequence + 1);
        deleted += DeleteBefore(cut.Value);

        for (int pass = 0; pass < 4; pass++)
        {
            long live = LiveBytes();
            if (live <= _options.RetentionMaxBytes) break;
            long rows = StoreSchema.Scalar(_writeConnection, "SELECT count(*) FROM journal");
            if (rows == 0) break;
            double excess = 1.0 - (_options.RetentionMaxBytes * SizeRetentionTarget / live);
            long toDelete = Math.Clamp((long)Math.Ceiling(rows * excess), 1, rows);
            ulong sizeCut = FirstSequence("SELECT sequence FROM journal ORDER BY sequence LIMIT 1 OFFSET $p", toDelete)
                ?? (_lastJournaledSequence + 1);
            deleted += DeleteBefore(sizeCut);
        }

        if (deleted > 0)
        {
            // Hand freed pages back to the file system and truncate the log the deletes went through.
            StoreSchema.Execute(_writeConnection, "PRAGMA incremental_vacuum");
            StoreSchema.Execute(_writeConnection, "PRAGMA wal_checkpoint(TRUNCATE)");
            Interlocked.Add(ref _retentionDeleted, deleted);
        }
        var anchor = StoreMeta.ReadAnchor(_writeConnection);
        var result = new RetentionResult(deleted, anchor?.FirstSequence ?? 0);
        if (deleted > 0) StoreLog.RetentionDeleted(_logger, deleted, result.FirstRetainedSequence);
        return result;
    }

    private long DeleteBefore(ulong cut)
    {
        long deleted = 0;
        while (true)
        {
            ulong? first = FirstSequence("SELECT min(sequence) FROM journal WHERE sequence >= $p", 0);
            if (first is null || first.Value >= cut) return deleted;
            // Last sequence of this chunk: the chunk-th row below the cut, or the last row below it.
            ulong chunkEnd = FirstSequence(
                    $"SELECT sequence FROM journal WHERE sequence < {(long)cut} ORDER BY sequence LIMIT 1 OFFSET $p",
                    _options.RetentionChunkSize - 1)
                ?? FirstSequence("SELECT max(sequence) FROM journal WHERE sequence < $p", (long)cut)!.Value;

            using var tx = _writeConnection.BeginTransaction();
            byte[] lastDeletedHash;
            using (var read = _writeConnection.CreateCommand())
            {
                read.Transaction = tx;
                read.CommandText = "SELECT hash FROM journal WHERE sequence = $p";
                read.Parameters.AddWithValue("$p", (long)chunkEnd);
                lastDeletedHash = (byte[])read.ExecuteScalar()!;
            }
            foreach (var table in (ReadOnlySpan<string>)["journal", "sessions", "session_processes", "findings", "audit_events"])
            {
                using var delete = _writeConnection.CreateCommand();
                delete.Transaction = tx;
                delete.CommandText = $"DELETE FROM {table} WHERE sequence <= $p";
                delete.Parameters.AddWithValue("$p", (long)chunkEnd);
                int changed = delete.ExecuteNonQuery();
                if (table == "journal") deleted += changed;
            }
            StoreMeta.Write(_writeConnection, tx, StoreMeta.AnchorSequenceKey, (long)chunkEnd + 1);
            StoreMeta.Write(_writeConnection, tx, StoreMeta.AnchorPreviousSequenceKey, (long)chunkEnd);
            StoreMeta.Write(_writeConnection, tx, StoreMeta.AnchorPreviousHashKey, lastDeletedHash);
            tx.Commit();
        }
    }

    private ulong? FirstSequence(string sql, long parameter)
    {
        using var command = _writeConnection.CreateCommand();
        command.CommandText = sql;
        command.Parameters.AddWithValue("$p", parameter);
        object? value = command.ExecuteScalar();
        return value is long l ? (ulong)l : null;
    }

    /// <summary>Bytes in use by the database: pages minus free pages (deleted rows free pages; the file keeps them).</summary>
    private long LiveBytes()
    {
        long pageSize = StoreSchema.Scalar(_writeConnection, "PRAGMA page_size");
        long pages = StoreSchema.Scalar(_writeConnection, "PRAGMA page_count");
        long free = StoreSchema.Scalar(_writeConnection, "PRAGMA freelist_count");
        return (pages - free) * pageSize;
    }
}
