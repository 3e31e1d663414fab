using Google.Protobuf;
using Microsoft.AspNetCore.Http;

namespace Ebpf.Api.Grpc;

/// <summary>The call shapes our framing layer serves. Client and bidirectional streaming are not needed by ExecTrace.</summary>
public enum GrpcMethodType
{
    Unary,
    ServerStreaming,
}

/// <summary>What a handler knows about its call.</summary>
public sealed class GrpcCallContext
{
    internal GrpcCallContext(HttpContext httpContext, string method, DateTimeOffset? deadline, CancellationToken cancellationToken)
    {
        HttpContext = httpContext;
        Method = method;
        Deadline = deadline;
        CancellationToken = cancellationToken;
    }

    /// <summary>Full method name, e.g. <c>/ebpf.v1.ExecTrace/Subscribe</c>.</summary>
    public string Method { get; }

    /// <summary>When the client's <c>grpc-timeout</c> runs out; null when it sent none.</summary>
    public DateTimeOffset? Deadline { get; }

    /// <summary>Fires when the client cancels (RST_STREAM, disconnect) or the deadline passes.</summary>
    public CancellationToken CancellationToken { get; }

    /// <summary>The request headers, i.e. the call's metadata.</summary>
    public IHeaderDictionary RequestHeaders => HttpContext.Request.Headers;

    /// <summary>Remote endpoint as "ip:port".</summary>
    public string Peer => $"{HttpContext.Connection.RemoteIpAddress}:{HttpContext.Connection.RemotePort}";

    public HttpContext HttpContext { get; }
}

/// <summary>A method descriptor: name, request parser and handler. Registered in a <see cref="GrpcServiceDefinition"/>.</summary>
public abstract class GrpcMethod
{
    protected GrpcMethod(string name, GrpcMethodType type)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        Name = name;
        Type = type;
    }

    /// <summary>The method name within its service, e.g. <c>Subscribe</c>.</summary>
    public string Name { get; }

    public GrpcMethodType Type { get; }

    /// <summary>Reads the single request message, runs the handler and writes its response message(s).</summary>
    internal abstract Task InvokeAsync(GrpcCallContext context, GrpcMessageReader reader, GrpcMessageWriter writer);

    internal static async Task<TRequest> ReadSingleRequestAsync<TRequest>(
        GrpcMessageReader reader, MessageParser<TRequest> parser, CancellationToken cancellationToken)
        where TRequest : class, IMessage<TRequest>
    {
        var request = await reader.ReadAsync(parser, cancellationToken).ConfigureAwait(false)
            ?? throw new GrpcStatusException(StatusCode.Internal, "Incomplete request: no message was received.");

        // Unary and server-streaming calls carry exactly one request message (PROTOCOL-HTTP2.md).
        if (await reader.ReadAsync(parser, cancellationToken).ConfigureAwait(false) is not null)
        {
            throw new GrpcStatusException(StatusCode.Internal, "Additional data after the request message.");
        }

        return request;
    }
}

/// <summary>One request, one response.</summary>
public sealed class UnaryMethod<TRequest, TResponse> : GrpcMethod
    where TRequest : class, IMessage<TRequest>
    where TResponse : class, IMessage<TResponse>
{
    private readonly MessageParser<TRequest> _parser;
    private readonly Func<TRequest, GrpcCallContext, Task<TResponse>> _handler;

    public UnaryMethod(string name, MessageParser<TRequest> parser, Func<TRequest, GrpcCallContext, Task<TResponse>> handler)
        : base(name, GrpcMethodType.Unary)
    {
        _parser = parser;
        _handler = handler;
    }

    internal override async Task InvokeAsync(GrpcCallContext context, GrpcMessageReader reader, GrpcMessageWriter writer)
    {
        var request = await ReadSingleRequestAsync(reader, _parser, context.CancellationToken).ConfigureAwait(false);
        var response = await _handler(request, context).ConfigureAwait(false)
            ?? throw new InvalidOperationException($"Handler for {context.Method} returned null.");
        writer.Write(response);
    }
}

/// <summary>One request, a stream of responses produced by an async sequence.</summary>
public sealed class ServerStreamingMethod<TRequest, TResponse> : GrpcMethod
    where TRequest : class, IMessage<TRequest>
    where TResponse : class, IMessage<TResponse>
{
    /// <summary>Flush at least this often (bytes) even while the sequence keeps producing synchronously.</summary>
    private const int FlushThreshold = 128 * 1024;

    private readonly MessageParser<TRequest> _parser;
    private readonly Func<TRequest, GrpcCallContext, IAsyncEnumerable<TResponse>> _handler;

    public ServerStreamingMethod(string name, MessageParser<TRequest> parser, Func<TRequest, GrpcCallContext, IAsyncEnumerable<TResponse>> handler)
        : base(name, GrpcMethodType.ServerStreaming)
    {
        _parser = parser;
        _handler = handler;
    }

    internal override async Task InvokeAsync(GrpcCallContext context, GrpcMessageReader reader, GrpcMessageWriter writer)
    {
        var token = context.CancellationToken;
        var request = await ReadSingleRequestAsync(reader, _parser, token).ConfigureAwait(false);
        var enumerator = _handler(request, context).GetAsyncEnumerator(token);
        var headersSent = false;
        await using (enumerator.ConfigureAwait(false))
        {
            while (true)
            {
                // Batch naturally: while the source has records ready, keep writing; flush only when it would wait
                // (so a live record is never held back) or when enough bytes are pending.
                var move = enumerator.MoveNextAsync();
                if (!move.IsCompleted && (writer.UnflushedBytes > 0 || !headersSent))
                {
                    // The first flush also sends the response headers, so a client waiting for them (HttpClient with
                    // ResponseHeadersRead) knows the subscription is live before the first record exists.
                    headersSent = true;
                    await writer.FlushAsync(token).ConfigureAwait(false);
                }

                if (!await move.ConfigureAwait(false))
                {
                    break;
                }

                token.ThrowIfCancellationRequested();
                writer.Write(enumerator.Current);
                if (writer.UnflushedBytes >= FlushThreshold)
                {
                    await writer.FlushAsync(token).ConfigureAwait(false);
                }
            }
        }
    }
}

/// <summary>A gRPC service: its full name (<c>package.Service</c>) and its method table.</summary>
public sealed class GrpcServiceDefinition
{
    public GrpcServiceDefinition(string serviceName, IEnumerable<GrpcMethod> methods)
    {
        ArgumentException.ThrowIfNullOrEmpty(serviceName);
        ServiceName = serviceName;
        var table = new Dictionary<string, GrpcMethod>(StringComparer.Ordinal);
        foreach (var method in methods)
        {
            if (!table.TryAdd(method.Name, method))
            {
                throw new ArgumentException($"Method {method.Name} is registered twice in {serviceName}.", nameof(methods));
            }
        }

        Methods = table;
    }

    public string ServiceName { get; }

    public IReadOnlyDictionary<string, GrpcMethod> Methods { get; }
}
