using System.Runtime.CompilerServices;
using System.Text;
using Ebpf.Api.V1;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Data.Sqlite;

namespace Ebpf.Store;

public sealed partial class EventStore
{
    private const int ReplayPageSize = 1_000;

    /// <summary>Sessions matching every given filter (null or empty: any), newest start first. Since/until bound the start.</summary>
    public IReadOnlyList<Session> ListSessions(string? user, string? @namespace, string? pod, DateTimeOffset? since, DateTimeOffset? until, int limit)
    {
        using var connection = OpenReadConnection();
        using var command = connection.CreateCommand();
        var sql = new StringBuilder("SELECT s.sequence, j.payload FROM sessions s JOIN journal j ON j.sequence = s.sequence WHERE 1 = 1");
        AddFilter(command, sql, "s.user", user);
        AddFilter(command, sql, "s.namespace", @namespace);
        AddFilter(command, sql, "s.pod", pod);
        AddRange(command, sql, "s.start_ns", since, until);
        sql.Append(" ORDER BY s.start_ns DESC, s.sequence DESC LIMIT $limit");
        command.Parameters.AddWithValue("$limit", Limit(limit));
        command.CommandText = sql.ToString();
        return ReadRecords(command, "sessions", Record.BodyOneofCase.Session).Select(r => r.Session).ToList();
    }

    /// <summary>The gRPC request form of <see cref="ListSessions(string?, string?, string?, DateTimeOffset?, DateTimeOffset?, int)"/>.</summary>
    public ListSessionsResponse ListSessions(ListSessionsRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var response = new ListSessionsResponse();
        response.Sessions.AddRange(ListSessions(request.User, request.Namespace, request.Pod,
            request.Since?.ToDateTimeOffset(), request.Until?.ToDateTimeOffset(), (int)Math.Min(request.Limit, int.MaxValue)));
        return response;
    }

    /// <summary>
    /// The latest version of a session, by full id or unique prefix, with its process tree; null when nothing matches.
    /// Throws <see cref="AmbiguousSessionIdException"/> when a prefix matches several sessions.
    /// </summary>
    public SessionDetail? GetSession(string idOrPrefix)
    {
        if (string.IsNullOrWhiteSpace(idOrPrefix)) throw new ArgumentException("a session id or prefix is required", nameof(idOrPrefix));
        using var connection = OpenReadConnection();
        // A read transaction: the session and its events come from one snapshot.
        using var tx = connection.BeginTransaction(deferred: true);
        string? id = ResolveSessionId(connection, tx, idOrPrefix);
        if (id is null) return null;

        Session? session;
        using (var command = connection.CreateCommand())
        {
            command.Transaction = tx;
            command.CommandText = "SELECT s.sequence, j.payload FROM sessions s JOIN journal j ON j.sequence = s.sequence WHERE s.session_id = $id";
            command.Parameters.AddWithValue("$id", id);
            session = ReadRecords(command, "sessions", Record.BodyOneofCase.Session).FirstOrDefault()?.Session;
        }
        if (session is null) return null;

        var processKeys = new List<string>();
        using (var command = connection.CreateCommand())
        {
            command.Transaction = tx;
            command.CommandText = "SELECT process_key FROM session_processes WHERE session_id = $id ORDER BY sequence LIMIT $limit";
            command.Parameters.AddWithValue("$id", id);
            command.Parameters.AddWithValue("$limit", _options.MaxSessionTreeEvents);
            using var reader = command.ExecuteReader();
            while (reader.Read()) processKeys.Add(reader.GetString(0));
        }
        if (session.RootProcessKey.Length > 0)
        {
            processKeys.Remove(session.RootProcessKey);
            processKeys.Insert(0, session.RootProcessKey);
        }

        var builder = new ProcessTreeBuilder(_options.MaxActivitiesPerProcess);
        var events = new List<Record>();
        int budget = _options.MaxSessionTreeEvents;
        using (var command = connection.CreateCommand())
        {
            command.Transaction = tx;
            command.CommandText = $"SELECT sequence, payload FROM journal WHERE process_key = $key AND kind = {(int)RecordKind.NodeEvent} ORDER BY sequence LIMIT $limit";
            var key = command.Parameters.Add("$key", SqliteType.Text);
            var limit = command.Parameters.Add("$limit", SqliteType.Integer);
            foreach (var processKey in processKeys)
            {
                if (budget <= 0) break;
                key.Value = processKey;
                limit.Value = budget;
                var read = ReadRecords(command, "journal", Record.BodyOneofCase.NodeEvent);
                budget -= read.Count;
                events.AddRange(read);
            }
        }
        // Sequence order across processes, so "last exec wins" and start times follow the journal.
        events.Sort((a, b) => a.Sequence.CompareTo(b.Sequence));
        foreach (var processKey in processKeys) builder.Ensure(processKey);
        foreach (var record in events) builder.Add(record.NodeEvent, record.Time);

        var detail = new SessionDetail { Session = session };
        detail.Processes.AddRange(builder.Build(session.RootProcessKey));
        return detail;
    }

    /// <summary>Audit events on a pod (resource "pods": exec, attach, get, delete ...) and the sessions in it, newest first.</summary>
    public WhoTouchedResponse WhoTouched(string @namespace, string? pod, DateTimeOffset? since, int limit)
    {
        if (string.IsNullOrEmpty(@namespace)) throw new ArgumentException("a namespace is required", nameof(@namespace));
        var response = new WhoTouchedResponse();
        using (var connection = OpenReadConnection())
        using (var command = connection.CreateCommand())
        {
            var sql = new StringBuilder("SELECT a.sequence, j.payload FROM audit_events a JOIN journal j ON j.sequence = a.sequence WHERE 1 = 1");
            AddFilter(command, sql, "a.namespace", @namespace);
            AddFilter(command, sql, "a.pod", pod);
            AddRange(command, sql, "a.time_ns", since, null);
            sql.Append(" ORDER BY a.time_ns DESC, a.sequence DESC LIMIT $limit");
            command.Parameters.AddWithValue("$limit", Limit(limit));
            command.CommandText = sql.ToString();
            response.AuditEvents.AddRange(ReadRecords(command, "audit_events", Record.BodyOneofCase.AuditEvent).Select(r => r.AuditEvent));
        }
        response.Sessions.AddRange(ListSessions(null, @namespace, pod, since, null, limit));
        return response;
    }

    public WhoTouchedResponse WhoTouched(WhoTouchedRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return WhoTouched(request.Namespace, request.Pod, request.Since?.ToDateTimeOffset(), (int)Math.Min(request.Limit, int.MaxValue));
    }

    /// <summary>Findings matching every given filter (null or empty: any), newest first.</summary>
    public IReadOnlyList<Finding> ListFindings(string? @namespace, string? pod, string? kind, DateTimeOffset? since, int limit)
    {
        using var connection = OpenReadConnection();
        using var command = connection.CreateCommand();
        var sql = new StringBuilder("SELECT f.sequence, j.payload FROM findings f JOIN journal j ON j.sequence = f.sequence WHERE 1 = 1");
        AddFilter(command, sql, "f.namespace", @namespace);
        AddFilter(command, sql, "f.pod", pod);
        AddFilter(command, sql, "f.kind", kind);
        AddRange(command, sql, "f.time_ns", since, null);
        sql.Append(" ORDER BY f.time_ns DESC, f.sequence DESC LIMIT $limit");
        command.Parameters.AddWithValue("$limit", Limit(limit));
        command.CommandText = sql.ToString();
        return ReadRecords(command, "findings", Record.BodyOneofCase.Finding).Select(r => r.Finding).ToList();
    }

    public ListFindingsResponse ListFindings(ListFindingsRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var response = new ListFindingsResponse();
        response.Findings.AddRange(ListFindings(request.Namespace, request.Pod, request.Kind, request.Since?.ToDateTimeOffset(),
            (int)Math.Min(request.Limit, int.MaxValue)));
        return response;
    }

    /// <summary>
    /// Stored records with sequence ≥ <paramref name="fromSequence"/> in sequence order, exactly as appended (parsed from
    /// the stored bytes), at most <paramref name="max"/> of them (0: no limit). Read page by page, so memory stays bounded;
    /// records appended while replaying are included until the caller stops. Rows that no longer parse are skipped and counted.
    /// </summary>
    public async IAsyncEnumerable<Record> ReplayAsync(ulong fromSequence, int max = 0, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        long remaining = max <= 0 ? long.MaxValue : max;
        ulong next = fromSequence;
        while (remaining > 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int pageSize = (int)Math.Min(ReplayPageSize, remaining);
            var (page, lastRow, rows) = ReadReplayPage(next, pageSize);
            foreach (var record in page)
            {
                yield return record;
                remaining--;
            }
            if (rows < pageSize) yield break;
            next = lastRow + 1;
            await Task.Yield();
        }
    }

    private (List<Record> Page, ulong LastRow, int Rows) ReadReplayPage(ulong from, int pageSize)
    {
        using var connection = OpenReadConnection();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT sequence, payload FROM journal WHERE sequence >= $from ORDER BY sequence LIMIT $limit";
        command.Parameters.AddWithValue("$from", (long)Math.Min(from, long.MaxValue));
        command.Parameters.AddWithValue("$limit", pageSize);
        var page = new List<Record>(pageSize);
        ulong last = from;
        int rows = 0;
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            rows++;
            last = (ulong)reader.GetInt64(0);
            var record = Parse(reader, "journal", null);
            if (record is not null) page.Add(record);
        }
        return (page, last, rows);
    }

    private string? ResolveSessionId(SqliteConnection connection, SqliteTransaction tx, string idOrPrefix)
    {
        using var command = connection.CreateCommand();
        command.Transaction = tx;
        command.CommandText = "SELECT session_id FROM sessions WHERE session_id = $id";
        command.Parameters.AddWithValue("$id", idOrPrefix);
        if (command.ExecuteScalar() is string exact) return exact;

        // Prefix as an index range: BINARY collation compares UTF-8 bytes, and U+10FFFF encodes above any other character.
        command.CommandText = $"SELECT session_id FROM sessions WHERE session_id > $id AND session_id < $upper ORDER BY session_id LIMIT {AmbiguousSessionIdException.AmbiguousCandidateLimit}";
        command.Parameters.AddWithValue("$upper", idOrPrefix + "\U0010FFFF");
        var matches = new List<string>();
        using (var reader = command.ExecuteReader())
            while (reader.Read()) matches.Add(reader.GetString(0));
        return matches.Count switch
        {
            0 => null,
            1 => matches[0],
            _ => throw new AmbiguousSessionIdException(idOrPrefix, matches),
        };
    }

    private List<Record> ReadRecords(SqliteCommand command, string table, Record.BodyOneofCase expected)
    {
        var records = new List<Record>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            var record = Parse(reader, table, expected);
            if (record is not null) records.Add(record);
        }
        return records;
    }

    /// <summary>Column 0 is the sequence, column 1 the payload. A row that does not parse (or has the wrong body) is skipped and counted.</summary>
    private Record? Parse(SqliteDataReader reader, string table, Record.BodyOneofCase? expected)
    {
        long sequence = reader.GetInt64(0);
        try
        {
            if (reader.IsDBNull(1) || reader.GetValue(1) is not byte[] payload)
            {
                CountMalformed(sequence, table);
                return null;
            }
            var record = Record.Parser.ParseFrom(payload);
            if ((expected is not null && record.BodyCase != expected) || Ebpf.Api.RecordKinds.Of(record) == RecordKind.Unspecified)
            {
                CountMalformed(sequence, table);
                return null;
            }
            return record;
        }
        catch (InvalidProtocolBufferException)
        {
            CountMalformed(sequence, table);
            return null;
        }
    }

    private int Limit(int requested) => requested <= 0 ? _options.DefaultLimit : Math.Min(requested, _options.MaxLimit);

    private static void AddFilter(SqliteCommand command, StringBuilder sql, string column, string? value)
    {
        if (string.IsNullOrEmpty(value)) return;
        string name = "$f" + command.Parameters.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
        sql.Append(" AND ").Append(column).Append(" = ").Append(name);
        command.Parameters.AddWithValue(name, value);
    }

    private static void AddRange(SqliteCommand command, StringBuilder sql, string column, DateTimeOffset? since, DateTimeOffset? until)
    {
        if (since is { } from)
        {
            sql.Append(" AND ").Append(column).Append(" >= $since");
            command.Parameters.AddWithValue("$since", TimeConversion.ToUnixNanos(from));
        }
        if (until is { } to)
        {
            sql.Append(" AND ").Append(column).Append(" <= $until");
            command.Parameters.AddWithValue("$until", TimeConversion.ToUnixNanos(to));
        }
    }
}
