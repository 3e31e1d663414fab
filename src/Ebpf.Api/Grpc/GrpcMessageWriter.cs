using System.IO.Pipelines;
using Google.Protobuf;

namespace Ebpf.Api.Grpc;

/// <summary>
/// Writes length-prefixed messages into a <see cref="PipeWriter"/>. Messages are serialized straight into the pipe's
/// memory; <see cref="FlushAsync"/> is where HTTP/2 flow control pushes back on a slow reader.
/// </summary>
public sealed class GrpcMessageWriter
{
    private readonly PipeWriter _writer;

    public GrpcMessageWriter(PipeWriter writer) => _writer = writer;

    /// <summary>Bytes written since the last flush.</summary>
    public long UnflushedBytes { get; private set; }

    /// <summary>Number of messages written so far.</summary>
    public long MessagesWritten { get; private set; }

    /// <summary>Frames <paramref name="message"/> into the pipe without flushing.</summary>
    public void Write(IMessage message)
    {
        var size = message.CalculateSize();
        var total = GrpcProtocol.FrameHeaderSize + size;
        var span = _writer.GetSpan(total);
        GrpcProtocol.WriteFrameHeader(span, size);
        message.WriteTo(span.Slice(GrpcProtocol.FrameHeaderSize, size));
        _writer.Advance(total);
        UnflushedBytes += total;
        MessagesWritten++;
    }

    /// <summary>Flushes; throws <see cref="OperationCanceledException"/> when the peer is gone.</summary>
    public async ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        UnflushedBytes = 0;
        var result = await _writer.FlushAsync(cancellationToken).ConfigureAwait(false);
        if (result.IsCanceled || result.IsCompleted)
        {
            throw new OperationCanceledException("The peer stopped reading.", cancellationToken);
        }
    }
}
