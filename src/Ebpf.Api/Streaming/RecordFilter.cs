using Ebpf.Api.V1;

namespace Ebpf.Api.Streaming;

/// <summary>
/// <see cref="SubscribeRequest"/> semantics. Every set field must match. A record that does not carry a field
/// (a node event has no user, an attribution update has no namespace) matches when it belongs to a session this
/// subscriber has already been sent, so "user=alice" yields alice's sessions and everything attributed to them.
/// </summary>
internal sealed class RecordFilter
{
    private readonly HashSet<RecordKind>? _kinds;
    private readonly string? _namespace;
    private readonly string? _pod;
    private readonly string? _user;
    private readonly string? _sessionId;
    private readonly int _maxSessions;
    private readonly HashSet<string> _sessions = new(StringComparer.Ordinal);
    private readonly Queue<string> _sessionOrder = new();

    public RecordFilter(SubscribeRequest request, int maxTrackedSessions)
    {
        _kinds = request.Kinds.Count == 0 ? null : [.. request.Kinds];
        _namespace = NullIfEmpty(request.Namespace);
        _pod = NullIfEmpty(request.Pod);
        _user = NullIfEmpty(request.User);
        _sessionId = NullIfEmpty(request.SessionId);
        _maxSessions = maxTrackedSessions;
    }

    public bool IsEmpty => _kinds is null && _namespace is null && _pod is null && _user is null && _sessionId is null;

    public static RecordKind KindOf(Record record) => RecordKinds.Of(record);

    /// <summary>Not thread-safe: the owning subscriber serializes calls.</summary>
    public bool Matches(Record record)
    {
        if (record.BodyCase == Record.BodyOneofCase.Dropped)
        {
            return true;
        }

        if (_kinds is not null && !_kinds.Contains(KindOf(record)))
        {
            return false;
        }

        if (IsEmpty)
        {
            return true;
        }

        string? ns = null, pod = null, user = null, session = null;
        switch (record.BodyCase)
        {
            case Record.BodyOneofCase.NodeEvent:
                ns = record.NodeEvent.Workload?.Namespace;
                pod = record.NodeEvent.Workload?.Pod;
                session = record.NodeEvent.SessionId;
                break;
            case Record.BodyOneofCase.AuditEvent:
                ns = record.AuditEvent.Namespace;
                pod = record.AuditEvent.Resource == "pods" ? record.AuditEvent.Name : null;
                user = record.AuditEvent.AttributedUser;
                break;
            case Record.BodyOneofCase.Session:
                ns = record.Session.Namespace;
                pod = record.Session.Pod;
                user = record.Session.User;
                session = record.Session.Id;
                break;
            case Record.BodyOneofCase.Attribution:
                session = record.Attribution.SessionId;
                break;
            case Record.BodyOneofCase.Finding:
                ns = record.Finding.Namespace;
                pod = record.Finding.Pod;
                user = record.Finding.User;
                session = record.Finding.SessionId;
                break;
        }

        session = NullIfEmpty(session);
        var knownSession = session is not null && _sessions.Contains(session);
        if (!FieldMatches(_namespace, ns, knownSession) || !FieldMatches(_pod, pod, knownSession) ||
            !FieldMatches(_user, user, knownSession) || !FieldMatches(_sessionId, session, knownSession: false))
        {
            return false;
        }

        if (record.BodyCase == Record.BodyOneofCase.Session && session is not null)
        {
            Remember(session);
        }

        return true;
    }

    private static bool FieldMatches(string? wanted, string? actual, bool knownSession)
    {
        if (wanted is null)
        {
            return true;
        }

        actual = NullIfEmpty(actual);
        return actual is null ? knownSession : string.Equals(wanted, actual, StringComparison.Ordinal);
    }

    private void Remember(string session)
    {
        if (!_sessions.Add(session))
        {
            return;
        }

        _sessionOrder.Enqueue(session);
        if (_sessionOrder.Count > _maxSessions)
        {
            _sessions.Remove(_sessionOrder.Dequeue());
        }
    }

    private static string? NullIfEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;
}
