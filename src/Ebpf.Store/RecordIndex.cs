using Ebpf.Api.V1;

namespace Ebpf.Store;

/// <summary>The columns a record is found by, taken from whichever body it carries.</summary>
internal readonly struct RecordIndex
{
    public RecordKind Kind { get; init; }
    public string? Namespace { get; init; }
    public string? Pod { get; init; }
    public string? User { get; init; }
    public string? SessionId { get; init; }
    /// <summary>The process the record belongs to. For a fork it is the child: the process whose life the fork starts.</summary>
    public string? ProcessKey { get; init; }


    public static RecordIndex Of(Record record)
    {
        switch (record.BodyCase)
        {
            case Record.BodyOneofCase.NodeEvent:
                var node = record.NodeEvent;
                return new RecordIndex
                {
                    Kind = RecordKind.NodeEvent,
                    Namespace = Nullify(node.Workload?.Namespace),
                    Pod = Nullify(node.Workload?.Pod),
                    SessionId = Nullify(node.SessionId),
                    ProcessKey = Nullify(node.DetailsCase == NodeEvent.DetailsOneofCase.Fork ? node.Fork.ChildProcessKey : node.ProcessKey),
                };
            case Record.BodyOneofCase.AuditEvent:
                var audit = record.AuditEvent;
                return new RecordIndex
                {
                    Kind = RecordKind.AuditEvent,
                    Namespace = Nullify(audit.Namespace),
                    // Only requests on the pods resource (exec, attach, portforward, get, delete ...) name a pod.
                    Pod = audit.Resource == "pods" ? Nullify(audit.Name) : null,
                    User = Nullify(audit.AttributedUser),
                };
            case Record.BodyOneofCase.Session:
                var session = record.Session;
                return new RecordIndex
                {
                    Kind = RecordKind.Session,
                    Namespace = Nullify(session.Namespace) ?? Nullify(session.Workload?.Namespace),
                    Pod = Nullify(session.Pod) ?? Nullify(session.Workload?.Pod),
                    User = Nullify(session.User),
                    SessionId = Nullify(session.Id),
                    ProcessKey = Nullify(session.RootProcessKey),
                };
            case Record.BodyOneofCase.Attribution:
                return new RecordIndex { Kind = RecordKind.Attribution, SessionId = Nullify(record.Attribution.SessionId) };
            case Record.BodyOneofCase.Finding:
                var finding = record.Finding;
                return new RecordIndex
                {
                    Kind = RecordKind.Finding,
                    Namespace = Nullify(finding.Namespace),
                    Pod = Nullify(finding.Pod),
                    User = Nullify(finding.User),
                    SessionId = Nullify(finding.SessionId),
                };
            default:
                return default;
        }
    }

    private static string? Nullify(string? value) => string.IsNullOrEmpty(value) ? null : value;
}
