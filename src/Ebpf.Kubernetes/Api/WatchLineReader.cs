namespace Ebpf.Kubernetes.Api;

/// <summary>
/// Reads newline-delimited watch events from a stream, never holding more than <c>maxLineBytes</c>: a longer
/// line is skipped to its end and reported as oversized. A partial last line (connection cut mid-object) is dropped.
/// </summary>
internal sealed class WatchLineReader(Stream stream, int maxLineBytes)
{
    private readonly byte[] _chunk = new byte[64 * 1024];
    private int _chunkStart, _chunkEnd;
    private byte[] _line = new byte[16 * 1024];
    private int _lineLength;
    private bool _discarding;

    public long OversizedLines { get; private set; }

    /// <summary>The next complete line, or null at the end of the stream.</summary>
    public async ValueTask<ReadOnlyMemory<byte>?> ReadLineAsync(CancellationToken cancellationToken)
    {
        _lineLength = 0;
        _discarding = false;
        while (true)
        {
            if (_chunkStart == _chunkEnd)
            {
                _chunkStart = 0;
                _chunkEnd = await stream.ReadAsync(_chunk, cancellationToken).ConfigureAwait(false);
                if (_chunkEnd == 0) return null;
            }
            var available = _chunk.AsSpan(_chunkStart, _chunkEnd - _chunkStart);
            int newline = available.IndexOf((byte)'\n');
            var part = newline < 0 ? available : available[..newline];
            _chunkStart += newline < 0 ? available.Length : newline + 1;
            if (!_discarding)
            {
                if (_lineLength + part.Length > maxLineBytes)
                {
                    _discarding = true;
                    OversizedLines++;
                }
                else
                {
                    if (_lineLength + part.Length > _line.Length) Array.Resize(ref _line, Math.Min(maxLineBytes, Math.Max(_line.Length * 2, _lineLength + part.Length)));
                    part.CopyTo(_line.AsSpan(_lineLength));
                    _lineLength += part.Length;
                }
            }
            if (newline < 0) continue;
            if (_discarding)
            {
                _discarding = false;
                _lineLength = 0;
                continue;
            }
            if (_lineLength == 0) continue; // blank keep-alive line
            return _line.AsMemory(0, _lineLength);
        }
    }
}
