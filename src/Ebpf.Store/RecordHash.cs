using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Ebpf.Store;

/// <summary>
/// The journal's hash chain: hash(n) = SHA-256(hash(n-1) ‖ sequence ‖ kind ‖ time_ns ‖ payload), integers big-endian.
/// The first record ever written chains from 32 zero bytes; after retention the anchor keeps the hash of the last
/// deleted record so the remaining chain still verifies.
/// </summary>
internal sealed class RecordHash : IDisposable
{
    public const int Size = 32;
    private const int HeaderSize = Size + 8 + 4 + 8;
    private readonly IncrementalHash _sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private readonly byte[] _header = new byte[HeaderSize];

    public static byte[] Genesis => new byte[Size];

    public byte[] Compute(ReadOnlySpan<byte> previousHash, ulong sequence, int kind, long timeNs, ReadOnlySpan<byte> payload)
    {
        Span<byte> header = _header;
        header.Clear();
        previousHash[..Math.Min(previousHash.Length, Size)].CopyTo(header);
        BinaryPrimitives.WriteUInt64BigEndian(header[Size..], sequence);
        BinaryPrimitives.WriteInt32BigEndian(header[(Size + 8)..], kind);
        BinaryPrimitives.WriteInt64BigEndian(header[(Size + 12)..], timeNs);
        _sha.AppendData(header);
        _sha.AppendData(payload);
        return _sha.GetHashAndReset();
    }

    public void Dispose() => _sha.Dispose();
}
