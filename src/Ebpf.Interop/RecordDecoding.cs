using Ebpf.Events;

namespace Ebpf.Interop;

// TEMPORARY until the kernel branch's NodeEventDecoder lands.
internal static class RecordDecoding
{
    internal static NodeEvent? Decode(ReadOnlySpan<byte> record, out string? error)
    {
        error = "no-decoder";
        return record.Length < 0 ? null : null;
    }
}
