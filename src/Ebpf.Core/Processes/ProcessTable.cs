using Ebpf.Events;

namespace Ebpf.Core.Processes;

/// <summary>Options for <see cref="ProcessTable"/>.</summary>
public sealed class ProcessTableOptions
{
    /// <summary>How long an exited process stays for late joins (records read after its exit). Defaults to 60 s.</summary>
    public TimeSpan ExitedRetention { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Most processes kept, live and exited; beyond it exited ones go first, then the least recently touched. Defaults to 65 536.</summary>
    public int MaxProcesses { get; set; } = 65_536;

    /// <summary>Longest ancestry chain returned (guards against cycles from pid reuse). Defaults to 128.</summary>
    public int MaxAncestryDepth { get; set; } = 128;

    public void Validate()
    {
        if (ExitedRetention < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(ExitedRetention), "must not be negative");
        if (MaxProcesses < 16) throw new ArgumentOutOfRangeException(nameof(MaxProcesses), "must be at least 16");
        if (MaxAncestryDepth < 1) throw new ArgumentOutOfRangeException(nameof(MaxAncestryDepth), "must be at least 1");
    }
}

/// <summary>
/// Every process on the node: seeded from a /proc scan, then kept current from exec/fork/exit records.
/// Keys are <see cref="ProcessKey"/> (tgid + start ticks) so a reused pid is a new process. Thread forks are
/// ignored. Exited processes stay <see cref="ProcessTableOptions.ExitedRetention"/> for records that arrive late,
/// and the table never holds more than <see cref="ProcessTableOptions.MaxProcesses"/> (evictions are counted).
/// All members are thread-safe; updates take a short lock.
/// </summary>
public sealed class ProcessTable
{
    private sealed class Node(ProcessInfo info)
    {
        public ProcessInfo Info = info;
        /// <summary>A set: removal on eviction must not scan a parent with thousands of children (a shim, init).</summary>
        public HashSet<ProcessKey>? Children;
        /// <summary>Position in the recency list (all entries) and, once exited, in the exit-order list.</summary>
        public readonly LinkedListNode<ProcessKey> Recency = new(info.Key);
        public LinkedListNode<ProcessKey>? ExitOrder;
        public long ExitedAtTicks;
    }

    private readonly Lock _lock = new();
    private readonly Dictionary<ProcessKey, Node> _byKey = new();
    private readonly Dictionary<int, ProcessKey> _liveByTgid = new();
    private readonly LinkedList<ProcessKey> _recency = new();
    private readonly LinkedList<ProcessKey> _exitOrder = new();
    private readonly ProcessTableOptions _options;
    private readonly TimeProvider _time;
    private readonly Func<ulong, string?>? _containerOfCgroup;
    private long _evictedForSize;
    private long _expired;
    private long _threadForksIgnored;
    private long _unknownExits;

    /// <param name="containerOfCgroup">cgroup id → container id (null for the host); bounds <see cref="Ancestry"/> at the container.</param>
    public ProcessTable(ProcessTableOptions? options = null, TimeProvider? time = null, Func<ulong, string?>? containerOfCgroup = null)
    {
        _options = options ?? new ProcessTableOptions();
        _options.Validate();
        _time = time ?? TimeProvider.System;
        _containerOfCgroup = containerOfCgroup;
    }

    public int Count { get { lock (_lock) return _byKey.Count; } }
    public int LiveCount { get { lock (_lock) return _liveByTgid.Count; } }
    /// <summary>Processes dropped because the table was full.</summary>
    public long EvictedForSize => Interlocked.Read(ref _evictedForSize);
    /// <summary>Exited processes removed after their retention.</summary>
    public long Expired => Interlocked.Read(ref _expired);
    public long ThreadForksIgnored => Interlocked.Read(ref _threadForksIgnored);
    /// <summary>Exit records of processes the table did not know.</summary>
    public long UnknownExits => Interlocked.Read(ref _unknownExits);

    /// <summary>Adds processes found by a /proc scan, then links parents by tgid.</summary>
    public void Seed(IEnumerable<ProcessSeed> seeds)
    {
        lock (_lock)
        {
            var added = new List<ProcessKey>();
            foreach (var seed in seeds)
            {
                var key = seed.Key;
                if (_byKey.ContainsKey(key)) continue;
                var info = new ProcessInfo
                {
                    Key = key, ParentTgid = seed.ParentTgid, ExecId = ProcessInfo.MakeExecId(key, 0), Origin = ProcessOrigin.ProcScan,
                    Filename = seed.Exe, Argv = seed.Argv, Cwd = seed.Cwd, Uid = seed.Uid, CgroupId = seed.CgroupId, StartTime = seed.StartTime,
                };
                AddLive(info);
                added.Add(key);
            }
            foreach (var key in added)
            {
                var node = _byKey[key];
                if (node.Info.ParentTgid > 0 && _liveByTgid.TryGetValue(node.Info.ParentTgid, out var parentKey) && parentKey != key)
                {
                    node.Info = node.Info with { ParentKey = parentKey };
                    AddChild(parentKey, key);
                }
            }
            EnforceLimits();
        }
    }

    /// <summary>Applies an exec, fork or exit record; other kinds are ignored. Returns the process after the change, if any.</summary>
    public ProcessInfo? Apply(NodeEvent record) => record switch
    {
        ExecEvent exec => ApplyExec(exec),
        ForkEvent fork => ApplyFork(fork),
        ExitEvent exit => ApplyExit(exit),
        _ => null,
    };

    public ProcessInfo? ApplyFork(ForkEvent fork)
    {
        if (fork.IsThread)
        {
            Interlocked.Increment(ref _threadForksIgnored);
            return null;
        }
        var key = ProcessKey.FromBootTimeNs(fork.ChildTgid, fork.ChildStartBootTimeNs);
        lock (_lock)
        {
            if (_byKey.TryGetValue(key, out var existing)) { Touch(existing); return existing.Info; }
            ProcessInfo? parent = _liveByTgid.TryGetValue(fork.ParentTgid, out var parentKey) ? _byKey[parentKey].Info : null;
            var info = new ProcessInfo
            {
                Key = key,
                ParentKey = parent?.Key,
                ParentTgid = fork.ParentTgid,
                ExecId = ProcessInfo.MakeExecId(key, 0),
                Origin = ProcessOrigin.Fork,
                // A fork runs the parent's image until it execs.
                Filename = parent?.Filename ?? "",
                Argv = parent?.Argv ?? [],
                Cwd = parent?.Cwd ?? "",
                Uid = parent?.Uid ?? 0,
                CgroupId = fork.ChildCgroupId != 0 ? fork.ChildCgroupId : fork.CgroupId,
                StartTime = fork.Time,
            };
            AddLive(info);
            if (parent is not null) AddChild(parent.Key, key);
            EnforceLimits();
            return info;
        }
    }

    public ProcessInfo ApplyExec(ExecEvent exec)
    {
        var key = ProcessKey.FromBootTimeNs(exec.Tgid, exec.StartBootTimeNs);
        lock (_lock)
        {
            if (_byKey.TryGetValue(key, out var node))
            {
                var old = node.Info;
                node.Info = old with
                {
                    ExecId = ProcessInfo.MakeExecId(key, old.ExecCount + 1),
                    ExecCount = old.ExecCount + 1,
                    Origin = ProcessOrigin.Exec,
                    Filename = exec.Filename,
                    Argv = exec.Argv,
                    Cwd = exec.Cwd.Length > 0 ? exec.Cwd : old.Cwd,
                    Uid = exec.Uid,
                    CgroupId = exec.CgroupId,
                    ExecTime = exec.Time,
                };
                Touch(node);
                return node.Info;
            }
            // Fork missed (lost record, or the process predates the scan): start from the exec.
            ProcessKey? parentKey = _liveByTgid.TryGetValue(exec.ParentTgid, out var pk) ? pk : null;
            var info = new ProcessInfo
            {
                Key = key, ParentKey = parentKey, ParentTgid = exec.ParentTgid,
                ExecId = ProcessInfo.MakeExecId(key, 1), ExecCount = 1, Origin = ProcessOrigin.Exec,
                Filename = exec.Filename, Argv = exec.Argv, Cwd = exec.Cwd, Uid = exec.Uid, CgroupId = exec.CgroupId,
                ExecTime = exec.Time,
            };
            AddLive(info);
            if (parentKey is { } p) AddChild(p, key);
            EnforceLimits();
            return info;
        }
    }

    public ProcessInfo? ApplyExit(ExitEvent exit)
    {
        // A non-leader thread leaving a live group is not the end of the process.
        if (!exit.GroupDead && exit.Tid != 0 && exit.Tid != exit.Tgid) return null;
        var key = ProcessKey.FromBootTimeNs(exit.Tgid, exit.StartBootTimeNs);
        lock (_lock)
        {
            if (!_byKey.TryGetValue(key, out var node))
            {
                Interlocked.Increment(ref _unknownExits);
                return null;
            }
            if (node.Info.Exited) return node.Info;
            node.Info = node.Info with { ExitTime = exit.Time, WaitStatus = exit.WaitStatus };
            MarkExited(node);
            EnforceLimits();
            return node.Info;
        }
    }

    public bool TryGet(ProcessKey key, out ProcessInfo info)
    {
        lock (_lock)
        {
            if (_byKey.TryGetValue(key, out var node)) { info = node.Info; return true; }
        }
        info = null!;
        return false;
    }

    public bool TryGetLive(int tgid, out ProcessInfo info)
    {
        lock (_lock)
        {
            if (_liveByTgid.TryGetValue(tgid, out var key)) { info = _byKey[key].Info; return true; }
        }
        info = null!;
        return false;
    }

    /// <summary>Every live process, in no particular order: a copy, for start-up seeding of consumers.</summary>
    public IReadOnlyList<ProcessInfo> LiveProcesses()
    {
        lock (_lock)
            return _liveByTgid.Values.Select(key => _byKey[key].Info).ToList();
    }

    /// <summary>Known children (live and retained exited), oldest first.</summary>
    public IReadOnlyList<ProcessInfo> Children(ProcessKey key)
    {
        lock (_lock)
        {
            if (!_byKey.TryGetValue(key, out var node) || node.Children is null) return [];
            var result = new List<ProcessInfo>(node.Children.Count);
            foreach (var child in node.Children)
                if (_byKey.TryGetValue(child, out var c)) result.Add(c.Info);
            result.Sort(static (a, b) => a.Key.StartTicks != b.Key.StartTicks ? a.Key.StartTicks.CompareTo(b.Key.StartTicks) : a.Key.Tgid.CompareTo(b.Key.Tgid));
            return result;
        }
    }

    /// <summary>
    /// The process and its ancestors, nearest first. Stops at the first ancestor in another container (or on the
    /// host when the process is in a container): the chain ends at the container's first process. Host processes
    /// go up to the oldest known ancestor.
    /// </summary>
    public IReadOnlyList<ProcessInfo> Ancestry(ProcessKey key)
    {
        lock (_lock)
        {
            if (!_byKey.TryGetValue(key, out var node)) return [];
            var chain = new List<ProcessInfo> { node.Info };
            string? container = _containerOfCgroup?.Invoke(node.Info.CgroupId);
            var current = node.Info;
            while (chain.Count < _options.MaxAncestryDepth && current.ParentKey is { } parentKey && _byKey.TryGetValue(parentKey, out var parent))
            {
                if (_containerOfCgroup is not null && !string.Equals(_containerOfCgroup(parent.Info.CgroupId), container, StringComparison.Ordinal))
                    break;
                if (parent.Info.Key == current.Key) break;
                chain.Add(parent.Info);
                current = parent.Info;
            }
            return chain;
        }
    }

    /// <summary>Removes exited processes past their retention. Also done on every update; call it from a timer when idle.</summary>
    public int EvictExpired()
    {
        lock (_lock) return EvictExpiredLocked();
    }

    private void AddLive(ProcessInfo info)
    {
        var node = new Node(info);
        // pid reuse while the old process's exit record was lost: the old one is gone.
        if (_liveByTgid.TryGetValue(info.Tgid, out var previous) && previous != info.Key && _byKey.TryGetValue(previous, out var stale))
        {
            stale.Info = stale.Info with { ExitTime = stale.Info.ExitTime ?? _time.GetUtcNow() };
            MarkExited(stale);
        }
        _byKey[info.Key] = node;
        _liveByTgid[info.Tgid] = info.Key;
        _recency.AddLast(node.Recency);
    }

    private void AddChild(ProcessKey parent, ProcessKey child)
    {
        if (_byKey.TryGetValue(parent, out var p)) (p.Children ??= []).Add(child);
    }

    private void Touch(Node node)
    {
        _recency.Remove(node.Recency);
        _recency.AddLast(node.Recency);
    }

    private void MarkExited(Node node)
    {
        if (_liveByTgid.TryGetValue(node.Info.Tgid, out var live) && live == node.Info.Key) _liveByTgid.Remove(node.Info.Tgid);
        if (node.ExitOrder is not null) return;
        node.ExitedAtTicks = _time.GetTimestamp();
        node.ExitOrder = _exitOrder.AddLast(node.Info.Key);
    }

    private void EnforceLimits()
    {
        EvictExpiredLocked();
        while (_byKey.Count > _options.MaxProcesses)
        {
            var victim = _exitOrder.First?.Value ?? _recency.First!.Value;
            Remove(victim);
            _evictedForSize++;
        }
    }

    private int EvictExpiredLocked()
    {
        int removed = 0;
        long now = _time.GetTimestamp();
        while (_exitOrder.First is { } first && _byKey.TryGetValue(first.Value, out var node)
               && _time.GetElapsedTime(node.ExitedAtTicks, now) >= _options.ExitedRetention)
        {
            Remove(first.Value);
            removed++;
        }
        _expired += removed;
        return removed;
    }

    private void Remove(ProcessKey key)
    {
        if (!_byKey.Remove(key, out var node)) return;
        _recency.Remove(node.Recency);
        if (node.ExitOrder is not null) _exitOrder.Remove(node.ExitOrder);
        if (_liveByTgid.TryGetValue(key.Tgid, out var live) && live == key) _liveByTgid.Remove(key.Tgid);
        if (node.Info.ParentKey is { } parentKey && _byKey.TryGetValue(parentKey, out var parent)) parent.Children?.Remove(key);
    }
}
