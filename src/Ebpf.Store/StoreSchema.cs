using Microsoft.Data.Sqlite;

namespace Ebpf.Store;

/// <summary>
/// The database layout. <c>PRAGMA user_version</c> holds <see cref="CurrentVersion"/>; a database with a higher version
/// was written by a newer agent and is refused rather than guessed at.
/// </summary>
internal static class StoreSchema
{
    public const int CurrentVersion = 1;

    // journal.kind holds Ebpf.Api.V1.RecordKind values. payload is the serialized Record (sequence included), so a
    // replay is byte for byte. hash = SHA-256(previous hash, sequence, kind, time_ns, payload) (see RecordHash);
    // prev_sequence is not hashed: it only lets verify name a deleted record instead of just its successor.
    // The other tables are derived from the journal in the same transaction and point back to it by sequence, so
    // retention (which deletes a prefix of sequences) removes both together.
    private const string CreateV1 = """
        CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
        CREATE TABLE journal(
            sequence INTEGER PRIMARY KEY,
            kind INTEGER NOT NULL,
            time_ns INTEGER NOT NULL,
            namespace TEXT, pod TEXT, user TEXT, session_id TEXT, process_key TEXT,
            audit_id TEXT, audit_stage TEXT, audit_stage_ns INTEGER,
            payload BLOB NOT NULL,
            prev_sequence INTEGER NOT NULL,
            hash BLOB NOT NULL);
        CREATE INDEX journal_process_key ON journal(process_key) WHERE process_key IS NOT NULL;
        CREATE TABLE sessions(
            session_id TEXT PRIMARY KEY,
            sequence INTEGER NOT NULL,
            user TEXT, namespace TEXT, pod TEXT,
            start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL,
            confidence INTEGER NOT NULL) WITHOUT ROWID;
        CREATE INDEX sessions_start ON sessions(start_ns);
        CREATE INDEX sessions_user ON sessions(user, start_ns);
        CREATE INDEX sessions_pod ON sessions(namespace, pod, start_ns);
        CREATE INDEX sessions_sequence ON sessions(sequence);
        CREATE TABLE session_processes(
            session_id TEXT NOT NULL, process_key TEXT NOT NULL, sequence INTEGER NOT NULL,
            PRIMARY KEY(session_id, process_key)) WITHOUT ROWID;
        CREATE INDEX session_processes_sequence ON session_processes(sequence);
        CREATE TABLE findings(
            sequence INTEGER PRIMARY KEY,
            finding_id TEXT, kind TEXT, namespace TEXT, pod TEXT, user TEXT, session_id TEXT,
            time_ns INTEGER NOT NULL);
        CREATE INDEX findings_time ON findings(time_ns);
        CREATE INDEX findings_pod ON findings(namespace, pod, time_ns);
        CREATE TABLE audit_events(
            sequence INTEGER PRIMARY KEY,
            audit_id TEXT NOT NULL, stage TEXT NOT NULL, stage_ns INTEGER NOT NULL,
            namespace TEXT, pod TEXT, user TEXT,
            time_ns INTEGER NOT NULL,
            raw_json BLOB);
        CREATE UNIQUE INDEX audit_events_dedupe ON audit_events(audit_id, stage, stage_ns);
        CREATE INDEX audit_events_pod ON audit_events(namespace, pod, time_ns);
        """;

    /// <summary>
    /// Checks the version of an existing database (refusing a newer or foreign one) before anything writes to it.
    /// Returns true when the database is empty and needs <see cref="Create"/>.
    /// </summary>
    public static bool CheckVersion(SqliteConnection connection, string path)
    {
        long version = Scalar(connection, "PRAGMA user_version");
        if (version > CurrentVersion)
            throw new StoreSchemaException(
                $"the store at '{path}' has schema version {version}, newer than the {CurrentVersion} this agent understands; " +
                "run a newer agent, or point the data directory elsewhere (the file is left untouched)");
        if (version == CurrentVersion) return false;
        if (Scalar(connection, "SELECT count(*) FROM sqlite_schema") != 0)
            throw new StoreSchemaException($"'{path}' is a SQLite database but not an Ebpf store (user_version 0 with tables in it)");
        return true;
    }

    /// <summary>
    /// Must run before the database is switched to WAL: auto_vacuum can only be chosen while the file is still empty
    /// (https://www.sqlite.org/pragma.html#pragma_auto_vacuum). INCREMENTAL lets retention hand freed pages back.
    /// </summary>
    public static void PrepareEmpty(SqliteConnection connection) => Execute(connection, "PRAGMA auto_vacuum=INCREMENTAL");

    public static void Create(SqliteConnection connection)
    {
        using var tx = connection.BeginTransaction();
        using (var create = connection.CreateCommand())
        {
            create.Transaction = tx;
            create.CommandText = CreateV1 + $"\nPRAGMA user_version={CurrentVersion};";
            create.ExecuteNonQuery();
        }
        tx.Commit();
    }

    public static long Scalar(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        object? value = command.ExecuteScalar();
        return value is null or DBNull ? 0 : Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture);
    }

    public static void Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }
}
