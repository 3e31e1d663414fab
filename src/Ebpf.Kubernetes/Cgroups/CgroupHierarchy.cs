using Ebpf.Core.Identity;
using Ebpf.Events;
using Ebpf.Interop;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ebpf.Kubernetes.Cgroups;

/// <summary>Options for <see cref="CgroupHierarchy"/>.</summary>
public sealed class CgroupHierarchyOptions
{
    /// <summary>Where cgroup v2 is mounted. Defaults to null: found in /proc/self/mountinfo (<see cref="CgroupV2.FindMount"/>).</summary>
    public string? MountPoint { get; set; }

    /// <summary>mountinfo to read when <see cref="MountPoint"/> is null. Defaults to /proc/self/mountinfo.</summary>
    public string MountInfoPath { get; set; } = "/proc/self/mountinfo";

    /// <summary>Least time between two rescans triggered by unknown ids. Defaults to 1 s.</summary>
    public TimeSpan RescanMinInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Most directories one walk visits (a bound against hostile hierarchies). Defaults to 100 000.</summary>
    public int MaxDirectories { get; set; } = 100_000;

    /// <summary>Deepest level walked. Defaults to 32.</summary>
    public int MaxDepth { get; set; } = 32;
}

/// <summary>
/// The cgroup v2 hierarchy of this node: id (directory inode) → path. Walked at start, kept current from
/// cgroup mkdir/rmdir records (<see cref="Apply"/>); ids not known yet (a process seen before its cgroup's mkdir
/// record) trigger a rescan, at most one per <see cref="CgroupHierarchyOptions.RescanMinInterval"/>.
/// </summary>
public sealed partial class CgroupHierarchy : ICgroupPathResolver
{
    private readonly CgroupHierarchyOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _scanLock = new();
    private long _lastRescanTimestamp;
    private long _rescans;
    private bool _rescannedForMiss;

    public CgroupHierarchy(CgroupHierarchyOptions? options = null, TimeProvider? time = null, ILogger<CgroupHierarchy>? logger = null)
    {
        _options = options ?? new CgroupHierarchyOptions();
        _time = time ?? TimeProvider.System;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        MountPoint = _options.MountPoint ?? CgroupV2.FindMount(_options.MountInfoPath)
            ?? throw new InvalidOperationException($"no cgroup v2 mount in {_options.MountInfoPath}: cgroup v2 (unified or hybrid) is required");
    }

    public string MountPoint { get; }

    public CgroupPathMap Map { get; } = new();

    public long Version => Map.Version;

    /// <summary>Rescans done for unknown ids.</summary>
    public long Rescans => Interlocked.Read(ref _rescans);

    /// <summary>Walks the whole hierarchy; ids no longer present are marked removed.</summary>
    public int Scan()
    {
        lock (_scanLock) return ScanLocked();
    }

    /// <summary>Applies a cgroup mkdir/rmdir record.</summary>
    public void Apply(CgroupEvent record) => Map.Apply(record);

    public bool TryResolve(ulong cgroupId, out string path)
    {
        if (Map.TryGetPath(cgroupId, out path)) return true;
        long now = _time.GetTimestamp();
        if (Volatile.Read(ref _rescannedForMiss) && _time.GetElapsedTime(Interlocked.Read(ref _lastRescanTimestamp), now) < _options.RescanMinInterval) return false;
        // One rescan at a time; others do not wait for it.
        if (!_scanLock.TryEnter()) return false;
        try
        {
            if (Map.TryGetPath(cgroupId, out path)) return true;
            Interlocked.Exchange(ref _lastRescanTimestamp, now);
            Volatile.Write(ref _rescannedForMiss, true);
            Interlocked.Increment(ref _rescans);
            ScanLocked();
            return Map.TryGetPath(cgroupId, out path);
        }
        finally
        {
            _scanLock.Exit();
        }
    }

    /// <summary>Relative path ("/a/b") of a directory under the mount point.</summary>
    public string ToRelativePath(string absolute)
    {
        var relative = Path.GetRelativePath(MountPoint, absolute);
        return relative == "." ? "/" : "/" + relative;
    }

    /// <summary>The cgroup id of a path relative to the v2 root, 0 when it does not exist.</summary>
    public ulong IdOf(string relativePath) => CgroupV2.TryGetCgroupId(MountPoint + (relativePath == "/" ? "" : relativePath));

    private int ScanLocked()
    {
        var seen = new HashSet<ulong>();
        var pending = new Queue<(string Path, int Depth)>();
        pending.Enqueue((MountPoint, 0));
        int visited = 0;
        while (pending.TryDequeue(out var item))
        {
            if (visited >= _options.MaxDirectories)
            {
                LogWalkTruncated(_logger, _options.MaxDirectories);
                break;
            }
            ulong id = CgroupV2.TryGetCgroupId(item.Path);
            if (id == 0) continue; // removed while walking
            visited++;
            seen.Add(id);
            string relative = ToRelativePath(item.Path);
            if (!Map.TryGetPath(id, out var known) || known != relative) Map.Set(id, relative);
            if (item.Depth >= _options.MaxDepth) continue;
            try
            {
                foreach (var child in Directory.EnumerateDirectories(item.Path)) pending.Enqueue((child, item.Depth + 1));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Gone between listing and reading: nothing below to record.
            }
        }
        if (visited < _options.MaxDirectories)
            foreach (var id in Map.Snapshot().Keys)
                if (!seen.Contains(id)) Map.MarkRemoved(id);
        return visited;
    }

    [LoggerMessage(EventId = 2100, Level = LogLevel.Warning, Message = "cgroup walk stopped after {MaxDirectories} directories; ids beyond resolve only from mkdir records")]
    private static partial void LogWalkTruncated(ILogger logger, int maxDirectories);
}
