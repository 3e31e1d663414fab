using Microsoft.Data.Sqlite;

namespace Ebpf.Store;

/// <summary>Outcome of <see cref="StoreVerifier.Verify(string, string?, bool, CancellationToken)"/>.</summary>
/// <param name="IsValid">SQLite's integrity check passed (when run) and every link of the hash chain holds.</param>
/// <param name="IntegrityCheck">Result of <c>PRAGMA integrity_check</c> ("ok" when sound; empty when skipped).</param>
/// <param name="RecordsChecked">Journal rows whose link was checked before the first broken one (all of them when valid).</param>
/// <param name="FirstSequence">First stored sequence (0 when empty).</param>
/// <param name="LastSequence">Last stored sequence checked.</param>
/// <param name="BrokenAtSequence">The first record whose link does not hold: it was edited, reordered, or what it chains from is gone.</param>
/// <param name="MissingSequence">When a record was deleted from the middle: the sequence of the missing record the broken one chains from.</param>
/// <param name="Problem">What is wrong, in words.</param>
public sealed record StoreVerification(
    bool IsValid,
    string IntegrityCheck,
    long RecordsChecked,
    ulong FirstSequence,
    ulong LastSequence,
    ulong? BrokenAtSequence,
    ulong? MissingSequence,
    string? Problem);

/// <summary>
/// Walks the journal's hash chain from the retention anchor (or the genesis) and reports the first broken link.
/// Backs <c>ebpf-agent verify --data-dir</c>. Safe to run beside a live agent: it reads a WAL snapshot.
/// </summary>
public static class StoreVerifier
{
    /// <param name="dataDirectory">The agent's data directory.</param>
    /// <param name="fileName">Database file name; defaults to <see cref="EventStoreOptions.FileName"/>'s default.</param>
    /// <param name="integrityCheck">Also run SQLite's <c>PRAGMA integrity_check</c> (reads every page).</param>
    public static StoreVerification Verify(string dataDirectory, string? fileName = null, bool integrityCheck = true, CancellationToken cancellationToken = default)
    {
        string path = Path.Combine(dataDirectory, fileName ?? new EventStoreOptions().FileName);
        if (!File.Exists(path))
            throw new FileNotFoundException($"no store database at '{path}'", path);
        using var connection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = path, Mode = SqliteOpenMode.ReadOnly, Pooling = false,
        }.ToString());
        connection.Open();
        long version = StoreSchema.Scalar(connection, "PRAGMA user_version");
        if (version > StoreSchema.CurrentVersion)
            throw new StoreSchemaException($"the store at '{path}' has schema version {version}, newer than the {StoreSchema.CurrentVersion} this verifier understands");
        if (version == 0)
            throw new StoreSchemaException($"'{path}' is not an Ebpf store (user_version 0)");

        // One read transaction: the chain is checked against a single snapshot even if the agent keeps writing.
        using var tx = connection.BeginTransaction(deferred: true);
        string integrity = "";
        if (integrityCheck)
        {
            using var check = connection.CreateCommand();
            check.Transaction = tx;
            check.CommandText = "PRAGMA integrity_check";
            using var reader = check.ExecuteReader();
            var lines = new List<string>();
            while (reader.Read() && lines.Count < 20) lines.Add(reader.GetString(0));
            integrity = string.Join("; ", lines);
        }

        var anchor = StoreMeta.ReadAnchor(connection);
        byte[] expectedPreviousHash = anchor?.PreviousHash ?? RecordHash.Genesis;
        ulong expectedPreviousSequence = anchor?.PreviousSequence ?? 0;
        using var hasher = new RecordHash();
        long checkedRecords = 0;
        ulong first = 0, last = 0;

        using (var walk = connection.CreateCommand())
        {
            walk.Transaction = tx;
            walk.CommandText = "SELECT sequence, kind, time_ns, payload, prev_sequence, hash FROM journal ORDER BY sequence";
            using var reader = walk.ExecuteReader();
            while (reader.Read())
            {
                cancellationToken.ThrowIfCancellationRequested();
                ulong sequence = (ulong)reader.GetInt64(0);
                if (first == 0) first = sequence;
                int kind = reader.GetInt32(1);
                long timeNs = reader.GetInt64(2);
                byte[] payload = reader.IsDBNull(3) ? [] : (byte[])reader.GetValue(3);
                ulong previousSequence = (ulong)reader.GetInt64(4);
                byte[] stored = reader.IsDBNull(5) ? [] : (byte[])reader.GetValue(5);
                byte[] computed = hasher.Compute(expectedPreviousHash, sequence, kind, timeNs, payload);

                string? problem = null;
                ulong? missing = null;
                if (!computed.AsSpan().SequenceEqual(stored))
                {
                    if (previousSequence != expectedPreviousSequence && previousSequence > expectedPreviousSequence)
                    {
                        missing = previousSequence;
                        problem = $"record {sequence} chains from record {previousSequence}, which is missing (deleted); the previous stored record is {expectedPreviousSequence}";
                    }
                    else
                        problem = $"record {sequence} does not match its hash: its content, sequence, kind or time was changed, or records were reordered";
                }
                else if (previousSequence != expectedPreviousSequence)
                    problem = $"record {sequence} names {previousSequence} as its predecessor but follows {expectedPreviousSequence}: the prev_sequence column was changed";
                else if (anchor is not null && sequence < anchor.Value.FirstSequence)
                    problem = $"record {sequence} lies before the retention anchor {anchor.Value.FirstSequence}";

                if (problem is not null)
                    return new StoreVerification(false, integrity, checkedRecords, first, last, sequence, missing, problem);
                checkedRecords++;
                last = sequence;
                expectedPreviousHash = stored;
                expectedPreviousSequence = sequence;
            }
        }
        bool integrityOk = !integrityCheck || integrity == "ok";
        return new StoreVerification(integrityOk, integrity, checkedRecords, first, last, null, null,
            integrityOk ? null : $"SQLite integrity check failed: {integrity}");
    }
}
