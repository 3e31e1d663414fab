using Microsoft.Data.Sqlite;

namespace Ebpf.Store;

/// <summary>The writer's statements, prepared once on the write connection and reused for every batch.</summary>
internal sealed class WriteCommands : IDisposable
{
    public SqliteCommand InsertJournal { get; }
    public SqliteCommand UpsertSession { get; }
    public SqliteCommand UpsertSessionProcess { get; }
    public SqliteCommand InsertFinding { get; }
    public SqliteCommand InsertAudit { get; }
    public SqliteCommand SetLastSequence { get; }
    private readonly SqliteCommand[] _all;

    public WriteCommands(SqliteConnection connection)
    {
        InsertJournal = Create(connection, """
            INSERT INTO journal(sequence, kind, time_ns, namespace, pod, user, session_id, process_key,
                                audit_id, audit_stage, audit_stage_ns, payload, prev_sequence, hash)
            VALUES($seq, $kind, $time, $ns, $pod, $user, $session, $process, $auditId, $stage, $stageNs, $payload, $prev, $hash)
            """, "$seq", "$kind", "$time", "$ns", "$pod", "$user", "$session", "$process", "$auditId", "$stage", "$stageNs", "$payload", "$prev", "$hash");
        UpsertSession = Create(connection, """
            INSERT INTO sessions(session_id, sequence, user, namespace, pod, start_ns, end_ns, confidence)
            VALUES($id, $seq, $user, $ns, $pod, $start, $end, $confidence)
            ON CONFLICT(session_id) DO UPDATE SET sequence = excluded.sequence, user = excluded.user,
                namespace = excluded.namespace, pod = excluded.pod, start_ns = excluded.start_ns,
                end_ns = excluded.end_ns, confidence = excluded.confidence
            """, "$id", "$seq", "$user", "$ns", "$pod", "$start", "$end", "$confidence");
        UpsertSessionProcess = Create(connection, """
            INSERT INTO session_processes(session_id, process_key, sequence) VALUES($session, $process, $seq)
            ON CONFLICT(session_id, process_key) DO UPDATE SET sequence = excluded.sequence
            """, "$session", "$process", "$seq");
        InsertFinding = Create(connection, """
            INSERT INTO findings(sequence, finding_id, kind, namespace, pod, user, session_id, time_ns)
            VALUES($seq, $id, $kind, $ns, $pod, $user, $session, $time)
            """, "$seq", "$id", "$kind", "$ns", "$pod", "$user", "$session", "$time");
        // OR IGNORE on the unique (audit_id, stage, stage_ns) index is the dedupe: changes() = 0 means duplicate.
        InsertAudit = Create(connection, """
            INSERT OR IGNORE INTO audit_events(sequence, audit_id, stage, stage_ns, namespace, pod, user, time_ns, raw_json)
            VALUES($seq, $auditId, $stage, $stageNs, $ns, $pod, $user, $time, $raw)
            """, "$seq", "$auditId", "$stage", "$stageNs", "$ns", "$pod", "$user", "$time", "$raw");
        SetLastSequence = Create(connection,
            "INSERT INTO meta(key, value) VALUES('last_sequence', $seq) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            "$seq");
        _all = [InsertJournal, UpsertSession, UpsertSessionProcess, InsertFinding, InsertAudit, SetLastSequence];
    }

    public void Enlist(SqliteTransaction? tx)
    {
        foreach (var command in _all) command.Transaction = tx;
    }

    public void Dispose()
    {
        foreach (var command in _all) command.Dispose();
    }

    private static SqliteCommand Create(SqliteConnection connection, string sql, params string[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var name in parameters) command.Parameters.Add(new SqliteParameter(name, DBNull.Value));
        return command;
    }
}

internal static class SqliteCommandExtensions
{
    // Parameters[string] is a linear search with string compares; the writer binds ~20 values per record.
    public static void Set(this SqliteCommand command, string name, object? value)
    {
        var parameters = command.Parameters;
        for (int i = 0; i < parameters.Count; i++)
        {
            var parameter = parameters[i];
            if (ReferenceEquals(parameter.ParameterName, name) || parameter.ParameterName == name)
            {
                parameter.Value = value ?? DBNull.Value;
                return;
            }
        }
        throw new ArgumentException($"no parameter {name}", nameof(name));
    }
}
