using System.Runtime.InteropServices;
using Ebpf.Interop.Native;

namespace Ebpf.Interop;

/// <summary>A container root cgroup (e.g. /kubepods): its v2 id and its path relative to the v2 mount.</summary>
public sealed record ContainerRootCgroup(ulong CgroupId, string Path);

/// <summary>
/// The cgroup v2 hierarchy of this host. On a hybrid (v1 + v2) host the v2 tree is mounted at
/// /sys/fs/cgroup/unified; on a pure v2 host at /sys/fs/cgroup. A v2 cgroup id is the inode number of its directory
/// in cgroupfs (kernfs node id), which is what bpf_get_current_cgroup_id returns.
/// </summary>
public static unsafe class CgroupHierarchy
{
    /// <summary>Top-level directory names kubelet creates for pods: cgroupfs driver and systemd driver.</summary>
    public static IReadOnlyList<string> KubernetesRootNames { get; } = ["kubepods", "kubepods.slice"];

    /// <summary>The v2 mount point: /sys/fs/cgroup/unified when it holds a v2 tree, else /sys/fs/cgroup when that is v2, else null.</summary>
    public static string? FindV2Mount()
    {
        foreach (var candidate in (string[])["/sys/fs/cgroup/unified", "/sys/fs/cgroup"])
        {
            // cgroup.controllers exists only in a v2 hierarchy.
            if (File.Exists(Path.Combine(candidate, "cgroup.controllers")))
                return candidate;
        }
        return null;
    }

    /// <summary>The cgroup id of a directory of the v2 hierarchy (its inode number).</summary>
    public static ulong GetCgroupId(string directory)
    {
        var buffer = stackalloc byte[256];
        if (LibC.statx(LibC.AT_FDCWD, directory, LibC.AT_STATX_SYNC_AS_STAT, LibC.STATX_INO, buffer) != 0)
            throw new BpfException($"statx({directory})", Marshal.GetLastPInvokeError());
        return *(ulong*)(buffer + 32);
    }

    /// <summary>Kubernetes pod roots directly under the v2 mount (e.g. /kubepods, /kubepods.slice).</summary>
    public static IReadOnlyList<ContainerRootCgroup> FindKubernetesRoots(string? v2Mount = null, IEnumerable<string>? rootNames = null)
    {
        v2Mount ??= FindV2Mount();
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
}
