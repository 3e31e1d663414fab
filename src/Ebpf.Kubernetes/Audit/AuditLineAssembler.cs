namespace Ebpf.Kubernetes.Audit;

/// <summary>
/// Splits a byte stream into '\n'-terminated lines with their file offsets, holding a partial last line until its
/// newline arrives. Lines longer than the limit are reported as overlong (content dropped) so memory stays bounded.
/// </summary>
internal sealed class AuditLineAssembler(int maxLineBytes)
{
    public delegate void LineHandler(ReadOnlySpan<byte> line, long start, long end, bool overlong);

    private readonly byte[] _partial = new byte[Math.Min(maxLineBytes, 64 * 1024)];
    private byte[] _grown = [];
    private int _partialLength;
    private bool _overlong;

    /// <summary>File offset where the held partial line starts (equals the offset after the last complete line).</summary>
    public long LineStart { get; private set; }

    public bool HasPartial => _partialLength > 0 || _overlong;

    public void Reset(long offset)
    {
        _partialLength = 0;
        _overlong = false;
        _grown = [];
        LineStart = offset;
    }

    /// <summary>Feeds bytes that start at file offset <paramref name="chunkOffset"/> (must continue the previous chunk).</summary>
    public void Feed(ReadOnlySpan<byte> chunk, long chunkOffset, LineHandler handler)
    {
        while (!chunk.IsEmpty)
        {
            var newline = chunk.IndexOf((byte)'\n');
            var piece = newline < 0 ? chunk : chunk[..newline];
            Append(piece);
            if (newline < 0)
            {
                return;
            }

            var end = chunkOffset + newline + 1;
            handler(_overlong ? [] : Current(), LineStart, end, _overlong);
            _partialLength = 0;
            _overlong = false;
            _grown = [];
            LineStart = end;
            chunkOffset = end;
            chunk = chunk[(newline + 1)..];
        }
    }

    /// <summary>Emits a held partial line as a final line (the writer has finished the file, e.g. after rotation).</summary>
    public void Complete(long endOffset, LineHandler handler)
    {
        if (HasPartial)
        {
            handler(_overlong ? [] : Current(), LineStart, endOffset, _overlong);
        }

        Reset(endOffset);
    }

    private ReadOnlySpan<byte> Current() => _grown.Length > 0 ? _grown.AsSpan(0, _partialLength) : _partial.AsSpan(0, _partialLength);

    private void Append(ReadOnlySpan<byte> piece)
    {
        if (_overlong || piece.IsEmpty)
        {
            return;
        }

        if (_partialLength + piece.Length > maxLineBytes)
        {
            _overlong = true;
            _partialLength = 0;
            _grown = [];
            return;
        }

        var target = _grown.Length > 0 ? _grown : _partial;
        if (_partialLength + piece.Length > target.Length)
        {
            var bigger = new byte[Math.Min(maxLineBytes, Math.Max(target.Length * 2, _partialLength + piece.Length))];
            target.AsSpan(0, _partialLength).CopyTo(bigger);
            _grown = bigger;
            target = bigger;
        }

        piece.CopyTo(target.AsSpan(_partialLength));
        _partialLength += piece.Length;
    }
}
