using System.Buffers;
using System.IO.Pipelines;
using Google.Protobuf;

namespace Ebpf.Api.Grpc;

/// <summary>
/// Writes length-prefixed messages to a <see cref="PipeWriter"/>. Frames are serialized into a pooled staging buffer
/// and handed to the pipe in chunks of <see cref="CommitChunkSize"/> bytes, so a stream of small messages costs one
/// pipe write per chunk instead of one per message (Kestrel takes a lock on every GetSpan and Advance of an HTTP/2
/// response body). <see cref="FlushAsync"/> hands over whatever is staged and is where HTTP/2 flow control pushes
/// back on a slow reader. Not thread-safe: one call, one writer.
/// </summary>
public sealed class GrpcMessageWriter
{
    /// <summary>Staged bytes are copied into the pipe once they reach this size, without flushing.</summary>
    internal const int CommitChunkSize = 32 * 1024;

    private readonly PipeWriter _writer;
    private readonly CancellationTokenSource? _callSource;
    private readonly StagingBuffer _staging = new();

    /// <param name="writer">The response body.</param>
    /// <param name="callSource">Cancelled when a flush finds the peer gone, so the handler's token always fires on a
    /// client reset even when Kestrel reports it through the flush before RequestAborted.</param>
    public GrpcMessageWriter(PipeWriter writer, CancellationTokenSource? callSource = null)
    {
        _writer = writer;
        _callSource = callSource;
    }

    /// <summary>True once a flush found the peer gone.</summary>
    public bool PeerGone { get; private set; }

    /// <summary>Bytes written since the last flush (staged or already in the pipe).</summary>
    public long UnflushedBytes { get; private set; }

    /// <summary>Number of messages written so far.</summary>
    public long MessagesWritten { get; private set; }

    /// <summary>Frames <paramref name="message"/> without flushing.</summary>
    public void Write(IMessage message)
    {
        var length = _staging.WriteFrame(message);
        UnflushedBytes += GrpcProtocol.FrameHeaderSize + length;
        MessagesWritten++;
        if (_staging.Length >= CommitChunkSize)
        {
            Commit();
        }
    }

    /// <summary>Hands staged frames to the pipe without flushing (they go out with the next flush or at the end of the call).</summary>
    public void Commit()
    {
        if (_staging.Length == 0)
        {
            return;
        }

        _writer.Write(_staging.Staged);
        _staging.Clear();
    }

    /// <summary>Commits and flushes; throws <see cref="OperationCanceledException"/> when the peer is gone.</summary>
    public async ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        Commit();
        UnflushedBytes = 0;
        var result = await _writer.FlushAsync(cancellationToken).ConfigureAwait(false);
        if (result.IsCanceled || result.IsCompleted)
        {
            PeerGone = true;
            await (_callSource?.CancelAsync() ?? Task.CompletedTask).ConfigureAwait(false);
            throw new OperationCanceledException("The peer stopped reading.", cancellationToken);
        }
    }

    /// <summary>Returns the staging buffer to the pool; staged bytes not yet committed are discarded.</summary>
    internal void ReleaseBuffer() => _staging.Release();

    /// <summary>
    /// A contiguous, pooled buffer that protobuf serializes into through <see cref="IBufferWriter{T}"/>. A frame being
    /// serialized must stay contiguous with its header, so the buffer grows (copying) rather than being committed
    /// midway; that happens only for a message larger than what is left of the buffer.
    /// </summary>
    private sealed class StagingBuffer : IBufferWriter<byte>
    {
        /// <summary>First buffer size; the chunk size plus room for the frame that crosses it.</summary>
        private const int InitialSize = 2 * CommitChunkSize;

        /// <summary>Grow rather than hand the serializer a sliver it would have to fill byte by byte.</summary>
        private const int MinimumSpan = 1024;

        private byte[]? _buffer;
        private int _length;

        public int Length => _length;

        public ReadOnlySpan<byte> Staged => _buffer.AsSpan(0, _length);

        /// <summary>Appends one frame; returns the payload length.</summary>
        public int WriteFrame(IMessage message)
        {
            // Serializing through IBufferWriter lets protobuf size the message as it writes it: the header is filled in
            // afterwards, which saves the top-level CalculateSize pass (nested messages are still sized by the
            // generated code, as the wire format requires).
            EnsureSpace(GrpcProtocol.FrameHeaderSize + MinimumSpan);
            var start = _length;
            _length += GrpcProtocol.FrameHeaderSize;
            try
            {
                message.WriteTo(this);
            }
            catch
            {
                _length = start;
                throw;
            }

            var payload = _length - start - GrpcProtocol.FrameHeaderSize;
            GrpcProtocol.WriteFrameHeader(_buffer.AsSpan(start, GrpcProtocol.FrameHeaderSize), payload);
            return payload;
        }

        public void Clear() => _length = 0;

        public void Release()
        {
            _length = 0;
            if (_buffer is { } buffer)
            {
                _buffer = null;
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }

        public void Advance(int count)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(count);
            if (_buffer is null || count > _buffer.Length - _length)
            {
                throw new InvalidOperationException("Advanced past the end of the staging buffer.");
            }

            _length += count;
        }

        public Memory<byte> GetMemory(int sizeHint = 0)
        {
            EnsureSpace(Math.Max(sizeHint, MinimumSpan));
            return _buffer.AsMemory(_length);
        }

        public Span<byte> GetSpan(int sizeHint = 0)
        {
            EnsureSpace(Math.Max(sizeHint, MinimumSpan));
            return _buffer.AsSpan(_length);
        }

        private void EnsureSpace(int size)
        {
            if (_buffer is null)
            {
                _buffer = ArrayPool<byte>.Shared.Rent(Math.Max(InitialSize, size));
                return;
            }

            if (_buffer.Length - _length >= size)
            {
                return;
            }

            var larger = ArrayPool<byte>.Shared.Rent(Math.Max(_buffer.Length * 2, _length + size));
            _buffer.AsSpan(0, _length).CopyTo(larger);
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = larger;
        }
    }
}
