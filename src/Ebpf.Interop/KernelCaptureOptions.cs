namespace Ebpf.Interop;

/// <summary>Which tasks produce records (the <c>filter_mode</c> global of the BPF object).</summary>
public enum CaptureFilterMode : uint
{
    /// <summary>Every task on the host.</summary>
    All = 0,
    /// <summary>Every task outside the root cgroup of the v2 hierarchy.</summary>
    NonRoot = 1,
    /// <summary>Only tasks under one of the container root cgroups (kubepods roots). The default.</summary>
    Containers = 2,
}

/// <summary>Options of <see cref="KernelCapture"/>. Validated by <see cref="Validate"/> when the capture starts.</summary>
public sealed class KernelCaptureOptions
{
    /// <summary>Maximum number of file path prefixes (bpf/lib/maps.h FILE_PREFIX_SLOTS).</summary>
    public const int MaxFilePathPrefixes = 4;

    /// <summary>Maximum length of one prefix in bytes, NUL excluded (FILE_PREFIX_CAP − 1).</summary>
    public const int MaxFilePathPrefixBytes = 63;

    /// <summary>
    /// Size of the kernel ring buffer in bytes: a power of two and a multiple of the page size.
    /// Defaults to 8 MiB (about 70 000 file-open records).
    /// </summary>
    public int RingBufferBytes { get; set; } = 8 * 1024 * 1024;

    /// <summary>
    /// The kernel wakes the reader once this many bytes wait in the ring buffer; below it, records wait for the
    /// next poll timeout. 0 wakes the reader on every record (lowest latency, most wake-ups). Defaults to 64 KiB.
    /// </summary>
    public long WakeupThresholdBytes { get; set; } = 64 * 1024;

    /// <summary>How long one ring_buffer__poll waits, in ms: the latency bound below the wake-up threshold. Defaults to 100.</summary>
    public int PollTimeoutMs { get; set; } = 100;

    /// <summary>Capacity of the channel between the reader thread and consumers; a full channel drops and counts. Defaults to 65 536.</summary>
    public int ChannelCapacity { get; set; } = 65_536;

    /// <summary>Which tasks produce records. Defaults to <see cref="CaptureFilterMode.Containers"/>.</summary>
    public CaptureFilterMode FilterMode { get; set; } = CaptureFilterMode.Containers;

    /// <summary>
    /// When non-empty, only file opens whose path starts with one of these prefixes are captured (at most
    /// <see cref="MaxFilePathPrefixes"/>, each at most <see cref="MaxFilePathPrefixBytes"/> bytes). Defaults to empty: all paths.
    /// </summary>
    public IList<string> FilePathPrefixes { get; set; } = [];

    /// <summary>Capture file opens that failed (result &lt; 0). Defaults to true.</summary>
    public bool CaptureFailedOpens { get; set; } = true;

    /// <summary>Find kubepods roots under the v2 hierarchy at start. Defaults to true.</summary>
    public bool DiscoverKubernetesRoots { get; set; } = true;

    /// <summary>
    /// When a cgroup_mkdir record shows a new top-level kubepods directory, add it as a container root.
    /// Defaults to true.
    /// </summary>
    public bool TrackNewKubernetesRoots { get; set; } = true;

    /// <summary>
    /// Names of the top-level v2 cgroup directories under which pods live, used for discovery and tracking.
    /// Defaults to <c>kubepods</c> (kubelet cgroupfs driver) and <c>kubepods.slice</c> (systemd driver).
    /// </summary>
    public IList<string> KubernetesRootNames { get; set; } = [.. CgroupV2.KubernetesRootNames];

    /// <summary>Extra container root cgroup ids (v2 ids: directory inode numbers). Defaults to empty.</summary>
    public IList<ulong> ContainerRootCgroupIds { get; set; } = [];

    /// <summary>Do not capture this process's own events. Defaults to true.</summary>
    public bool IgnoreOwnProcess { get; set; } = true;

    /// <summary>Run <see cref="KernelPreflight"/> (and mount tracefs when needed) before loading. Defaults to true.</summary>
    public bool RunPreflight { get; set; } = true;

    /// <summary>How often the boot-clock offset is re-sampled. Defaults to 1 minute.</summary>
    public TimeSpan BootClockResampleInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        var page = Environment.SystemPageSize;
        if (RingBufferBytes < page || (RingBufferBytes & (RingBufferBytes - 1)) != 0)
            throw new ArgumentException($"{nameof(RingBufferBytes)} must be a power of two of at least the page size ({page}); got {RingBufferBytes}.");
        if (WakeupThresholdBytes < 0 || WakeupThresholdBytes >= RingBufferBytes)
            throw new ArgumentException($"{nameof(WakeupThresholdBytes)} must be in [0, {nameof(RingBufferBytes)}); got {WakeupThresholdBytes}.");
        if (PollTimeoutMs is < 1 or > 10_000)
            throw new ArgumentException($"{nameof(PollTimeoutMs)} must be in [1, 10000]; got {PollTimeoutMs}.");
        if (ChannelCapacity < 1)
            throw new ArgumentException($"{nameof(ChannelCapacity)} must be positive; got {ChannelCapacity}.");
        if (!Enum.IsDefined(FilterMode))
            throw new ArgumentException($"{nameof(FilterMode)} {(uint)FilterMode} is not a known mode.");
        if (FilePathPrefixes.Count > MaxFilePathPrefixes)
            throw new ArgumentException($"{nameof(FilePathPrefixes)} holds at most {MaxFilePathPrefixes} prefixes; got {FilePathPrefixes.Count}.");
        foreach (var prefix in FilePathPrefixes)
        {
            if (string.IsNullOrEmpty(prefix) || prefix.Contains('\0') || System.Text.Encoding.UTF8.GetByteCount(prefix) > MaxFilePathPrefixBytes)
                throw new ArgumentException($"{nameof(FilePathPrefixes)} entry '{prefix}' must be 1..{MaxFilePathPrefixBytes} bytes without NUL.");
        }
        if (KubernetesRootNames.Any(n => string.IsNullOrEmpty(n) || n.Contains('/')))
            throw new ArgumentException($"{nameof(KubernetesRootNames)} entries must be single directory names.");
        if (BootClockResampleInterval <= TimeSpan.Zero && BootClockResampleInterval != Timeout.InfiniteTimeSpan)
            throw new ArgumentException($"{nameof(BootClockResampleInterval)} must be positive.");
    }
}
