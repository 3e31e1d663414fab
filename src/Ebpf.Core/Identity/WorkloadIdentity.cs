namespace Ebpf.Core.Identity;

public enum QosClass { Unknown = 0, Guaranteed, Burstable, BestEffort }

public enum ContainerRuntime { Unknown = 0, Containerd, CriO, Docker }

/// <summary>What a kubelet cgroup path says about a container: no API server needed.</summary>
public sealed record ContainerCgroup(string PodUid, string ContainerId, QosClass Qos, ContainerRuntime Runtime);

/// <summary>
/// Which node, pod and container a cgroup belongs to, as far as it is known. The cgroup part is always
/// available; namespace, pod name and container name only once pod metadata is (never in standalone mode).
/// </summary>
public sealed record WorkloadIdentity
{
    public required ulong CgroupId { get; init; }
    public string CgroupPath { get; init; } = "";
    /// <summary>Null when the cgroup is not a Kubernetes container (host process, system service).</summary>
    public ContainerCgroup? Container { get; init; }
    public string? Namespace { get; init; }
    public string? PodName { get; init; }
    public string? ContainerName { get; init; }
    public bool MetadataAvailable => PodName is not null;
    public bool IsContainer => Container is not null;

    public static WorkloadIdentity Host(ulong cgroupId, string path) => new() { CgroupId = cgroupId, CgroupPath = path };
}
