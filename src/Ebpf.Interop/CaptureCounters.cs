using Ebpf.Events;

namespace Ebpf.Interop;

/// <summary>
/// Where events were counted or lost, at one instant. Every place where a record can be lost has a counter here:
/// kernel reserve/output failures (per kind, summed over CPUs), records decoded but not handed off because the
/// channel was full, and records that could not be decoded (by reason).
/// </summary>
public sealed record CaptureCounters(
    IReadOnlyDictionary<EventKind, ulong> KernelDropsByKind,
    IReadOnlyDictionary<EventKind, ulong> HandoffDropsByKind,
    IReadOnlyDictionary<string, ulong> DecodeErrorsByReason,
    IReadOnlyDictionary<EventKind, ulong> EventsByKind)
{
    public ulong KernelDrops => Sum(KernelDropsByKind.Values);
    public ulong HandoffDrops => Sum(HandoffDropsByKind.Values);
    public ulong DecodeErrors => Sum(DecodeErrorsByReason.Values);
    /// <summary>Records decoded and handed off to the channel.</summary>
    public ulong Events => Sum(EventsByKind.Values);

    /// <summary>Records of a kind that were lost anywhere (kernel or hand-off).</summary>
    public ulong DropsOf(EventKind kind) =>
        KernelDropsByKind.GetValueOrDefault(kind) + HandoffDropsByKind.GetValueOrDefault(kind);

    private static ulong Sum(IEnumerable<ulong> values)
    {
        ulong total = 0;
        foreach (var v in values)
            total += v;
        return total;
    }
}
