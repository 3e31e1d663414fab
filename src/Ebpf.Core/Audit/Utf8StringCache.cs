using System.Text;

namespace Ebpf.Core.Audit;

/// <summary>
/// A small, fixed-size, lossy cache from short UTF-8 byte strings to their decoded <see cref="string"/>.
/// </summary>
/// <remarks>
/// Audit events repeat the same few hundred short values over and over (verbs, stages, levels, group names,
/// usernames, user agents, resources, namespaces, annotation keys); decoding each occurrence anew was a large share
/// of the parser's allocations. Each slot holds one entry chosen by hash; a miss replaces it, so memory is bounded by
/// <see cref="Slots"/> × <see cref="MaxLength"/> whatever the input, and hostile input can only cost hits, never
/// correctness. Entries are immutable and slots are written with single reference stores, so it is thread-safe
/// without locks.
/// </remarks>
internal sealed class Utf8StringCache
{
    /// <summary>Longest value cached; longer ones are decoded every time.</summary>
    public const int MaxLength = 64;

    /// <summary>Number of slots (a power of two).</summary>
    public const int Slots = 2048;

    private sealed class Entry(byte[] utf8, string value)
    {
        public readonly byte[] Utf8 = utf8;
        public readonly string Value = value;
    }

    private readonly Entry?[] _slots = new Entry?[Slots];

    /// <summary>The decoded string for <paramref name="utf8"/> (which must be valid UTF-8).</summary>
    public string Get(ReadOnlySpan<byte> utf8)
    {
        if (utf8.Length > MaxLength)
        {
            return Encoding.UTF8.GetString(utf8);
        }

        // FNV-1a: short keys, no per-process seed needed since a collision only costs a miss.
        var hash = 2166136261u;
        foreach (var b in utf8)
        {
            hash = (hash ^ b) * 16777619u;
        }

        ref var slot = ref _slots[hash & (Slots - 1)];
        var entry = Volatile.Read(ref slot);
        if (entry is not null && utf8.SequenceEqual(entry.Utf8))
        {
            return entry.Value;
        }

        var value = Encoding.UTF8.GetString(utf8);
        Volatile.Write(ref slot, new Entry(utf8.ToArray(), value));
        return value;
    }
}
