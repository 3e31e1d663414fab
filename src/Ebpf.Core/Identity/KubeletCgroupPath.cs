using System.Diagnostics.CodeAnalysis;

namespace Ebpf.Core.Identity;

/// <summary>What a cgroup path says about Kubernetes.</summary>
public enum KubeletCgroupKind
{
    /// <summary>Not a kubelet-managed cgroup (host service, user session, garbage).</summary>
    None = 0,
    /// <summary>A pod-level cgroup (kubepods/.../pod&lt;uid&gt;): the pod is known, no container.</summary>
    Pod,
    /// <summary>A container cgroup (or a sub-cgroup inside one, like crun's <c>container</c>).</summary>
    Container,
}

/// <summary>
/// Parses the cgroup paths the kubelet and the CRI runtimes create into (QoS, pod UID, container id, runtime).
/// Layouts (kubelet pkg/kubelet/cm/cgroup_manager_linux.go, containerd/cri-o cgroup drivers):
/// <list type="bullet">
/// <item>cgroupfs: <c>/kubepods[/burstable|/besteffort]/pod&lt;uid&gt;/&lt;id&gt;</c> (cri-o: <c>crio-&lt;id&gt;</c>)</item>
/// <item>systemd: <c>/kubepods.slice[/kubepods-&lt;qos&gt;.slice]/kubepods[-&lt;qos&gt;]-pod&lt;uid with _&gt;.slice/&lt;runtime&gt;-&lt;id&gt;.scope</c></item>
/// <item>containerd with SystemdCgroup=true but kubelet on cgroupfs: a literal <c>&lt;pod slice&gt;:cri-containerd:&lt;id&gt;</c> directory</item>
/// </list>
/// Never anchored at the start: kind and nested kubelets add prefixes (<c>/kubelet/kubepods/...</c>,
/// <c>/kubelet.slice/kubelet-kubepods.slice/...</c>). Directories below the container's (crun's <c>container</c>,
/// cgroups a container creates with its own cgroup namespace) belong to the container.
/// Span scanning only: the allocations are the result's two strings and the record.
/// </summary>
public static class KubeletCgroupPath
{
    private const int ContainerIdLength = 64;

    /// <summary>True when <paramref name="path"/> is a container cgroup (or below one).</summary>
    public static bool TryParse(string path, [MaybeNullWhen(false)] out ContainerCgroup container)
    {
        var kind = Parse(path, out var result);
        container = result!;
        return kind == KubeletCgroupKind.Container;
    }

    /// <summary>
    /// Classifies <paramref name="path"/>; for <see cref="KubeletCgroupKind.Pod"/> the result has an empty
    /// <see cref="ContainerCgroup.ContainerId"/>, for <see cref="KubeletCgroupKind.None"/> it is null.
    /// </summary>
    public static KubeletCgroupKind Parse(ReadOnlySpan<char> path, out ContainerCgroup? result)
    {
        result = null;
        // Walk segments left to right, remembering the previous two: the pod segment is recognised by its
        // own shape plus a kubepods parent, so arbitrary prefixes are fine.
        ReadOnlySpan<char> prev1 = default, prev2 = default;
        int start = 0;
        while (start <= path.Length)
        {
            int slash = path[start..].IndexOf('/');
            int end = slash < 0 ? path.Length : start + slash;
            var segment = path[start..end];
            if (segment.Length > 0)
            {
                if (TryPodSegment(segment, prev1, prev2, out var uid, out var qos, out var inlineContainer))
                {
                    if (!inlineContainer.IsEmpty)
                    {
                        // "<pod slice>:<runtime prefix>:<id>" in one directory.
                        if (!TryInlineContainer(inlineContainer, out var inlineId, out var inlineRuntime)) return KubeletCgroupKind.None;
                        result = new ContainerCgroup(NormaliseUid(uid), inlineId.ToString(), qos, inlineRuntime);
                        return KubeletCgroupKind.Container;
                    }
                    var rest = end >= path.Length ? ReadOnlySpan<char>.Empty : path[(end + 1)..];
                    int nextSlash = rest.IndexOf('/');
                    var containerSegment = nextSlash < 0 ? rest : rest[..nextSlash];
                    if (containerSegment.IsEmpty)
                    {
                        result = new ContainerCgroup(NormaliseUid(uid), "", qos, ContainerRuntime.Unknown);
                        return KubeletCgroupKind.Pod;
                    }
                    if (!TryContainerSegment(containerSegment, out var id, out var runtime)) return KubeletCgroupKind.None;
                    result = new ContainerCgroup(NormaliseUid(uid), id.ToString(), qos, runtime);
                    return KubeletCgroupKind.Container;
                }
                prev2 = prev1;
                prev1 = segment;
            }
            if (slash < 0) break;
            start = end + 1;
        }
        return KubeletCgroupKind.None;
    }

    private static bool TryPodSegment(ReadOnlySpan<char> segment, ReadOnlySpan<char> prev1, ReadOnlySpan<char> prev2,
        out ReadOnlySpan<char> uid, out QosClass qos, out ReadOnlySpan<char> inlineContainer)
    {
        uid = default; qos = QosClass.Unknown; inlineContainer = default;
        if (segment.StartsWith("pod"))
        {
            // cgroupfs: parent is "kubepods" (guaranteed) or "burstable"/"besteffort" under "kubepods".
            if (!IsUid(segment[3..], '-')) return false;
            if (IsKubepods(prev1, slice: false)) qos = QosClass.Guaranteed;
            else if (IsKubepods(prev2, slice: false) && prev1.SequenceEqual("burstable")) qos = QosClass.Burstable;
            else if (IsKubepods(prev2, slice: false) && prev1.SequenceEqual("besteffort")) qos = QosClass.BestEffort;
            else return false;
            uid = segment[3..];
            return true;
        }

        // systemd: "[prefix-]kubepods[-burstable|-besteffort]-pod<uid>.slice", optionally followed by ":<runtime>:<id>".
        var slicePart = segment;
        int colon = segment.IndexOf(':');
        if (colon >= 0)
        {
            slicePart = segment[..colon];
            inlineContainer = segment[(colon + 1)..];
            if (inlineContainer.IsEmpty) return false;
        }
        if (!slicePart.EndsWith(".slice")) return false;
        var name = slicePart[..^".slice".Length];
        int pod = name.LastIndexOf("-pod");
        if (pod < 0) return false;
        var podUid = name[(pod + 4)..];
        if (!IsUid(podUid, '_')) return false;
        var qosName = name[..pod];
        if (qosName.EndsWith("kubepods")) qos = QosClass.Guaranteed;
        else if (qosName.EndsWith("kubepods-burstable")) qos = QosClass.Burstable;
        else if (qosName.EndsWith("kubepods-besteffort")) qos = QosClass.BestEffort;
        else return false;
        // The literal form sits wherever the runtime put it; the normal form needs a kubepods slice parent.
        if (inlineContainer.IsEmpty && !(IsKubepods(prev1, slice: true) || prev1.EndsWith("kubepods-burstable.slice") || prev1.EndsWith("kubepods-besteffort.slice")))
            return false;
        uid = podUid;
        return true;
    }

    private static bool IsKubepods(ReadOnlySpan<char> segment, bool slice) => slice
        ? segment.SequenceEqual("kubepods.slice") || segment.EndsWith("-kubepods.slice")
        : segment.SequenceEqual("kubepods");

    private static bool TryContainerSegment(ReadOnlySpan<char> segment, out ReadOnlySpan<char> id, out ContainerRuntime runtime)
    {
        id = default;
        runtime = ContainerRuntime.Unknown;
        if (segment.EndsWith(".scope"))
        {
            var name = segment[..^".scope".Length];
            // cri-o's conmon monitor runs in its own scope next to the container: not a container.
            if (name.StartsWith("crio-conmon-")) return false;
            if (name.StartsWith("cri-containerd-")) { runtime = ContainerRuntime.Containerd; id = name["cri-containerd-".Length..]; }
            else if (name.StartsWith("crio-")) { runtime = ContainerRuntime.CriO; id = name["crio-".Length..]; }
            else if (name.StartsWith("docker-")) { runtime = ContainerRuntime.Docker; id = name["docker-".Length..]; }
            else return false;
            return IsContainerId(id);
        }
        if (segment.StartsWith("crio-conmon-")) return false;
        if (segment.StartsWith("crio-")) { runtime = ContainerRuntime.CriO; id = segment["crio-".Length..]; return IsContainerId(id); }
        // cgroupfs with containerd or docker: the bare id; the runtime is only known from pod status.
        id = segment;
        return IsContainerId(id);
    }

    private static bool TryInlineContainer(ReadOnlySpan<char> text, out ReadOnlySpan<char> id, out ContainerRuntime runtime)
    {
        id = default;
        runtime = ContainerRuntime.Unknown;
        int colon = text.IndexOf(':');
        if (colon < 0) return false;
        var prefix = text[..colon];
        id = text[(colon + 1)..];
        if (prefix.SequenceEqual("cri-containerd")) runtime = ContainerRuntime.Containerd;
        else if (prefix.SequenceEqual("crio")) runtime = ContainerRuntime.CriO;
        else if (prefix.SequenceEqual("docker")) runtime = ContainerRuntime.Docker;
        else return false;
        return IsContainerId(id);
    }

    private static bool IsContainerId(ReadOnlySpan<char> id) => id.Length == ContainerIdLength && IsLowerHex(id);

    /// <summary>A pod UID: an RFC 4122 UUID (dashes, or underscores in systemd slice names), or 32 hex digits (static pods: the config hash).</summary>
    private static bool IsUid(ReadOnlySpan<char> uid, char separator)
    {
        if (uid.Length == 32) return IsLowerHex(uid);
        if (uid.Length != 36) return false;
        for (int i = 0; i < uid.Length; i++)
        {
            char c = uid[i];
            if (i is 8 or 13 or 18 or 23) { if (c != separator) return false; }
            else if (!IsLowerHexChar(c)) return false;
        }
        return true;
    }

    private static bool IsLowerHex(ReadOnlySpan<char> text)
    {
        foreach (char c in text)
            if (!IsLowerHexChar(c)) return false;
        return true;
    }

    private static bool IsLowerHexChar(char c) => (uint)(c - '0') <= 9 || (uint)(c - 'a') <= 5;

    private static string NormaliseUid(ReadOnlySpan<char> uid) =>
        uid.Contains('_') ? string.Create(uid.Length, uid, static (dest, source) => source.Replace(dest, '_', '-')) : uid.ToString();
}
