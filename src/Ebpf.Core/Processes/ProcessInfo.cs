namespace Ebpf.Core.Processes;

/// <summary>How the table learned about a process.</summary>
public enum ProcessOrigin { ProcScan = 1, Fork, Exec }

/// <summary>
/// One process as the table knows it: an immutable snapshot, replaced on every change.
/// <see cref="ExecId"/> names the image run: "&lt;key&gt;:&lt;n&gt;" where n counts the execs seen for this process
/// (0: the image it had when forked or when /proc was scanned).
/// </summary>
public sealed record ProcessInfo
{
    public required ProcessKey Key { get; init; }
    public ProcessKey? ParentKey { get; init; }
    public int ParentTgid { get; init; }
    public required string ExecId { get; init; }
    public int ExecCount { get; init; }
    public ProcessOrigin Origin { get; init; }
    public string Filename { get; init; } = "";
    public IReadOnlyList<string> Argv { get; init; } = [];
    public string Cwd { get; init; } = "";
    public uint Uid { get; init; }
    public ulong CgroupId { get; init; }
    public DateTimeOffset? StartTime { get; init; }
    public DateTimeOffset? ExecTime { get; init; }
    public DateTimeOffset? ExitTime { get; init; }
    /// <summary>wait(2) status, set once the process exited.</summary>
    public int? WaitStatus { get; init; }
    public bool Exited => ExitTime is not null;
    public int Tgid => Key.Tgid;

    internal static string MakeExecId(ProcessKey key, int execCount) =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{key.Tgid}@{key.StartTicks}:{execCount}");
}

/// <summary>A process found by a /proc scan at start-up (see ProcScanner in Ebpf.Kubernetes).</summary>
public sealed record ProcessSeed
{
    public required int Tgid { get; init; }
    public int ParentTgid { get; init; }
    /// <summary>/proc/&lt;pid&gt;/stat field 22.</summary>
    public required ulong StartTicks { get; init; }
    public string Exe { get; init; } = "";
    public IReadOnlyList<string> Argv { get; init; } = [];
    public string Cwd { get; init; } = "";
    public uint Uid { get; init; }
    /// <summary>cgroup v2 path relative to the v2 root ("/..."), empty when unknown.</summary>
    public string CgroupPath { get; init; } = "";
    /// <summary>Inode of the cgroup directory (the kernel's cgroup id); 0 when unknown.</summary>
    public ulong CgroupId { get; init; }
    public DateTimeOffset? StartTime { get; init; }
    public ProcessKey Key => new(Tgid, StartTicks);
}
