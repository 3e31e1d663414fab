namespace Ebpf.Interop.Tests;

public sealed class BootClockTests
{
    [Fact]
    public void ToWallClock_CurrentBootTime_IsNowOnTheWallClock()
    {
        using var clock = new BootClock(resampleInterval: Timeout.InfiniteTimeSpan);
        var boot = LibcKernelClockSource.Instance.BootTimeNs();
        var wall = clock.ToWallClock((ulong)boot);
        Assert.InRange(wall, DateTimeOffset.UtcNow.AddMilliseconds(-200), DateTimeOffset.UtcNow.AddMilliseconds(200));
    }

    [Fact]
    public void ToWallClock_BootTimeFromProcUptime_AgreesWithSystemBootTime()
    {
        // /proc/uptime is CLOCK_BOOTTIME in seconds: boot time 0 maps to "now - uptime".
        using var clock = new BootClock(resampleInterval: Timeout.InfiniteTimeSpan);
        var uptime = double.Parse(File.ReadAllText("/proc/uptime").Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        var bootedAt = clock.ToWallClock(0);
        Assert.InRange((DateTimeOffset.UtcNow.AddSeconds(-uptime) - bootedAt).Duration(), TimeSpan.Zero, TimeSpan.FromSeconds(1));
    }

    [Fact]
    public void Resample_WallClockStepped_TimerPicksUpNewOffset()
    {
        var source = new SteppableClockSource { BootNs = 5_000_000_000, RealNs = 1_700_000_000_000_000_000 };
        var time = new ManualTimeProvider();
        using var clock = new BootClock(time, source, TimeSpan.FromSeconds(30));
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000 - 5_000), clock.ToWallClock(0));

        source.RealNs += 3_000_000_000; // NTP stepped the wall clock 3 s forward
        time.Advance(TimeSpan.FromSeconds(29));
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000 - 5_000), clock.ToWallClock(0));
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000 - 2_000), clock.ToWallClock(0));
    }

    [Fact]
    public void Resample_SlowReadWindow_UsesTightestSampleMidpoint()
    {
        // Five (boot, real, boot) samples; the second brackets the real read by 2 ns, the others by 1 ms: it wins.
        var source = new ScriptedClockSource([0, 1_000_000, 1_000_010, 1_000_012, 2_000_000, 3_000_000, 4_000_000, 5_000_000, 6_000_000, 7_000_000], realNs: 10_000_000_000);
        using var clock = new BootClock(source: source, resampleInterval: Timeout.InfiniteTimeSpan);
        Assert.Equal(10_000_000_000 - 1_000_011, clock.OffsetNs);
    }

    private sealed class SteppableClockSource : IKernelClockSource
    {
        public long BootNs;
        public long RealNs;
        public long BootTimeNs() => BootNs;
        public long RealTimeNs() => RealNs;
    }

    private sealed class ScriptedClockSource(long[] boots, long realNs) : IKernelClockSource
    {
        private int _next;
        public long BootTimeNs() => boots[Math.Min(_next++, boots.Length - 1)];
        public long RealTimeNs() => realNs;
    }
}

/// <summary>A TimeProvider whose timers fire only when the test advances time.</summary>
internal sealed class ManualTimeProvider : TimeProvider
{
    private readonly List<ManualTimer> _timers = [];
    private DateTimeOffset _now = DateTimeOffset.UnixEpoch;

    public override DateTimeOffset GetUtcNow() => _now;

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new ManualTimer(callback, state, _now + dueTime, period);
        _timers.Add(timer);
        return timer;
    }

    public void Advance(TimeSpan by)
    {
        _now += by;
        foreach (var t in _timers.ToArray())
        {
            while (!t.Disposed && t.Due <= _now)
            {
                t.Due = t.Period > TimeSpan.Zero ? t.Due + t.Period : DateTimeOffset.MaxValue;
                t.Callback(t.State);
            }
        }
    }

    private sealed class ManualTimer(TimerCallback callback, object? state, DateTimeOffset due, TimeSpan period) : ITimer
    {
        public TimerCallback Callback { get; } = callback;
        public object? State { get; } = state;
        public DateTimeOffset Due { get; set; } = due;
        public TimeSpan Period { get; set; } = period;
        public bool Disposed { get; private set; }
        public bool Change(TimeSpan dueTime, TimeSpan period) => true;
        public void Dispose() => Disposed = true;
        public ValueTask DisposeAsync()
        {
            Disposed = true;
            return ValueTask.CompletedTask;
        }
    }
}
