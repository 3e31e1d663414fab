using Ebpf.Core.Identity;
using Ebpf.Core.Processes;

namespace Ebpf.Core.Correlation;

// Mutable bookkeeping of ExecSessionCorrelator. Single-threaded by design: the engine is driven by one loop.

internal sealed class ProcessState
{
    public required ProcessKey Key;
    public int Pid;
    public ProcessState? Parent;
    public HashSet<ProcessState>? Children;
    public ContainerState? Container;
    public WorkloadIdentity? Workload;
    public DateTimeOffset Start;
    public DateTimeOffset? Exited;
    public IReadOnlyList<string> Argv = [];
    public SessionState? Session;
    public RootCandidate? Root;
    public int Connects;
    public int Files;
    public List<ulong>? PendingSequences;
    public DateTimeOffset? ApiConnectedAt;
    public bool Evicted;
}

internal sealed class ContainerState
{
    public required string Id;
    public required string PodUid;
    public int Live;
    public int Tracked;
    public long EverTracked;
    public ProcessState? Init;
    /// <summary>null until the pod lookup knows this container id.</summary>
    public bool? Ephemeral;
    public string? Name;
    public SessionState? Debug;
    /// <summary>Processes of a possibly-ephemeral container that no session has claimed yet.</summary>
    public List<ProcessState>? Unclaimed;
    public DateTimeOffset? UnclaimedSince;
}

internal sealed class RootCandidate
{
    public required ProcessState Process;
    public required PodGroup Group;
    public required string NodeSessionId;
    public string? ContainerName;
    public bool RuntimeFlag;
    public bool ArgvTruncated;
    public IReadOnlyList<string> Argv = [];
    public DateTimeOffset Start;
    public AuditState? Assigned;
    public bool Finalized;
    public SessionState? NodeSession;
}

internal sealed class AuditState
{
    public required string AuditId;
    public required AuditRequestKind Kind;
    public required AuditRequest First;
    public required SessionState Session;
    public int StagesSeen;
    public DateTimeOffset RequestReceived;
    public DateTimeOffset? ResponseStarted;
    public DateTimeOffset? ResponseComplete;
    public int? ResponseCode;
    public string? PodUid;
    public PodSpecInfo? Pod;
    public string? ContainerName;
    public bool ContainerInferred;
    public PodGroup? Group;
    public RootCandidate? Assigned;
    public RootCandidate? Previous;
    public bool Finalized;
    public bool Rejected;
    public bool Foreign;
    public bool Unresolved;

    public DateTimeOffset WindowStartAnchor => ResponseStarted ?? RequestReceived;
}

internal sealed class PodGroup
{
    public required string PodUid;
    public readonly List<AuditState> Audits = [];
    public readonly List<RootCandidate> Roots = [];
}

internal sealed class SessionState
{
    public required string Id;
    public SessionKind Kind;
    public SessionConfidence Confidence;
    public string Reason = "";
    public AuditState? Audit;
    public ProcessState? Root;
    public WorkloadIdentity? Workload;
    public DateTimeOffset? NodeStart;
    public DateTimeOffset? NodeEnd;
    public List<string> Alternatives = [];
    /// <summary>Tracked processes of the session (forgotten ones leave; the counts below keep them).</summary>
    public readonly HashSet<ProcessState> Members = [];
    public int ProcessCount;
    public int Connects;
    public int Files;
    public bool Emitted;
    public DateTimeOffset LastActivity;
    public string? PodUid;
    public string? Namespace;
    public string? Pod;
    public string? Container;
    public string? ContainerId;
    public IReadOnlyList<string> Command = [];
    /// <summary>attach and port-forward: the stream window.</summary>
    public DateTimeOffset WindowStart;
    public DateTimeOffset WindowEnd;
    public int ForwardedConnections;
    public bool Evicted;
}

internal sealed class PendingTokenCheck
{
    public required AuditRequest Request;
    public required PodSpecInfo Pod;
    public required DateTimeOffset Deadline;
}
