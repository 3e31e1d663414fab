using Ebpf.Interop.Native;
using Microsoft.Extensions.Logging;

namespace Ebpf.Interop;

/// <summary>Reads CLOCK_BOOTTIME and CLOCK_REALTIME; replaceable in tests.</summary>
public interface IKernelClockSource
{
    /// <summary>CLOCK_BOOTTIME in ns (the clock of bpf_ktime_get_boot_ns).</summary>
    long BootTimeNs();

    /// <summary>CLOCK_REALTIME in ns since the Unix epoch.</summary>
    long RealTimeNs();
}

/// <summary>clock_gettime(2) through libc.</summary>
public sealed unsafe class LibcKernelClockSource : IKernelClockSource
{
    public static LibcKernelClockSource Instance { get; } = new();

    public long BootTimeNs() => Read(LibC.CLOCK_BOOTTIME);

    public long RealTimeNs() => Read(LibC.CLOCK_REALTIME);

    private static long Read(int clock)
    {
        LibC.Timespec ts;
        if (LibC.clock_gettime(clock, &ts) != 0)
            throw new BpfException($"clock_gettime({clock})", System.Runtime.InteropServices.Marshal.GetLastPInvokeError());
        return ts.Seconds * 1_000_000_000L + ts.Nanoseconds;
    }
}

/// <summary>
/// Converts kernel CLOCK_BOOTTIME nanoseconds to wall-clock time: the one place this conversion happens.
/// The offset realtime − boottime moves when NTP steps or slews the wall clock (boottime never jumps), so it is
/// re-sampled every <c>resampleInterval</c> on the injected <see cref="TimeProvider"/>'s timer.
/// A sample is the tightest of a few (boot, real, boot) read triples, the real read paired with the boot midpoint.
/// </summary>
public sealed class BootClock : IDisposable
{
    private const int SampleAttempts = 5;
    private readonly IKernelClockSource _source;
    private readonly ILogger? _logger;
    private readonly ITimer? _timer;
    private long _offsetNs;

    /// <param name="timeProvider">Schedules re-sampling. Defaults to <see cref="TimeProvider.System"/>.</param>
    /// <param name="source">Clock reads. Defaults to clock_gettime through libc.</param>
    /// <param name="resampleInterval">Defaults to 1 minute; <see cref="Timeout.InfiniteTimeSpan"/> disables re-sampling.</param>
    public BootClock(TimeProvider? timeProvider = null, IKernelClockSource? source = null, TimeSpan? resampleInterval = null, ILogger? logger = null)
    {
        _source = source ?? LibcKernelClockSource.Instance;
        _logger = logger;
        Resample();
        var interval = resampleInterval ?? TimeSpan.FromMinutes(1);
        if (interval != Timeout.InfiniteTimeSpan)
            _timer = (timeProvider ?? TimeProvider.System).CreateTimer(_ => SafeResample(), null, interval, interval);
    }

    /// <summary>Current realtime − boottime offset in ns.</summary>
    public long OffsetNs => Interlocked.Read(ref _offsetNs);

    /// <summary>Wall-clock time of a CLOCK_BOOTTIME instant.</summary>
    public DateTimeOffset ToWallClock(ulong bootTimeNs)
    {
        var unixNs = (long)bootTimeNs + OffsetNs;
        return DateTimeOffset.UnixEpoch.AddTicks(unixNs / 100);
    }

    /// <summary>Takes a new offset sample now.</summary>
    public void Resample()
    {
        long bestWindow = long.MaxValue, bestOffset = 0;
        for (var i = 0; i < SampleAttempts; i++)
        {
            var before = _source.BootTimeNs();
            var real = _source.RealTimeNs();
            var after = _source.BootTimeNs();
            var window = after - before;
            if (window < bestWindow)
            {
                bestWindow = window;
                bestOffset = real - (before + window / 2);
            }
        }
        Interlocked.Exchange(ref _offsetNs, bestOffset);
        if (_logger is not null && _logger.IsEnabled(LogLevel.Debug))
            InteropLog.BootClockSampled(_logger, bestOffset, bestWindow);
    }

    private void SafeResample()
    {
        try
        {
            Resample();
        }
        catch (Exception)
        {
            // Keep the previous offset: a failed clock read must not take the timer thread down.
        }
    }

    public void Dispose() => _timer?.Dispose();
}
