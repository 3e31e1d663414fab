using System.Net;
using Ebpf.Core.Identity;
using Ebpf.Core.Processes;
using Ebpf.Events;

namespace Ebpf.Core.Correlation;

/// <summary>
/// A node-side record as the correlator needs it. The agent maps its decoded kernel events onto these;
/// <see cref="Time"/> is wall-clock time (converted once from boot time by the reader).
/// </summary>
public abstract record NodeRecord
{
    /// <summary>The process the record is about (for a fork: the child).</summary>
    public required ProcessKey Key { get; init; }
    public required DateTimeOffset Time { get; init; }
    public ulong BootTimeNs { get; init; }
    /// <summary>Stream sequence of the node event; reported back in <see cref="AttributionUpdated.Sequences"/>. 0 = none.</summary>
    public ulong Sequence { get; init; }
}

/// <summary>A process replaced its image (execve).</summary>
public sealed record ProcessExecRecord : NodeRecord
{
    public ProcessKey? ParentKey { get; init; }
    public int Pid { get; init; }
    public required WorkloadIdentity Workload { get; init; }
    public IReadOnlyList<string> Argv { get; init; } = [];
    public bool ArgvTruncated { get; init; }
    public string Filename { get; init; } = "";
    /// <summary>The image before this exec was a container runtime's init (runc:[2:INIT], crun): the process was started by the runtime.</summary>
    public bool PreviousImageWasRuntime { get; init; }
    /// <summary>The parent is not in this process's container (runc or the shim on the host).</summary>
    public bool ParentOutsideContainer { get; init; }
}

/// <summary>
/// A process that was already running when the agent started (from /proc). Registers it without making it
/// a session root; feeding these lets the correlator tell a container's init from a later <c>runc exec</c>.
/// </summary>
public sealed record ExistingProcessRecord : NodeRecord
{
    public ProcessKey? ParentKey { get; init; }
    public int Pid { get; init; }
    public required WorkloadIdentity Workload { get; init; }
    public IReadOnlyList<string> Argv { get; init; } = [];
}

/// <summary>A process was created. <see cref="NodeRecord.Key"/> is the child. Threads are not reported here.</summary>
public sealed record ProcessForkRecord : NodeRecord
{
    public required ProcessKey ParentKey { get; init; }
    public int Pid { get; init; }
    /// <summary>The child's identity at fork time, when known.</summary>
    public WorkloadIdentity? Workload { get; init; }
}

public sealed record ProcessExitRecord : NodeRecord
{
    public int? ExitCode { get; init; }
    public int? Signal { get; init; }
}

public sealed record ConnectRecord : NodeRecord
{
    /// <summary>Identity of the connecting process (its cgroup).</summary>
    public WorkloadIdentity? Workload { get; init; }
    public SocketFamily Family { get; init; }
    public IPAddress? Address { get; init; }
    public int Port { get; init; }
    public string UnixPath { get; init; } = "";
    /// <summary>0, or -errno (-115 EINPROGRESS counts as an attempt that may succeed).</summary>
    public int Result { get; init; }
    /// <summary>
    /// Uid of the pod whose network namespace the socket lives in, when the agent can tell (netns inode of the
    /// pod sandbox). Null when unknown: the kernel record today carries the caller's cgroup, not its netns.
    /// </summary>
    public string? NetworkPodUid { get; init; }
}

public sealed record FileOpenRecord : NodeRecord
{
    public string Path { get; init; } = "";
    public int Flags { get; init; }
    /// <summary>The fd, or -errno.</summary>
    public int Result { get; init; }
}

public enum AuditStage { RequestReceived = 0, ResponseStarted, ResponseComplete, Panic }

/// <summary>What the API server said about a pod-bound service-account token (user.extra authentication.kubernetes.io/*).</summary>
public sealed record PodBoundToken(string PodName, string PodUid, string? NodeName, string? CredentialId);

/// <summary>
/// One audit.k8s.io/v1 Event (one stage of one request) as the correlator needs it. The audit parser maps its
/// records onto this; stages of one request share <see cref="AuditId"/> and <see cref="RequestReceived"/>.
/// </summary>
public sealed record AuditRequest
{
    public required string AuditId { get; init; }
    public required AuditStage Stage { get; init; }
    /// <summary>create (SPDY), or get (kubectl ≥ 1.30 WebSocket exec/attach/portforward); patch/update for ephemeralcontainers.</summary>
    public required string Verb { get; init; }
    /// <summary>The impersonated user when present, else the authenticated user.</summary>
    public required string User { get; init; }
    public IReadOnlyList<string> Groups { get; init; } = [];
    public IReadOnlyList<string> SourceIps { get; init; } = [];
    public string UserAgent { get; init; } = "";
    public string? Namespace { get; init; }
    /// <summary>objectRef.resource (pods, configmaps, ...).</summary>
    public string? Resource { get; init; }
    /// <summary>objectRef.name: the pod name for pod subresources.</summary>
    public string? Name { get; init; }
    /// <summary>objectRef.subresource: exec, attach, portforward, ephemeralcontainers, or another/none.</summary>
    public string? Subresource { get; init; }
    /// <summary>exec/attach: the container parameter; ephemeralcontainers: the name of the ephemeral container added, when the parser could read it from the request object.</summary>
    public string? Container { get; init; }
    public IReadOnlyList<string> Command { get; init; } = [];
    public bool Tty { get; init; }
    public bool Stdin { get; init; }
    /// <summary>portforward: the ports parameter, when present.</summary>
    public IReadOnlyList<int> Ports { get; init; } = [];
    public required DateTimeOffset RequestReceived { get; init; }
    public required DateTimeOffset StageTimestamp { get; init; }
    /// <summary>responseStatus.code; null before the response (RequestReceived stage).</summary>
    public int? ResponseCode { get; init; }
    /// <summary>Set when the request was made with a pod-bound service-account token.</summary>
    public PodBoundToken? Token { get; init; }

    public AuditRequestKind Kind => Classify(Resource, Subresource, Verb);

    internal static AuditRequestKind Classify(string? resource, string? subresource, string verb)
    {
        if (resource != "pods" || subresource is null) return AuditRequestKind.Other;
        bool stream = verb is "create" or "get";
        return subresource switch
        {
            "exec" when stream => AuditRequestKind.Exec,
            "attach" when stream => AuditRequestKind.Attach,
            "portforward" when stream => AuditRequestKind.PortForward,
            "ephemeralcontainers" when verb is "patch" or "update" => AuditRequestKind.EphemeralContainers,
            _ => AuditRequestKind.Other,
        };
    }
}

public enum AuditRequestKind { Other = 0, Exec, Attach, PortForward, EphemeralContainers }

/// <summary>A container of a pod as the pod spec and status say.</summary>
public sealed record PodContainerSpec
{
    public required string Name { get; init; }
    /// <summary>The runtime's container id without the scheme (status.containerStatuses[].containerID), null before it started.</summary>
    public string? ContainerId { get; init; }
    public bool IsEphemeral { get; init; }
    /// <summary>exec commands of liveness/readiness/startup probes and postStart/preStop hooks: the kubelet runs these through CRI exec with no audit event.</summary>
    public IReadOnlyList<IReadOnlyList<string>> ExecCommands { get; init; } = [];
}

/// <summary>What the correlator needs to know about a pod.</summary>
public sealed record PodSpecInfo
{
    public required string Uid { get; init; }
    public required string Namespace { get; init; }
    public required string Name { get; init; }
    public string? NodeName { get; init; }
    /// <summary>Regular containers in spec order, then init and ephemeral containers.</summary>
    public IReadOnlyList<PodContainerSpec> Containers { get; init; } = [];
    /// <summary>metadata.annotations["kubectl.kubernetes.io/default-container"].</summary>
    public string? DefaultContainerAnnotation { get; init; }
    public IReadOnlyList<IPAddress> PodIps { get; init; } = [];

    /// <summary>kubectl's rule: the annotation when it names a container, else the first regular container.</summary>
    public string? DefaultContainer
    {
        get
        {
            if (DefaultContainerAnnotation is { } annotated && FindByName(annotated) is not null) return annotated;
            foreach (var c in Containers) if (!c.IsEphemeral) return c.Name;
            return null;
        }
    }

    public PodContainerSpec? FindByName(string name)
    {
        foreach (var c in Containers) if (c.Name == name) return c;
        return null;
    }

    public PodContainerSpec? FindById(string containerId)
    {
        foreach (var c in Containers) if (c.ContainerId == containerId) return c;
        return null;
    }
}

/// <summary>Pod metadata for the correlator. Implementations answer from memory (an informer cache); never block.</summary>
public interface IPodSpecLookup
{
    PodSpecInfo? FindPod(string @namespace, string name);
    PodSpecInfo? FindPodByUid(string uid);
}
