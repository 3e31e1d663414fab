using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using Google.Protobuf;

namespace Ebpf.Api.Grpc;

/// <summary>
/// Reads length-prefixed gRPC messages from a <see cref="PipeReader"/>. A message may arrive split over any number of
/// reads and one read may hold several messages; the declared length is checked against the limit before the payload
/// is buffered, so a hostile length never costs memory.
/// </summary>
public sealed class GrpcMessageReader
{
    private readonly PipeReader _reader;
    private readonly int _maxMessageSize;
    private readonly string? _encoding;

    /// <param name="reader">The request body (server) or response body (client).</param>
    /// <param name="maxMessageSize">Largest accepted message, after decompression.</param>
    /// <param name="encoding">The peer's <c>grpc-encoding</c>; compressed frames are accepted only for gzip.</param>
    public GrpcMessageReader(PipeReader reader, int maxMessageSize, string? encoding)
    {
        _reader = reader;
        _maxMessageSize = maxMessageSize;
        _encoding = encoding;
    }

    /// <summary>
    /// The next message, or null when the stream ended cleanly between messages.
    /// Throws <see cref="GrpcStatusException"/> for protocol errors: RESOURCE_EXHAUSTED (too large), UNIMPLEMENTED
    /// (compressed without a supported encoding), INTERNAL (truncated frame or unparsable payload).
    /// </summary>
    public async ValueTask<T?> ReadAsync<T>(MessageParser<T> parser, CancellationToken cancellationToken)
        where T : class, IMessage<T>
    {
        while (true)
        {
            var result = await _reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            if (result.IsCanceled)
            {
                throw new OperationCanceledException(cancellationToken);
            }

            if (TryReadFrame(ref buffer, out var payload, out var compressed))
            {
                T message;
                try
                {
                    message = Parse(parser, payload, compressed);
                }
                finally
                {
                    _reader.AdvanceTo(buffer.Start);
                }

                return message;
            }

            if (result.IsCompleted)
            {
                var leftover = buffer.Length;
                _reader.AdvanceTo(buffer.End);
                if (leftover > 0)
                {
                    throw new GrpcStatusException(StatusCode.Internal, "Incomplete message: the stream ended inside a frame.");
                }

                return null;
            }

            _reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    /// <summary>
    /// Appends to <paramref name="batch"/> every complete message the transport has already delivered, up to
    /// <paramref name="maxMessages"/>, waiting only when none is buffered: a burst costs one pipe read instead of one
    /// per message, and a lone message is returned as soon as it is complete. Returns false when the stream ended
    /// cleanly between messages and nothing was added. Errors are those of <see cref="ReadAsync{T}"/>; messages that
    /// precede a bad frame are returned first and the error surfaces on the next call.
    /// </summary>
    public async ValueTask<bool> ReadBatchAsync<T>(MessageParser<T> parser, List<T> batch, int maxMessages, CancellationToken cancellationToken)
        where T : class, IMessage<T>
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxMessages, 1);
        var added = 0;
        while (true)
        {
            var result = await _reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            if (result.IsCanceled)
            {
                throw new OperationCanceledException(cancellationToken);
            }

            var buffer = result.Buffer;
            var consumed = buffer.Start;
            var bufferedFramesLeft = false;
            try
            {
                while (TryReadFrame(ref buffer, out var payload, out var compressed))
                {
                    batch.Add(Parse(parser, payload, compressed));
                    added++;
                    consumed = buffer.Start;
                    if (added == maxMessages)
                    {
                        bufferedFramesLeft = true;
                        break;
                    }
                }
            }
            catch (GrpcStatusException) when (added > 0)
            {
                // Deliver what preceded the bad frame; it is still unconsumed, so the next call fails on it.
                _reader.AdvanceTo(consumed);
                return true;
            }
            catch
            {
                _reader.AdvanceTo(consumed);
                throw;
            }

            if (added > 0)
            {
                // Examined up to the end only when what is left is an incomplete frame; otherwise the next read must
                // not wait for new bytes.
                if (bufferedFramesLeft)
                {
                    _reader.AdvanceTo(consumed);
                }
                else
                {
                    _reader.AdvanceTo(consumed, result.Buffer.End);
                }

                return true;
            }

            if (result.IsCompleted)
            {
                var leftover = result.Buffer.Length;
                _reader.AdvanceTo(result.Buffer.End);
                if (leftover > 0)
                {
                    throw new GrpcStatusException(StatusCode.Internal, "Incomplete message: the stream ended inside a frame.");
                }

                return false;
            }

            _reader.AdvanceTo(consumed, result.Buffer.End);
        }
    }

    private bool TryReadFrame(ref ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> payload, out bool compressed)
    {
        payload = default;
        compressed = false;
        if (buffer.Length < GrpcProtocol.FrameHeaderSize)
        {
            return false;
        }

        Span<byte> header = stackalloc byte[GrpcProtocol.FrameHeaderSize];
        buffer.Slice(0, GrpcProtocol.FrameHeaderSize).CopyTo(header);
        if (header[0] > 1)
        {
            throw new GrpcStatusException(StatusCode.Internal, $"Invalid compressed flag {header[0]} in message frame.");
        }

        compressed = header[0] == 1;
        var length = BinaryPrimitives.ReadUInt32BigEndian(header[1..]);
        if (length > (uint)_maxMessageSize)
        {
            throw new GrpcStatusException(StatusCode.ResourceExhausted,
                $"Received message exceeds the maximum configured message size ({length} > {_maxMessageSize} bytes).");
        }

        if (buffer.Length < GrpcProtocol.FrameHeaderSize + length)
        {
            return false;
        }

        payload = buffer.Slice(GrpcProtocol.FrameHeaderSize, length);
        buffer = buffer.Slice(payload.End);
        return true;
    }

    private T Parse<T>(MessageParser<T> parser, ReadOnlySequence<byte> payload, bool compressed)
        where T : class, IMessage<T>
    {
        if (compressed)
        {
            // PROTOCOL-HTTP2.md: a compressed flag with no (or an unknown) grpc-encoding cannot be decoded.
            if (!string.Equals(_encoding, "gzip", StringComparison.OrdinalIgnoreCase))
            {
                throw new GrpcStatusException(StatusCode.Unimplemented,
                    $"Compressed message received but grpc-encoding '{_encoding ?? "identity"}' is not supported; supported: {GrpcProtocol.SupportedEncodings}.");
            }

            payload = new ReadOnlySequence<byte>(GrpcProtocol.Gunzip(payload, _maxMessageSize));
        }

        try
        {
            return parser.ParseFrom(payload);
        }
        catch (InvalidProtocolBufferException ex)
        {
            // statuscodes.md: "Error parsing request proto" is INTERNAL (grpc-dotnet does the same).
            throw new GrpcStatusException(StatusCode.Internal, "Failed to deserialize the message.", ex);
        }
    }
}
