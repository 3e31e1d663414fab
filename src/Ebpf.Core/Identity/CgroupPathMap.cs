using System.Collections.Concurrent;
using Ebpf.Events;

namespace Ebpf.Core.Identity;

/// <summary>
/// cgroup v2 id (directory inode) → path relative to the v2 root. Seeded by a walk of the hierarchy, then kept
/// current from cgroup mkdir/rmdir records. Reads are lock-free and safe from any thread.
/// Removed cgroups stay resolvable for a while (<see cref="RemovedRetention"/> most recent removals): records of
/// a cgroup's last processes can be read from the ring buffer after its rmdir record.
/// </summary>
public sealed class CgroupPathMap
{
    private readonly ConcurrentDictionary<ulong, string> _paths = new();
    private readonly ConcurrentQueue<ulong> _removed = new();
    private readonly ConcurrentDictionary<ulong, byte> _removedSet = new();
    private long _version;

    public CgroupPathMap(int removedRetention = 4096)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(removedRetention);
        RemovedRetention = removedRetention;
    }

    /// <summary>How many removed cgroups stay resolvable. Defaults to 4096.</summary>
    public int RemovedRetention { get; }

    public int Count => _paths.Count;

    /// <summary>Grows on every change; lets caches of negative lookups know when a retry can succeed.</summary>
    public long Version => Interlocked.Read(ref _version);

    public bool TryGetPath(ulong cgroupId, out string path) => _paths.TryGetValue(cgroupId, out path!);

    public void Set(ulong cgroupId, string path)
    {
        _removedSet.TryRemove(cgroupId, out _);
        _paths[cgroupId] = path;
        Interlocked.Increment(ref _version);
    }

    /// <summary>Marks a cgroup removed; it is forgotten once <see cref="RemovedRetention"/> later removals happened.</summary>
    public void MarkRemoved(ulong cgroupId)
    {
        if (!_paths.ContainsKey(cgroupId) || !_removedSet.TryAdd(cgroupId, 0)) return;
        _removed.Enqueue(cgroupId);
        while (_removed.Count > RemovedRetention && _removed.TryDequeue(out var oldest))
        {
            // A re-created id (inode reuse after Set) is no longer in the removed set: keep it.
            if (_removedSet.TryRemove(oldest, out _)) _paths.TryRemove(oldest, out _);
        }
        Interlocked.Increment(ref _version);
    }

    public bool IsRemoved(ulong cgroupId) => _removedSet.ContainsKey(cgroupId);

    /// <summary>Applies a cgroup_mkdir / cgroup_rmdir record.</summary>
    public void Apply(CgroupEvent record)
    {
        if (record.Kind == EventKind.CgroupMkdir) Set(record.TargetCgroupId, NormalisePath(record.Path));
        else MarkRemoved(record.TargetCgroupId);
    }

    /// <summary>Snapshot of the live (not removed) entries.</summary>
    public IReadOnlyDictionary<ulong, string> Snapshot()
    {
        var copy = new Dictionary<ulong, string>(_paths.Count);
        foreach (var (id, path) in _paths)
            if (!_removedSet.ContainsKey(id)) copy[id] = path;
        return copy;
    }

    private static string NormalisePath(string path) => path.Length == 0 ? "/" : path[0] == '/' ? path : "/" + path;
}

/// <summary>Resolves a cgroup id to its path, possibly doing I/O (a bounded rescan) for ids not yet known.</summary>
public interface ICgroupPathResolver
{
    /// <summary>Version of the underlying map: changes whenever an id may have become resolvable.</summary>
    long Version { get; }

    bool TryResolve(ulong cgroupId, out string path);
}
