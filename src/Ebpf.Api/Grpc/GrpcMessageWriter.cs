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
    private readonly CancellationTokenSource? _callSource;

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
            PeerGone = true;
            await (_callSource?.CancelAsync() ?? Task.CompletedTask).ConfigureAwait(false);
            throw new OperationCanceledException("The peer stopped reading.", cancellationToken);
        }
    }
}
