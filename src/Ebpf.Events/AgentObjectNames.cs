namespace Ebpf.Events;

/// <summary>
/// Names inside build/bpf/agent.bpf.o that user space refers to (docs/abi.md). Checked against the object's BTF by
/// tests/Ebpf.Events.Tests (AgentObjectNamesTests), so a rename in bpf/ fails a test instead of a load at run time.
/// </summary>
public static class AgentObjectNames
{
    /// <summary>File name of the object under build/bpf/ (and of the embedded resource).</summary>
    public const string ObjectFileName = "agent.bpf.o";

    /// <summary>Maps user space reads or writes.</summary>
    public static class Maps
    {
        /// <summary>BPF_MAP_TYPE_RINGBUF: every record (8 MiB by default; resizable before load).</summary>
        public const string Events = "events";
        /// <summary>PERCPU_ARRAY, key u32 <see cref="EventKind"/>, value u64 per CPU: records lost in the kernel.</summary>
        public const string DropCounters = "drop_counters";
        /// <summary>HASH, key u64 cgroup v2 id, value u8: the container roots of <see cref="FilterMode.Containers"/>.</summary>
        public const string ContainerRoots = "container_roots";
        /// <summary>The load-time globals below (find it by this section name).</summary>
        public const string Rodata = ".rodata";
    }

    /// <summary><c>const volatile</c> globals in .rodata, set before load.</summary>
    public static class Globals
    {
        /// <summary>u32 <see cref="FilterMode"/>; default 2 (containers).</summary>
        public const string FilterMode = "filter_mode";
        /// <summary>u64 bytes waiting in the ring buffer that force a wake-up; default 65536; 0 wakes on every record.</summary>
        public const string WakeupThresholdBytes = "wakeup_threshold_bytes";
        /// <summary>u32 tgid never reported (the agent itself); default 0 (none).</summary>
        public const string IgnoreTgid = "ignore_tgid";
        /// <summary>u32, 1 drops failed opens in the kernel; default 0.</summary>
        public const string IgnoreFailedOpens = "ignore_failed_opens";
        /// <summary>u32 used slots of <see cref="FilePrefixes"/>; default 0 (no allow-list).</summary>
        public const string FilePrefixCount = "file_prefix_count";
        /// <summary>char[<see cref="FilePrefixSlots"/>][<see cref="FilePrefixCapacity"/>], NUL-terminated path prefixes.</summary>
        public const string FilePrefixes = "file_prefixes";

        public const int FilePrefixSlots = 4;
        public const int FilePrefixCapacity = 64;
    }

    /// <summary>Programs, each attached by libbpf from its section name (docs/abi.md lists the tracepoints).</summary>
    public static IReadOnlyList<string> Programs { get; } =
    [
        "handle_exec", "handle_fork", "handle_exit",
        "enter_execve", "enter_execveat", "exit_execve", "exit_execveat",
        "enter_connect", "exit_connect",
        "enter_openat", "exit_openat", "enter_openat2", "exit_openat2", "enter_open", "exit_open",
        "handle_cgroup_mkdir", "handle_cgroup_rmdir",
    ];
}
