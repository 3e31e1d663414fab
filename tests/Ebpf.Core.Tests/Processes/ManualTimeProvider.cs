namespace Ebpf.Core.Tests.Processes;

/// <summary>A clock the test moves by hand (timers are not needed by the code under test).</summary>
internal sealed class ManualTimeProvider : TimeProvider
{
    private DateTimeOffset _now = new(2026, 11, 22, 10, 0, 0, TimeSpan.Zero);
    public override DateTimeOffset GetUtcNow() => _now;
    public override long TimestampFrequency => TimeSpan.TicksPerSecond;
    public override long GetTimestamp() => _now.UtcTicks;
    public void Advance(TimeSpan by) => _now += by;
}
