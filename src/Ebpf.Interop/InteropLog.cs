using Microsoft.Extensions.Logging;

namespace Ebpf.Interop;

/// <summary>Log messages of the kernel capture. Event ids 1000-1099 belong to Ebpf.Interop.</summary>
internal static partial class InteropLog
{
    [LoggerMessage(EventId = 1000, Message = "libbpf: {Line}")]
    public static partial void Libbpf(ILogger logger, LogLevel level, string line);

    [LoggerMessage(EventId = 1001, Level = LogLevel.Information, Message = "Kernel capture started: {ProgramCount} programs attached, ring buffer {RingBufferBytes} bytes, filter {FilterMode}, {RootCount} container roots")]
    public static partial void Started(ILogger logger, int programCount, int ringBufferBytes, CaptureFilterMode filterMode, int rootCount);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Information, Message = "Kernel capture stopped")]
    public static partial void Stopped(ILogger logger);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Warning, Message = "ring_buffer__poll failed with errno {Errno}; the reader stops")]
    public static partial void PollFailed(ILogger logger, int errno);

    [LoggerMessage(EventId = 1004, Level = LogLevel.Information, Message = "Container root cgroup added: {CgroupId} ({Path})")]
    public static partial void RootAdded(ILogger logger, ulong cgroupId, string path);

    [LoggerMessage(EventId = 1005, Level = LogLevel.Warning, Message = "Could not add container root cgroup {CgroupId}: {Reason}")]
    public static partial void RootAddFailed(ILogger logger, ulong cgroupId, string reason);

    [LoggerMessage(EventId = 1006, Level = LogLevel.Debug, Message = "Boot clock re-sampled: offset {OffsetNs} ns, read window {WindowNs} ns")]
    public static partial void BootClockSampled(ILogger logger, long offsetNs, long windowNs);
}
