using System.Net;

namespace Ebpf.Events;

/// <summary>
/// Record kinds of the kernel ABI (bpf/include/events.h, <c>enum event_kind</c>).
/// Append-only: a value, once released, never changes meaning.
/// </summary>
public enum EventKind : ushort
{
    Unknown = 0,
    Exec = 1,
    Fork = 2,
    Exit = 3,
    Connect = 4,
    FileOpen = 5,
    CgroupMkdir = 6,
    CgroupRmdir = 7,
}

/// <summary>
/// A decoded kernel record. The fields of the common header (events.h <c>struct event_header</c>) live here;
/// each kind adds its own. Times are CLOCK_BOOTTIME nanoseconds as the kernel reports them;
/// <see cref="Time"/> is the wall-clock time computed once by the boot clock (see BootClock in Ebpf.Interop).
/// </summary>
public abstract class NodeEvent
{
    public abstract EventKind Kind { get; }

    /// <summary>CLOCK_BOOTTIME in ns at which the kernel produced the record (bpf_ktime_get_boot_ns).</summary>
    public ulong BootTimeNs { get; init; }

    /// <summary>Wall-clock time of the record; set by the reader from <see cref="BootTimeNs"/>.</summary>
    public DateTimeOffset Time { get; set; }

    /// <summary>cgroup v2 id (inode of the cgroup directory) of the task that produced the record.</summary>
    public ulong CgroupId { get; init; }

    /// <summary>Process id (thread-group id) as seen from the initial pid namespace.</summary>
    public int Tgid { get; init; }

    /// <summary>Thread id as seen from the initial pid namespace.</summary>
    public int Tid { get; init; }
}

/// <summary>A task replaced its image (sched_process_exec).</summary>
public sealed class ExecEvent : NodeEvent
{
    public override EventKind Kind => EventKind.Exec;
    /// <summary>Thread-group id of the real parent.</summary>
    public int ParentTgid { get; init; }
    public uint Uid { get; init; }
    public uint Gid { get; init; }
    /// <summary>Audit login uid; uint.MaxValue when unset.</summary>
    public uint LoginUid { get; init; }
    /// <summary>Task start time (task_struct.start_boottime, ns since boot): with Tgid it identifies the process across pid reuse.</summary>
    public ulong StartBootTimeNs { get; init; }
    public string Filename { get; init; } = "";
    public IReadOnlyList<string> Argv { get; init; } = [];
    /// <summary>True when argv was longer than the capture cap; <see cref="ArgvOriginalLength"/> says how long it was.</summary>
    public bool ArgvTruncated { get; init; }
    public int ArgvOriginalLength { get; init; }
    /// <summary>Working directory when the kernel side could resolve it, else empty.</summary>
    public string Cwd { get; init; } = "";
    /// <summary>comm after the exec (the new image's name, at most 15 bytes).</summary>
    public string Comm { get; init; } = "";
    /// <summary>comm before the exec: e.g. "runc:[2:INIT]" for a process started by runc exec.</summary>
    public string PreviousComm { get; init; } = "";
    /// <summary>True when <see cref="PreviousComm"/> names a container runtime (runc/crun init).</summary>
    public bool PreviousImageWasRuntime { get; init; }
    public uint PidNamespaceInode { get; init; }
    public uint MountNamespaceInode { get; init; }
}

/// <summary>A task was created (sched_process_fork). Threads are reported too; <see cref="IsThread"/> tells them apart.</summary>
public sealed class ForkEvent : NodeEvent
{
    public override EventKind Kind => EventKind.Fork;
    public int ParentTgid { get; init; }
    public int ParentPid { get; init; }
    public int ChildTgid { get; init; }
    public int ChildPid { get; init; }
    public ulong ChildStartBootTimeNs { get; init; }
    /// <summary>cgroup v2 id read from the child task (it can differ from the parent's after CLONE_INTO_CGROUP).</summary>
    public ulong ChildCgroupId { get; init; }
    public bool IsThread => ChildTgid == ParentTgid;
}

/// <summary>A process ended (sched_process_exit of the last thread, or the group leader).</summary>
public sealed class ExitEvent : NodeEvent
{
    public override EventKind Kind => EventKind.Exit;
    /// <summary>Exit status as wait(2) reports it: (code &lt;&lt; 8) | signal.</summary>
    public int WaitStatus { get; init; }
    public bool GroupDead { get; init; }
    public ulong StartBootTimeNs { get; init; }
    /// <summary>WEXITSTATUS when the process exited normally, else null.</summary>
    public int? ExitCode => (WaitStatus & 0x7f) == 0 ? (WaitStatus >> 8) & 0xff : null;
    /// <summary>WTERMSIG when the process was killed by a signal, else null.</summary>
    public int? TermSignal => (WaitStatus & 0x7f) != 0 ? WaitStatus & 0x7f : null;
}

public enum SocketFamily : ushort
{
    Unspecified = 0,
    Unix = 1,
    Inet = 2,
    Inet6 = 10,
}

/// <summary>A connect(2) call and its result (sys_enter_connect + sys_exit_connect).</summary>
public sealed class ConnectEvent : NodeEvent
{
    public override EventKind Kind => EventKind.Connect;
    public SocketFamily Family { get; init; }
    /// <summary>Remote address for AF_INET/AF_INET6, else null.</summary>
    public IPAddress? Address { get; init; }
    public ushort Port { get; init; }
    /// <summary>Socket path for AF_UNIX (abstract sockets start with '@'), else empty.</summary>
    public string UnixPath { get; init; } = "";
    public int Fd { get; init; }
    /// <summary>0 on success, -errno on failure (-115 EINPROGRESS for non-blocking sockets).</summary>
    public int Result { get; init; }
}

/// <summary>An open of a file (openat/openat2 enter + exit).</summary>
public sealed class FileOpenEvent : NodeEvent
{
    public override EventKind Kind => EventKind.FileOpen;
    /// <summary>Path as passed to the syscall (may be relative to <see cref="DirFd"/>).</summary>
    public string Path { get; init; } = "";
    public bool PathTruncated { get; init; }
    public int DirFd { get; init; }
    public int Flags { get; init; }
    public int Mode { get; init; }
    /// <summary>The new fd, or -errno (-2 ENOENT ...).</summary>
    public int Result { get; init; }
    public bool IsAbsolute => Path.StartsWith('/');
}

/// <summary>A cgroup directory was created or removed (cgroup_mkdir / cgroup_rmdir tracepoints), v2 hierarchy only.</summary>
public sealed class CgroupEvent : NodeEvent
{
    public CgroupEvent(EventKind kind) => Kind = kind is EventKind.CgroupMkdir or EventKind.CgroupRmdir
        ? kind : throw new ArgumentOutOfRangeException(nameof(kind));
    public override EventKind Kind { get; }
    /// <summary>Id of the cgroup created or removed (not of the task that did it: see <see cref="NodeEvent.CgroupId"/>).</summary>
    public ulong TargetCgroupId { get; init; }
    public int Level { get; init; }
    /// <summary>Path relative to the v2 root, starting with '/'.</summary>
    public string Path { get; init; } = "";
}
