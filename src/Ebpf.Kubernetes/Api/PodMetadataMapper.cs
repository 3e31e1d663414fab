using System.Text.Json;
using Ebpf.Core.Identity;

namespace Ebpf.Kubernetes.Api;

/// <summary>Wire <see cref="Pod"/> → Core <see cref="PodMetadata"/>: spec and status containers joined by name.</summary>
public static class PodMetadataMapper
{
    /// <summary>Null when the pod lacks what identifies it (uid, namespace, name).</summary>
    public static PodMetadata? ToMetadata(Pod pod)
    {
        var meta = pod.Metadata;
        if (meta is null || string.IsNullOrEmpty(meta.Uid) || string.IsNullOrEmpty(meta.Name) || string.IsNullOrEmpty(meta.Namespace)) return null;
        var spec = pod.Spec;
        var status = pod.Status;
        var containers = new List<PodContainer>();
        AddContainers(containers, spec?.Containers, status?.ContainerStatuses, PodContainerKind.Regular);
        AddContainers(containers, spec?.InitContainers, status?.InitContainerStatuses, PodContainerKind.Init);
        AddContainers(containers, spec?.EphemeralContainers, status?.EphemeralContainerStatuses, PodContainerKind.Ephemeral);

        var ips = new List<string>();
        if (status?.PodIPs is { } podIps)
            foreach (var ip in podIps)
                if (!string.IsNullOrEmpty(ip?.Ip)) ips.Add(ip.Ip);
        if (ips.Count == 0 && !string.IsNullOrEmpty(status?.PodIP)) ips.Add(status.PodIP);

        return new PodMetadata
        {
            Uid = meta.Uid,
            Namespace = meta.Namespace,
            Name = meta.Name,
            ResourceVersion = meta.ResourceVersion ?? "",
            Labels = meta.Labels ?? [],
            Annotations = meta.Annotations ?? [],
            Owners = meta.OwnerReferences?.Where(o => o is not null)
                .Select(o => new PodOwner(o.Kind ?? "", o.Name ?? "", o.Uid ?? "", o.Controller ?? false)).ToList() ?? [],
            NodeName = spec?.NodeName ?? "",
            ServiceAccountName = spec?.ServiceAccountName ?? "",
            HostNetwork = spec?.HostNetwork ?? false,
            Phase = status?.Phase ?? "",
            PodIPs = ips,
            Containers = containers,
        };
    }

    /// <summary>
    /// Splits a status containerID ("containerd://&lt;id&gt;", "cri-o://&lt;id&gt;", "docker://&lt;id&gt;") into runtime and id.
    /// </summary>
    public static (ContainerRuntime Runtime, string Id) ParseContainerId(string? containerId)
    {
        if (string.IsNullOrEmpty(containerId)) return (ContainerRuntime.Unknown, "");
        int scheme = containerId.IndexOf("://", StringComparison.Ordinal);
        if (scheme < 0) return (ContainerRuntime.Unknown, containerId);
        var runtime = containerId.AsSpan(0, scheme) switch
        {
            "containerd" => ContainerRuntime.Containerd,
            "cri-o" => ContainerRuntime.CriO,
            "docker" => ContainerRuntime.Docker,
            _ => ContainerRuntime.Unknown,
        };
        return (runtime, containerId[(scheme + 3)..]);
    }

    private static void AddContainers(List<PodContainer> into, List<Container>? specs, List<ContainerStatus>? statuses, PodContainerKind kind)
    {
        if (specs is null) return;
        foreach (var spec in specs)
        {
            if (string.IsNullOrEmpty(spec?.Name)) continue;
            var status = statuses?.FirstOrDefault(s => s?.Name == spec.Name);
            var (runtime, id) = ParseContainerId(status?.ContainerID);
            into.Add(new PodContainer
            {
                Name = spec.Name,
                Kind = kind,
                ContainerId = id,
                Runtime = runtime,
                Image = spec.Image ?? "",
                Command = spec.Command ?? [],
                Args = spec.Args ?? [],
                KubeletExecs = KubeletExecs(spec),
                TargetContainerName = spec.TargetContainerName,
                State = StateName(status?.State),
            });
        }
    }

    private static List<KubeletExecCommand> KubeletExecs(Container spec)
    {
        var execs = new List<KubeletExecCommand>();
        Add(KubeletExecKind.LivenessProbe, spec.LivenessProbe?.Exec);
        Add(KubeletExecKind.ReadinessProbe, spec.ReadinessProbe?.Exec);
        Add(KubeletExecKind.StartupProbe, spec.StartupProbe?.Exec);
        Add(KubeletExecKind.PostStart, spec.Lifecycle?.PostStart?.Exec);
        Add(KubeletExecKind.PreStop, spec.Lifecycle?.PreStop?.Exec);
        return execs;

        void Add(KubeletExecKind kind, ExecAction? exec)
        {
            if (exec?.Command is { Count: > 0 } command) execs.Add(new KubeletExecCommand(kind, command));
        }
    }

    private static string StateName(ContainerState? state) =>
        state is null ? ""
        : IsObject(state.Running) ? "running"
        : IsObject(state.Terminated) ? "terminated"
        : IsObject(state.Waiting) ? "waiting"
        : "";

    private static bool IsObject(JsonElement? element) => element is { ValueKind: JsonValueKind.Object };
}
