using System.Diagnostics.CodeAnalysis;

namespace Ebpf.Core.Identity;

public enum PodContainerKind { Regular = 0, Init, Ephemeral }

/// <summary>A command the kubelet itself runs in a container: exec probes and lifecycle hooks.</summary>
public enum KubeletExecKind { LivenessProbe = 1, ReadinessProbe, StartupProbe, PostStart, PreStop }

public sealed record KubeletExecCommand(KubeletExecKind Kind, IReadOnlyList<string> Command);

/// <summary>One container of a pod, spec and status joined by name.</summary>
public sealed record PodContainer
{
    public required string Name { get; init; }
    public PodContainerKind Kind { get; init; }
    /// <summary>Runtime id without its scheme (status containerID <c>containerd://&lt;id&gt;</c>); empty until the container started.</summary>
    public string ContainerId { get; init; } = "";
    public ContainerRuntime Runtime { get; init; }
    public string Image { get; init; } = "";
    public IReadOnlyList<string> Command { get; init; } = [];
    public IReadOnlyList<string> Args { get; init; } = [];
    /// <summary>Exec probes and lifecycle hooks: execs the kubelet makes, not a user.</summary>
    public IReadOnlyList<KubeletExecCommand> KubeletExecs { get; init; } = [];
    /// <summary>Ephemeral containers only: the container whose namespaces they join.</summary>
    public string? TargetContainerName { get; init; }
    /// <summary>waiting | running | terminated | "" (status not reported yet).</summary>
    public string State { get; init; } = "";
}

public sealed record PodOwner(string Kind, string Name, string Uid, bool Controller);

/// <summary>The part of a pod the node side uses, independent of the API wire model.</summary>
public sealed record PodMetadata
{
    public required string Uid { get; init; }
    public required string Namespace { get; init; }
    public required string Name { get; init; }
    public string ResourceVersion { get; init; } = "";
    public string NodeName { get; init; } = "";
    public string ServiceAccountName { get; init; } = "";
    public bool HostNetwork { get; init; }
    public string Phase { get; init; } = "";
    public IReadOnlyList<string> PodIPs { get; init; } = [];
    public IReadOnlyDictionary<string, string> Labels { get; init; } = EmptyMap;
    public IReadOnlyDictionary<string, string> Annotations { get; init; } = EmptyMap;
    public IReadOnlyList<PodOwner> Owners { get; init; } = [];
    public IReadOnlyList<PodContainer> Containers { get; init; } = [];

    public PodContainer? FindContainerById(string containerId)
    {
        foreach (var c in Containers)
            if (c.ContainerId.Length > 0 && string.Equals(c.ContainerId, containerId, StringComparison.Ordinal)) return c;
        return null;
    }

    public PodContainer? FindContainerByName(string name)
    {
        foreach (var c in Containers)
            if (string.Equals(c.Name, name, StringComparison.Ordinal)) return c;
        return null;
    }

    private static readonly IReadOnlyDictionary<string, string> EmptyMap = new Dictionary<string, string>();
}

/// <summary>Pod metadata for this node, from the API server (Ebpf.Kubernetes PodWatcher) or nothing (standalone).</summary>
public interface IPodMetadataSource
{
    bool TryGetPod(string podUid, [NotNullWhen(true)] out PodMetadata? pod);

    /// <summary>Looks a container up by its runtime id (no scheme).</summary>
    bool TryGetContainer(string containerId, [NotNullWhen(true)] out PodMetadata? pod, [NotNullWhen(true)] out PodContainer? container);

    /// <summary>Raised with the pod UID after a pod was added, changed or deleted.</summary>
    event Action<string>? PodChanged;
}
