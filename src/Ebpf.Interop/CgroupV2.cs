namespace Ebpf.Interop;

/// <summary>A container root cgroup (e.g. /kubepods): its v2 id and its path relative to the v2 mount.</summary>
public sealed record ContainerRootCgroup(ulong CgroupId, string Path);

/// <summary>
/// Facts about the cgroup v2 hierarchy of this host: where it is mounted, the id of a cgroup, the Kubernetes pod
/// roots. On a hybrid (v1 + v2) host the v2 tree is mounted at /sys/fs/cgroup/unified; on a pure v2 host at
/// /sys/fs/cgroup. A v2 cgroup id is the inode number of its directory in cgroupfs (kernfs node id), which is what
/// bpf_get_current_cgroup_id returns. The id → path map kept current at run time is Ebpf.Kubernetes.Cgroups.CgroupHierarchy.
/// </summary>
public static class CgroupV2
{
    /// <summary>Top-level directory names kubelet creates for pods: cgroupfs driver and systemd driver.</summary>
    public static IReadOnlyList<string> KubernetesRootNames { get; } = ["kubepods", "kubepods.slice"];

    /// <summary>
    /// The cgroup2 mount from a mountinfo file: /sys/fs/cgroup on pure v2, /sys/fs/cgroup/unified on hybrid hosts;
    /// any other cgroup2 mount of the hierarchy root otherwise. Null when there is none.
    /// Only mounts of the hierarchy root ("/") count: inside a cgroup namespace or a bind of a subtree, inode → path
    /// would be relative to the wrong directory. Format: proc(5) "mountinfo": fields, " - ", fstype, source, options.
    /// </summary>
    public static string? FindMount(string mountInfoPath = "/proc/self/mountinfo")
    {
        string? fallback = null;
        foreach (var line in File.ReadLines(mountInfoPath))
        {
            int separator = line.IndexOf(" - ", StringComparison.Ordinal);
            if (separator < 0) continue;
            var fields = line[..separator].Split(' ');
            var tail = line[(separator + 3)..].Split(' ');
            if (fields.Length < 5 || tail.Length < 1 || tail[0] != "cgroup2") continue;
            string root = fields[3], mount = UnescapeMountPath(fields[4]);
            if (root != "/") continue;
            if (mount is "/sys/fs/cgroup" or "/sys/fs/cgroup/unified") return mount;
            fallback ??= mount;
        }
        return fallback;
    }

    /// <summary>The cgroup id of a directory of the v2 hierarchy (its inode number); <see cref="BpfException"/> when statx fails.</summary>
    public static ulong GetCgroupId(string directory)
    {
        if (!FileStatus.TryGet(directory, out var status, out int errno))
            throw new BpfException($"statx({directory})", errno);
        return status.Inode;
    }

    /// <summary>The cgroup id of a directory of the v2 hierarchy, or 0 when it cannot be read (vanished, no access). No cgroup has id 0.</summary>
    public static ulong TryGetCgroupId(string directory) => FileStatus.TryGet(directory, out var status) ? status.Inode : 0;

    /// <summary>Kubernetes pod roots directly under the v2 mount (e.g. /kubepods, /kubepods.slice).</summary>
    public static IReadOnlyList<ContainerRootCgroup> FindKubernetesRoots(string? v2Mount = null, IEnumerable<string>? rootNames = null)
    {
        v2Mount ??= FindMount();
        if (v2Mount is null)
            return [];
        var roots = new List<ContainerRootCgroup>();
        foreach (var name in rootNames ?? KubernetesRootNames)
        {
            var dir = Path.Combine(v2Mount, name);
            if (Directory.Exists(dir))
                roots.Add(new ContainerRootCgroup(GetCgroupId(dir), "/" + name));
        }
        return roots;
    }

    /// <summary>True when a v2 path (relative to the mount, starting with '/') is a top-level Kubernetes pod root.</summary>
    public static bool IsKubernetesRootPath(string path, IEnumerable<string>? rootNames = null)
    {
        var trimmed = path.TrimEnd('/');
        return (rootNames ?? KubernetesRootNames).Any(n => trimmed == "/" + n);
    }

    // mountinfo escapes space, tab, newline and backslash as octal (fs/proc_namespace.c, mangle()).
    private static string UnescapeMountPath(string field) =>
        field.Contains('\\', StringComparison.Ordinal)
            ? field.Replace("\\040", " ", StringComparison.Ordinal).Replace("\\011", "\t", StringComparison.Ordinal)
                   .Replace("\\012", "\n", StringComparison.Ordinal).Replace("\\134", "\\", StringComparison.Ordinal)
            : field;
}
