using System.Net;
using System.Net.Http.Headers;
using Ebpf.Api.Grpc;
using Google.Protobuf;

namespace Ebpf.Api.Tests;

/// <summary>
/// A deliberately low-level HTTP/2 caller: sends exactly the bytes a test chooses, in the pieces it chooses, and
/// exposes raw status, headers and trailers. Used to prove server framing independently of our own client.
/// </summary>
internal static class RawGrpc
{
    public static HttpClient CreateHttpClient() => new(new SocketsHttpHandler())
    {
        DefaultRequestVersion = HttpVersion.Version20,
        DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        Timeout = TimeSpan.FromSeconds(30),
    };

    public static byte[] Frame(IMessage message, bool compressedFlag = false)
    {
        var payload = message.ToByteArray();
        return Frame(payload, compressedFlag);
    }

    public static byte[] Frame(byte[] payload, bool compressedFlag = false)
    {
        var frame = new byte[GrpcProtocol.FrameHeaderSize + payload.Length];
        GrpcProtocol.WriteFrameHeader(frame, payload.Length, compressedFlag);
        payload.CopyTo(frame, GrpcProtocol.FrameHeaderSize);
        return frame;
    }

    public static HttpRequestMessage Request(Uri address, string path, HttpContent content, string contentType = "application/grpc")
    {
        content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(address, path))
        {
            Content = content,
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        request.Headers.TryAddWithoutValidation("te", "trailers");
        return request;
    }

    /// <summary>Status from trailers, or from headers in a Trailers-Only response.</summary>
    public static (int? Status, string? Message) GrpcStatus(HttpResponseMessage response)
    {
        foreach (var headers in new HttpHeaders[] { response.TrailingHeaders, response.Headers })
        {
            if (headers.TryGetValues("grpc-status", out var status))
            {
                headers.TryGetValues("grpc-message", out var message);
                return (int.Parse(status.First(), System.Globalization.CultureInfo.InvariantCulture), message?.FirstOrDefault());
            }
        }

        return (null, null);
    }

    /// <summary>Splits a body into frames-by-hand and reads the messages back.</summary>
    public static List<T> ParseFrames<T>(byte[] body, MessageParser<T> parser)
        where T : IMessage<T>
    {
        var list = new List<T>();
        var offset = 0;
        while (offset < body.Length)
        {
            Assert.Equal(0, body[offset]);
            var length = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(body.AsSpan(offset + 1, 4));
            list.Add(parser.ParseFrom(body, offset + 5, length));
            offset += 5 + length;
        }

        return list;
    }
}

/// <summary>Request content written in the given pieces, flushing after each and pausing between them.</summary>
internal sealed class ChunkedContent(IReadOnlyList<byte[]> pieces, TimeSpan pause) : HttpContent
{
    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
    {
        foreach (var piece in pieces)
        {
            await stream.WriteAsync(piece);
            await stream.FlushAsync();
            await Task.Delay(pause);
        }
    }

    protected override bool TryComputeLength(out long length)
    {
        length = -1;
        return false;
    }
}
