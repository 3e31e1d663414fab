using System.Globalization;
using System.IO.Pipelines;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Runtime.CompilerServices;
using System.Security.Cryptography.X509Certificates;
using Google.Protobuf;

namespace Ebpf.Api.Grpc;

/// <summary>How <see cref="GrpcClient"/> reaches the agent.</summary>
public sealed class GrpcClientOptions
{
    /// <summary>
    /// Server address: <c>http://</c> for h2c (HTTP/2 prior knowledge), <c>https://</c> for TLS.
    /// Defaults to http://127.0.0.1:50051.
    /// </summary>
    public Uri Address { get; set; } = new("http://127.0.0.1:50051");

    /// <summary>PEM bundle of CAs the server certificate must chain to. Defaults to null: the system trust store.</summary>
    public string? CertificateAuthorityPath { get; set; }

    /// <summary>Accept any server certificate. For testing only. Defaults to false.</summary>
    public bool InsecureSkipVerify { get; set; }

    /// <summary>Client certificate (PEM) for mutual TLS. Defaults to null.</summary>
    public string? ClientCertificatePath { get; set; }

    /// <summary>PEM private key for <see cref="ClientCertificatePath"/>. Defaults to null.</summary>
    public string? ClientCertificateKeyPath { get; set; }

    /// <summary>Sent as <c>authorization: Bearer &lt;token&gt;</c> on every call. Defaults to null.</summary>
    public string? BearerToken { get; set; }

    /// <summary>Largest response message accepted. Defaults to 4 MiB.</summary>
    public int MaxReceiveMessageSize { get; set; } = GrpcProtocol.DefaultMaxReceiveMessageSize;
}

/// <summary>Per-call settings.</summary>
/// <param name="Timeout">Deadline relative to the call start: sent as <c>grpc-timeout</c> and enforced locally.</param>
/// <param name="CancellationToken">Cancels the call (RST_STREAM); surfaces as <see cref="OperationCanceledException"/>.</param>
/// <param name="Headers">Extra metadata.</param>
public readonly record struct GrpcCallOptions(
    TimeSpan? Timeout = null,
    CancellationToken CancellationToken = default,
    IReadOnlyDictionary<string, string>? Headers = null);

/// <summary>
/// A small gRPC client over <see cref="HttpClient"/>: unary and server-streaming calls with typed messages. Non-OK
/// statuses (from trailers, or from headers in a Trailers-Only response) surface as <see cref="GrpcStatusException"/>.
/// </summary>
public sealed class GrpcClient : IDisposable
{
    /// <summary>Most messages parsed from one read of the response body before they are handed out.</summary>
    private const int MaxMessagesPerRead = 256;

    private readonly HttpClient _http;
    private readonly GrpcClientOptions _options;

    public GrpcClient(GrpcClientOptions options, HttpMessageHandler? handler = null)
    {
        _options = options;
        _http = new HttpClient(handler ?? CreateHandler(options), disposeHandler: true)
        {
            BaseAddress = options.Address,
            // Deadlines are per call; a streaming subscription may legitimately run forever.
            Timeout = System.Threading.Timeout.InfiniteTimeSpan,
            DefaultRequestVersion = HttpVersion.Version20,
            // h2c needs prior knowledge: no HTTP/1.1 upgrade dance, no downgrade.
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
    }

    /// <summary>The handler <see cref="GrpcClient"/> uses by default: one multiplexed HTTP/2 connection, optional TLS.</summary>
    public static SocketsHttpHandler CreateHandler(GrpcClientOptions options)
    {
        var handler = new SocketsHttpHandler
        {
            EnableMultipleHttp2Connections = true,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            KeepAlivePingDelay = TimeSpan.FromSeconds(60),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(30),
            AutomaticDecompression = DecompressionMethods.None,
            // A stream of small records is bound by the receive window, not the CPU: the 64 KiB default stalls the
            // server every few hundred records on a single subscription.
            InitialHttp2StreamWindowSize = 8 * 1024 * 1024,
        };

        if (options.InsecureSkipVerify)
        {
            // Explicit opt-in (--insecure-skip-tls-verify) for test clusters with throwaway certificates.
#pragma warning disable CA5359
            handler.SslOptions.RemoteCertificateValidationCallback = (_, _, _, _) => true;
#pragma warning restore CA5359
        }
        else if (options.CertificateAuthorityPath is not null)
        {
            var roots = GrpcKestrelExtensions.LoadBundle(options.CertificateAuthorityPath);
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
            {
                if (certificate is null)
                {
                    return false;
                }

                // Name mismatch is still an error; only the trust anchor is replaced.
                if ((errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0)
                {
                    return false;
                }

                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.AddRange(roots);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                return chain.Build(new X509Certificate2(certificate));
            };
        }

        if (options.ClientCertificatePath is not null)
        {
            handler.SslOptions.ClientCertificates =
            [
                X509Certificate2.CreateFromPemFile(options.ClientCertificatePath, options.ClientCertificateKeyPath),
            ];
        }

        return handler;
    }

    /// <summary>Calls a unary method, e.g. <c>/ebpf.v1.ExecTrace/GetStatus</c>.</summary>
    public async Task<TResponse> UnaryAsync<TRequest, TResponse>(
        string method, TRequest request, MessageParser<TResponse> parser, GrpcCallOptions options = default)
        where TRequest : IMessage<TRequest>
        where TResponse : class, IMessage<TResponse>
    {
        TResponse? result = null;
        await foreach (var message in ServerStreamingAsync(method, request, parser, options).ConfigureAwait(false))
        {
            if (result is not null)
            {
                throw new GrpcStatusException(StatusCode.Internal, $"{method} returned more than one message to a unary call.");
            }

            result = message;
        }

        return result ?? throw new GrpcStatusException(StatusCode.Internal, $"{method} returned no message to a unary call.");
    }

    /// <summary>
    /// Calls a server-streaming method. Leaving the enumeration early (break, dispose, cancel) resets the stream,
    /// which the server sees as a cancelled call.
    /// </summary>
    public async IAsyncEnumerable<TResponse> ServerStreamingAsync<TRequest, TResponse>(
        string method, TRequest request, MessageParser<TResponse> parser, GrpcCallOptions options = default,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
        where TRequest : IMessage<TRequest>
        where TResponse : class, IMessage<TResponse>
    {
        using var callSource = CancellationTokenSource.CreateLinkedTokenSource(options.CancellationToken, cancellationToken);
        using var deadlineSource = options.Timeout is { } timeout ? new CancellationTokenSource(timeout) : null;
        using var deadlineLink = deadlineSource?.Token.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), callSource);
        var token = callSource.Token;

        using var message = new HttpRequestMessage(HttpMethod.Post, method)
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new GrpcRequestContent(request),
        };
        message.Headers.TryAddWithoutValidation("te", "trailers");
        message.Headers.TryAddWithoutValidation(GrpcProtocol.AcceptEncodingHeader, GrpcProtocol.SupportedEncodings);
        if (options.Timeout is { } t)
        {
            message.Headers.TryAddWithoutValidation(GrpcProtocol.TimeoutHeader, GrpcProtocol.FormatTimeout(t));
        }

        if (_options.BearerToken is not null)
        {
            message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _options.BearerToken);
        }

        if (options.Headers is not null)
        {
            foreach (var (name, value) in options.Headers)
            {
                message.Headers.TryAddWithoutValidation(name, value);
            }
        }

        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or HttpRequestException)
        {
            throw Translate(ex, deadlineSource, method);
        }

        using (response)
        {
            CheckHeaders(response, method, out var trailersOnly);
            if (trailersOnly)
            {
                yield break;
            }

            var stream = await response.Content.ReadAsStreamAsync(token).ConfigureAwait(false);
            var pipe = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 64 * 1024, leaveOpen: true));
            var encoding = response.Headers.TryGetValues(GrpcProtocol.EncodingHeader, out var values) ? values.FirstOrDefault() : null;
            var reader = new GrpcMessageReader(pipe, _options.MaxReceiveMessageSize, encoding);
            var batch = new List<TResponse>();
            try
            {
                while (true)
                {
                    batch.Clear();
                    bool more;
                    try
                    {
                        more = await reader.ReadBatchAsync(parser, batch, MaxMessagesPerRead, token).ConfigureAwait(false);
                    }
                    catch (Exception ex) when (ex is OperationCanceledException or HttpRequestException or IOException)
                    {
                        throw Translate(ex, deadlineSource, method);
                    }

                    if (!more)
                    {
                        break;
                    }

                    for (var i = 0; i < batch.Count; i++)
                    {
                        // A batch is already parsed, but cancelling (or the deadline) still stops the stream at once.
                        if (token.IsCancellationRequested)
                        {
                            throw Translate(new OperationCanceledException(token), deadlineSource, method);
                        }

                        var item = batch[i];
                        batch[i] = null!;
                        yield return item;
                    }
                }
            }
            finally
            {
                await pipe.CompleteAsync().ConfigureAwait(false);
            }

            CheckStatus(response.TrailingHeaders, method, fromTrailers: true);
        }
    }

    private static Exception Translate(Exception ex, CancellationTokenSource? deadlineSource, string method)
    {
        if (deadlineSource?.IsCancellationRequested == true)
        {
            return new GrpcStatusException(StatusCode.DeadlineExceeded, "Deadline Exceeded", ex);
        }

        if (ex is OperationCanceledException)
        {
            return ex;
        }

        // A reset stream from the server carries no gRPC status: treat it like a broken connection.
        return new GrpcStatusException(StatusCode.Unavailable, $"{method}: {ex.Message}", ex);
    }

    private static void CheckHeaders(HttpResponseMessage response, string method, out bool trailersOnly)
    {
        var hasStatus = response.Headers.Contains(GrpcProtocol.StatusHeader);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            if (hasStatus)
            {
                CheckStatus(response.Headers, method, fromTrailers: false);
            }

            // PROTOCOL-HTTP2 / http-grpc-status-mapping.md: HTTP status without grpc-status.
            var code = response.StatusCode switch
            {
                HttpStatusCode.BadRequest => StatusCode.Internal,
                HttpStatusCode.Unauthorized => StatusCode.Unauthenticated,
                HttpStatusCode.Forbidden => StatusCode.PermissionDenied,
                HttpStatusCode.NotFound => StatusCode.Unimplemented,
                HttpStatusCode.TooManyRequests or HttpStatusCode.BadGateway or HttpStatusCode.ServiceUnavailable
                    or HttpStatusCode.GatewayTimeout => StatusCode.Unavailable,
                _ => StatusCode.Unknown,
            };
            throw new GrpcStatusException(code, $"Bad gRPC response: HTTP status {(int)response.StatusCode}.");
        }

        if (hasStatus)
        {
            CheckStatus(response.Headers, method, fromTrailers: false);
            trailersOnly = true;
            return;
        }

        if (!GrpcProtocol.IsGrpcContentType(response.Content.Headers.ContentType?.ToString()))
        {
            throw new GrpcStatusException(StatusCode.Internal,
                $"Bad gRPC response: content-type '{response.Content.Headers.ContentType}'.");
        }

        trailersOnly = false;
    }

    private static void CheckStatus(HttpHeaders headers, string method, bool fromTrailers)
    {
        if (!headers.TryGetValues(GrpcProtocol.StatusHeader, out var statusValues))
        {
            throw new GrpcStatusException(StatusCode.Internal, $"{method}: the response ended without grpc-status.");
        }

        var text = statusValues.FirstOrDefault();
        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var status))
        {
            throw new GrpcStatusException(StatusCode.Unknown, $"{method}: unparsable grpc-status '{text}'.");
        }

        if (status == 0)
        {
            return;
        }

        var detail = headers.TryGetValues(GrpcProtocol.MessageHeader, out var messages)
            ? GrpcProtocol.DecodeMessage(messages.FirstOrDefault())
            : string.Empty;
        _ = fromTrailers;
        throw new GrpcStatusException((StatusCode)status, detail);
    }

    public void Dispose() => _http.Dispose();

    /// <summary>One framed request message with a known length, so the request ends with END_STREAM on its DATA.</summary>
    private sealed class GrpcRequestContent : HttpContent
    {
        private readonly byte[] _frame;

        public GrpcRequestContent(IMessage message)
        {
            var size = message.CalculateSize();
            _frame = new byte[GrpcProtocol.FrameHeaderSize + size];
            GrpcProtocol.WriteFrameHeader(_frame, size);
            message.WriteTo(_frame.AsSpan(GrpcProtocol.FrameHeaderSize));
            Headers.ContentType = new MediaTypeHeaderValue(GrpcProtocol.ContentType);
        }

        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
            stream.WriteAsync(_frame).AsTask();

        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken) =>
            stream.WriteAsync(_frame, cancellationToken).AsTask();

        protected override bool TryComputeLength(out long length)
        {
            length = _frame.Length;
            return true;
        }
    }
}
