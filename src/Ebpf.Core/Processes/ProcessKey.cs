using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace Ebpf.Core.Processes;

/// <summary>
/// Identifies a process across pid reuse: its tgid plus its start time in clock ticks since boot.
/// Ticks (USER_HZ = 100) rather than nanoseconds because /proc/&lt;pid&gt;/stat field 22 reports start time
/// in ticks (fs/proc/array.c: nsec_to_clock_t(task->start_boottime)); keys built from /proc at start-up and
/// from kernel records (start_boottime in ns) must agree.
/// </summary>
public readonly record struct ProcessKey(int Tgid, ulong StartTicks)
{
    public const ulong NanosecondsPerTick = 10_000_000;

    public static ProcessKey FromBootTimeNs(int tgid, ulong startBootTimeNs) => new(tgid, startBootTimeNs / NanosecondsPerTick);

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Tgid}@{StartTicks}");

    public static bool TryParse(string? text, [NotNullWhen(true)] out ProcessKey? key)
    {
        key = null;
        if (text is null) return false;
        int at = text.IndexOf('@', StringComparison.Ordinal);
        if (at <= 0
            || !int.TryParse(text.AsSpan(0, at), NumberStyles.None, CultureInfo.InvariantCulture, out int tgid)
            || !ulong.TryParse(text.AsSpan(at + 1), NumberStyles.None, CultureInfo.InvariantCulture, out ulong ticks))
            return false;
        key = new ProcessKey(tgid, ticks);
        return true;
    }
}
