using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Ebpf.Api.Grpc;

/// <summary>
/// Runs one gRPC call on a Kestrel HTTP/2 request: validates the request, applies the deadline, invokes the method and
/// ends the call with <c>grpc-status</c>/<c>grpc-message</c> as trailers (or as headers for Trailers-Only responses).
/// This is the one place that would be replaced by Grpc.AspNetCore where that package is available.
/// </summary>
internal sealed class GrpcEndpointHandler
{
    private readonly GrpcServerOptions _options;
    private readonly ILogger _logger;
    private readonly byte[]? _tokenHash;
    private readonly CancellationToken _stopping;

    /// <param name="stopping">The host's ApplicationStopping: ends open server streams so shutdown does not wait for them.</param>
    public GrpcEndpointHandler(GrpcServerOptions options, ILogger logger, CancellationToken stopping = default)
    {
        options.Validate();
        _options = options;
        _logger = logger;
        _stopping = stopping;
        _tokenHash = options.BearerToken is null ? null : SHA256.HashData(Encoding.UTF8.GetBytes(options.BearerToken));
    }

    public async Task HandleAsync(HttpContext context, string fullMethod, GrpcMethod? method)
    {
        var request = context.Request;
        var response = context.Response;

        if (!GrpcProtocol.IsGrpcContentType(request.ContentType))
        {
            if (method is null)
            {
                // Not a gRPC request at all: behave like any unmatched route.
                response.StatusCode = StatusCodes.Status404NotFound;
                return;
            }

            // PROTOCOL-HTTP2.md: a server should answer an unexpected content-type with HTTP 415.
            response.StatusCode = StatusCodes.Status415UnsupportedMediaType;
            SetStatusHeaders(response, StatusCode.Internal, $"Content-Type '{request.ContentType}' is not supported.");
            return;
        }

        if (!HttpProtocol.IsHttp2(request.Protocol) && !HttpProtocol.IsHttp3(request.Protocol))
        {
            response.StatusCode = StatusCodes.Status426UpgradeRequired;
            response.Headers.Upgrade = "h2c";
            SetStatusHeaders(response, StatusCode.Internal, $"gRPC requires HTTP/2; the request used {request.Protocol}.");
            return;
        }

        response.ContentType = GrpcProtocol.ContentType;
        response.Headers[GrpcProtocol.AcceptEncodingHeader] = GrpcProtocol.SupportedEncodings;

        if (method is null)
        {
            GrpcLog.Unimplemented(_logger, fullMethod);
            SetStatusHeaders(response, StatusCode.Unimplemented, $"Method {fullMethod} is not implemented.");
            return;
        }

        if (!IsAuthorized(request))
        {
            GrpcLog.Unauthenticated(_logger, fullMethod, context.Connection.RemoteIpAddress?.ToString() ?? "?");
            SetStatusHeaders(response, StatusCode.Unauthenticated, "A valid bearer token is required.");
            return;
        }

        var encoding = request.Headers[GrpcProtocol.EncodingHeader].ToString();
        if (encoding.Length == 0 || encoding.Equals("identity", StringComparison.OrdinalIgnoreCase))
        {
            encoding = string.Empty;
        }
        else if (!encoding.Equals("gzip", StringComparison.OrdinalIgnoreCase))
        {
            SetStatusHeaders(response, StatusCode.Unimplemented,
                $"grpc-encoding '{encoding}' is not supported; supported: {GrpcProtocol.SupportedEncodings}.");
            return;
        }

        DateTimeOffset? deadline = null;
        CancellationTokenSource? deadlineSource = null;
        if (GrpcProtocol.TryParseTimeout(request.Headers[GrpcProtocol.TimeoutHeader], out var timeout))
        {
            deadline = _options.TimeProvider.GetUtcNow() + timeout;
            deadlineSource = new CancellationTokenSource(timeout <= TimeSpan.Zero ? TimeSpan.FromTicks(1) : timeout, _options.TimeProvider);
        }

        // A server stream (a watch) lives until the client leaves, so Kestrel's graceful stop would wait for it until
        // its shutdown timeout and the agent would then be killed mid-flush: streams end with UNAVAILABLE when the
        // host starts stopping (clients reconnect, e.g. to the replacement pod). Unary calls are short: they finish.
        var stopping = method.Type == GrpcMethodType.ServerStreaming ? _stopping : CancellationToken.None;
        using var callSource = deadlineSource is null
            ? CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, stopping)
            : CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, deadlineSource.Token, stopping);
        using var deadlineDisposer = deadlineSource;

        var call = new GrpcCallContext(context, fullMethod, deadline, callSource.Token);
        var writer = new GrpcMessageWriter(response.BodyWriter, callSource);
        var reader = new GrpcMessageReader(request.BodyReader, _options.MaxReceiveMessageSize, encoding.Length == 0 ? null : encoding);

        try
        {
            await InvokeAndEndCallAsync(context, fullMethod, method, call, reader, writer, deadlineSource, timeout, stopping).ConfigureAwait(false);
        }
        finally
        {
            writer.ReleaseBuffer();
        }
    }

    private async Task InvokeAndEndCallAsync(
        HttpContext context, string fullMethod, GrpcMethod method, GrpcCallContext call, GrpcMessageReader reader,
        GrpcMessageWriter writer, CancellationTokenSource? deadlineSource, TimeSpan timeout, CancellationToken stopping)
    {
        var response = context.Response;
        StatusCode status;
        string? message = null;
        try
        {
            await method.InvokeAsync(call, reader, writer).ConfigureAwait(false);
            status = StatusCode.OK;
        }
        catch (GrpcStatusException ex)
        {
            status = ex.StatusCode;
            message = ex.Detail;
            GrpcLog.StatusError(_logger, fullMethod, status, ex.Detail);
        }
        catch (Exception ex) when (context.RequestAborted.IsCancellationRequested || writer.PeerGone)
        {
            // The client reset the stream or went away: nobody is left to receive a status.
            GrpcLog.ClientCancelled(_logger, fullMethod, ex.GetType().Name);
            return;
        }
        catch (OperationCanceledException) when (deadlineSource?.IsCancellationRequested == true)
        {
            status = StatusCode.DeadlineExceeded;
            message = "Deadline Exceeded";
            GrpcLog.DeadlineExceeded(_logger, fullMethod, timeout);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // gRPC's status for "try again, elsewhere or later": the server is going away.
            status = StatusCode.Unavailable;
            message = "The server is shutting down.";
        }
        catch (Exception ex)
        {
            // Never leak exception text to the caller; it goes to the log only.
            status = StatusCode.Internal;
            message = "Exception was thrown by handler.";
            GrpcLog.HandlerFailed(_logger, fullMethod, ex);
        }

        if (writer.MessagesWritten == 0 && !response.HasStarted)
        {
            // Trailers-Only: HEADERS with END_STREAM carrying the status.
            SetStatusHeaders(response, status, message);
            return;
        }

        // Messages written before the handler returned (or failed) go out ahead of the trailers, as they would have
        // without staging.
        writer.Commit();
        response.AppendTrailer(GrpcProtocol.StatusHeader, ((int)status).ToString(CultureInfo.InvariantCulture));
        if (!string.IsNullOrEmpty(message))
        {
            response.AppendTrailer(GrpcProtocol.MessageHeader, GrpcProtocol.EncodeMessage(message));
        }
    }

    private bool IsAuthorized(HttpRequest request)
    {
        if (_tokenHash is null)
        {
            return true;
        }

        var header = request.Headers.Authorization.ToString();
        const string Scheme = "Bearer ";
        if (!header.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        // Compare fixed-length hashes in constant time so neither content nor length leaks through timing.
        var presented = SHA256.HashData(Encoding.UTF8.GetBytes(header[Scheme.Length..].Trim()));
        return CryptographicOperations.FixedTimeEquals(presented, _tokenHash);
    }

    private static void SetStatusHeaders(HttpResponse response, StatusCode status, string? message)
    {
        if (response.ContentType is null)
        {
            response.ContentType = GrpcProtocol.ContentType;
        }

        response.Headers[GrpcProtocol.StatusHeader] = ((int)status).ToString(CultureInfo.InvariantCulture);
        if (!string.IsNullOrEmpty(message))
        {
            response.Headers[GrpcProtocol.MessageHeader] = GrpcProtocol.EncodeMessage(message);
        }
    }
}

internal static partial class GrpcLog
{
    [LoggerMessage(EventId = 7000, Level = LogLevel.Debug, Message = "gRPC call {Method} is not implemented")]
    public static partial void Unimplemented(ILogger logger, string method);

    [LoggerMessage(EventId = 7001, Level = LogLevel.Warning, Message = "gRPC call {Method} from {Remote} rejected: missing or wrong bearer token")]
    public static partial void Unauthenticated(ILogger logger, string method, string remote);

    [LoggerMessage(EventId = 7002, Level = LogLevel.Debug, Message = "gRPC call {Method} ended with {Status}: {Detail}")]
    public static partial void StatusError(ILogger logger, string method, StatusCode status, string detail);

    [LoggerMessage(EventId = 7003, Level = LogLevel.Debug, Message = "gRPC call {Method} cancelled by the client ({Reason})")]
    public static partial void ClientCancelled(ILogger logger, string method, string reason);

    [LoggerMessage(EventId = 7004, Level = LogLevel.Debug, Message = "gRPC call {Method} exceeded its deadline of {Timeout}")]
    public static partial void DeadlineExceeded(ILogger logger, string method, TimeSpan timeout);

    [LoggerMessage(EventId = 7005, Level = LogLevel.Error, Message = "gRPC handler for {Method} failed")]
    public static partial void HandlerFailed(ILogger logger, string method, Exception exception);
}
