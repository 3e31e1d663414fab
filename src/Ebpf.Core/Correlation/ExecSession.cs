using Ebpf.Core.Identity;
using Ebpf.Core.Processes;

namespace Ebpf.Core.Correlation;

/// <summary>Mirrors ebpf.v1.SessionKind (same numbers).</summary>
public enum SessionKind
{
    Unspecified = 0,
    Exec = 1,
    Attach = 2,
    Debug = 3,
    PortForward = 4,
    UnattributedExec = 5,
    Probe = 6,
    AuditOnly = 7,
}

/// <summary>Mirrors ebpf.v1.Confidence (same numbers). docs/correlation.md defines each level.</summary>
public enum SessionConfidence
{
    Unspecified = 0,
    Certain = 1,
    Probable = 2,
    Ambiguous = 3,
    Unattributed = 4,
}

/// <summary>Mirrors ebpf.v1.Severity (same numbers).</summary>
public enum FindingSeverity
{
    Unspecified = 0,
    Info = 1,
    Low = 2,
    Medium = 3,
    High = 4,
}

/// <summary>An immutable snapshot of a session: who (audit side) joined with what happened (node side).</summary>
public sealed record ExecSession
{
    public required string Id { get; init; }
    public required SessionKind Kind { get; init; }
    public required SessionConfidence Confidence { get; init; }
    public required string Reason { get; init; }
    // audit side
    public string? AuditId { get; init; }
    public string? User { get; init; }
    public IReadOnlyList<string> Groups { get; init; } = [];
    public IReadOnlyList<string> SourceIps { get; init; } = [];
    public string? UserAgent { get; init; }
    public string? Verb { get; init; }
    public string? Namespace { get; init; }
    public string? Pod { get; init; }
    public string? PodUid { get; init; }
    public string? Container { get; init; }
    public IReadOnlyList<string> Command { get; init; } = [];
    public bool Tty { get; init; }
    public bool Stdin { get; init; }
    public DateTimeOffset? RequestReceived { get; init; }
    public DateTimeOffset? ResponseStarted { get; init; }
    public DateTimeOffset? ResponseComplete { get; init; }
    public int? ResponseCode { get; init; }
    // node side
    public ProcessKey? RootProcessKey { get; init; }
    public int? RootPid { get; init; }
    public WorkloadIdentity? Workload { get; init; }
    public DateTimeOffset? NodeStart { get; init; }
    public DateTimeOffset? NodeEnd { get; init; }
    /// <summary>Ids of sessions this one could not be told apart from.</summary>
    public IReadOnlyList<string> Alternatives { get; init; } = [];
    public int ProcessCount { get; init; }
    public int ConnectCount { get; init; }
    public int FileCount { get; init; }
}

/// <summary>A finding: something that deserves a human's attention, with the evidence for it.</summary>
public sealed record CorrelationFinding
{
    public required string Id { get; init; }
    /// <summary>unattributed-exec, unattributed-ephemeral-container, token-used-outside-pod, exec-denied.</summary>
    public required string Kind { get; init; }
    public required FindingSeverity Severity { get; init; }
    public required string Summary { get; init; }
    public required DateTimeOffset Time { get; init; }
    public string? Namespace { get; init; }
    public string? Pod { get; init; }
    public string? User { get; init; }
    public string? SessionId { get; init; }
    public IReadOnlyDictionary<string, string> Evidence { get; init; } = new Dictionary<string, string>();
}

public static class FindingKinds
{
    public const string UnattributedExec = "unattributed-exec";
    public const string UnattributedEphemeralContainer = "unattributed-ephemeral-container";
    public const string TokenUsedOutsidePod = "token-used-outside-pod";
    public const string ExecDenied = "exec-denied";
}

/// <summary>What the correlator produced in answer to one input.</summary>
public abstract record CorrelationOutput;

/// <summary>A session was created or changed; carries the whole snapshot.</summary>
public sealed record SessionChanged(ExecSession Session) : CorrelationOutput;

/// <summary>
/// A join completed or changed: these processes (the whole current set; empty when the session lost its
/// root) now belong to the session. <see cref="Sequences"/> are the node events emitted before the join,
/// which therefore went out without a session id.
/// </summary>
public sealed record AttributionUpdated(string SessionId, SessionConfidence Confidence, IReadOnlyList<ProcessKey> ProcessKeys,
    IReadOnlyList<ulong> Sequences) : CorrelationOutput;

public sealed record FindingRaised(CorrelationFinding Finding) : CorrelationOutput;

/// <summary>
/// An API request made with a pod-bound token, joined with the process(es) of that pod that had a connection
/// to the API server open at the time. Never Certain: TLS hides which connection carried the request.
/// Has no proto message yet; the agent may log it or drop it.
/// </summary>
public sealed record TokenUseAttributed(string AuditId, string PodUid, string? Namespace, string? Pod, string User,
    SessionConfidence Confidence, IReadOnlyList<ProcessKey> ProcessKeys) : CorrelationOutput;

/// <summary>The answer to one node record: the session it belongs to when already known, and any outputs.</summary>
public readonly record struct NodeCorrelation(string? SessionId, IReadOnlyList<CorrelationOutput> Outputs);

/// <summary>Counters of the correlator's state; all are cumulative except the current-state ones.</summary>
public sealed record CorrelationCounters
{
    public int SessionsCertain { get; init; }
    public int SessionsProbable { get; init; }
    public int SessionsAmbiguous { get; init; }
    public int SessionsUnattributed { get; init; }
    /// <summary>Node-side roots waiting for an audit event.</summary>
    public int PendingRoots { get; init; }
    /// <summary>Audit requests waiting for a process, or for pod metadata.</summary>
    public int PendingAudits { get; init; }
    public int TrackedProcesses { get; init; }
    /// <summary>Audit requests remembered (to merge stages and drop duplicates) until their session or retention ends.</summary>
    public int RememberedAuditRequests { get; init; }
    public long SessionsExpired { get; init; }
    public long ProcessesExpired { get; init; }
    /// <summary>New processes not tracked because <see cref="CorrelationOptions.MaxTrackedProcesses"/> was reached with nothing to evict.</summary>
    public long ProcessesDropped { get; init; }
    public long SessionsDropped { get; init; }
    public long DuplicateAuditEvents { get; init; }
    /// <summary>Audit requests for pods this node does not know (other nodes' pods): ignored.</summary>
    public long AuditForeignPod { get; init; }
    public long AuditFailed { get; init; }
    public long SequencesDropped { get; init; }
    public long FindingsRaised { get; init; }
}
