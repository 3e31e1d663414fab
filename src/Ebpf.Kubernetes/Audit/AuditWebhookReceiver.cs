using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Ebpf.Core.Audit;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Net.Http.Headers;

namespace Ebpf.Kubernetes.Audit;

/// <summary>
/// Receives kube-apiserver's audit webhook backend: a POST of an audit.k8s.io/v1 EventList as application/json
/// (k8s.io/apiserver plugin/pkg/audit/webhook: RestClient.Post().Body(&amp;EventList)). Answers 200 only once the sink
/// has durably appended the batch.
/// </summary>
/// <remarks>
/// Partially valid batches: the webhook backend retries a failed POST on any error, whatever the status
/// (retryOnError in plugin/pkg/audit/webhook/webhook.go), with exponential backoff and a bounded number of steps, then
/// drops the whole batch. Answering 400 because one item is malformed would therefore delay and finally lose every
/// valid event in the batch, while a retry can never fix the bad item. So valid items are appended and acknowledged
/// with 200, and the body reports how many items were rejected (and why). Only a body that is unusable as a whole
/// (not JSON, not an EventList) gets 400. Sink trouble gets 503, which the API server retries.
/// </remarks>
public sealed partial class AuditWebhookReceiver
{
    private readonly AuditWebhookOptions _options;
    private readonly IAuditEventSink _sink;
    private readonly ILogger _logger;
    private readonly AuditEventParser _parser;
    private readonly SemaphoreSlim _gate;
    private readonly byte[][] _tokenHashes;
    private readonly Action<IReadOnlyList<AuditEvent>>? _committed;

    /// <param name="committed">
    /// Called with each batch once the sink has committed it, before the answer (e.g. <see cref="AuditEventForwarder.Offer"/>).
    /// Must not block. Null (the default) for the forwarded-events endpoint, so a forwarded event is never forwarded again.
    /// </param>
    public AuditWebhookReceiver(AuditWebhookOptions options, IAuditEventSink sink, ILogger<AuditWebhookReceiver>? logger = null,
        Action<IReadOnlyList<AuditEvent>>? committed = null)
    {
        _committed = committed;
        options.Validate();
        _options = options;
        _sink = sink;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _parser = new AuditEventParser(options.Parser);
        _gate = new SemaphoreSlim(options.MaxConcurrentRequests, options.MaxConcurrentRequests);
        _tokenHashes = options.BearerTokens.Select(t => SHA256.HashData(Encoding.UTF8.GetBytes(t))).ToArray();
    }

    public AuditWebhookCounters Counters { get; } = new();

    public AuditWebhookOptions Options => _options;

    /// <summary>The request handler mapped by MapAuditWebhook.</summary>
    public async Task HandleAsync(HttpContext context)
    {
        Interlocked.Increment(ref Counters._requests);
        var response = context.Response;
        if (!IsAuthenticated(context))
        {
            Interlocked.Increment(ref Counters._unauthorized);
            LogUnauthorized(_logger, context.Connection.RemoteIpAddress?.ToString());
            response.Headers.WWWAuthenticate = "Bearer realm=\"audit-webhook\"";
            await WriteErrorAsync(response, StatusCodes.Status401Unauthorized, "missing or invalid credentials");
            return;
        }

        if (!MediaTypeHeaderValue.TryParse(context.Request.ContentType, out var mediaType) || !mediaType.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase))
        {
            Interlocked.Increment(ref Counters._malformed);
            await WriteErrorAsync(response, StatusCodes.Status415UnsupportedMediaType, $"Content-Type must be application/json (got '{context.Request.ContentType}')");
            return;
        }

        if (context.Request.ContentLength > _options.MaxBodyBytes)
        {
            await RejectOversizedAsync(response, context.Request.ContentLength.Value);
            return;
        }

        // Bounded concurrency caps memory at MaxConcurrentRequests * MaxBodyBytes; waiting would hold sockets and bodies.
        if (!_gate.Wait(0))
        {
            Interlocked.Increment(ref Counters._saturated);
            LogSaturated(_logger, "concurrency limit reached");
            await WriteUnavailableAsync(response, _options.RetryAfter, "receiver saturated, retry later");
            return;
        }

        byte[]? buffer = null;
        try
        {
            if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } sizeFeature)
            {
                sizeFeature.MaxRequestBodySize = _options.MaxBodyBytes;
            }

            int length;
            try
            {
                (buffer, length) = await ReadBodyAsync(context.Request.Body, (int)_options.MaxBodyBytes, context.RequestAborted);
            }
            catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
            {
                buffer = null;
                length = -1;
            }

            if (length < 0)
            {
                await RejectOversizedAsync(response, null);
                return;
            }

            var batch = _parser.ParseEventList(buffer.AsSpan(0, length));
            if (batch.DocumentError is not null)
            {
                Interlocked.Increment(ref Counters._malformed);
                LogMalformed(_logger, batch.DocumentError);
                await WriteErrorAsync(response, StatusCodes.Status400BadRequest, batch.DocumentError);
                return;
            }

            Interlocked.Add(ref Counters._received, batch.Items.Count);
            if (batch.RejectedCount > 0)
            {
                Interlocked.Add(ref Counters._rejected, batch.RejectedCount);
                LogItemsRejected(_logger, batch.RejectedCount, batch.Items.Count, batch.Items.First(i => !i.IsEvent).ToString());
            }

            var result = default(AuditAppendResult);
            if (batch.Events.Count > 0)
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
                timeout.CancelAfter(_options.AppendTimeout);
                try
                {
                    result = await _sink.AppendAsync(batch.Events, timeout.Token);
                }
                catch (AuditSinkSaturatedException ex)
                {
                    Interlocked.Increment(ref Counters._saturated);
                    LogSaturated(_logger, ex.Message);
                    await WriteUnavailableAsync(response, ex.RetryAfter ?? _options.RetryAfter, "event sink saturated, retry later");
                    return;
                }
                catch (OperationCanceledException) when (!context.RequestAborted.IsCancellationRequested)
                {
                    Interlocked.Increment(ref Counters._saturated);
                    LogSaturated(_logger, $"sink did not acknowledge within {_options.AppendTimeout}");
                    await WriteUnavailableAsync(response, _options.RetryAfter, "event sink too slow, retry later");
                    return;
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    Interlocked.Increment(ref Counters._sinkFailures);
                    LogSinkFailed(_logger, ex);
                    await WriteUnavailableAsync(response, _options.RetryAfter, "event sink failed, retry later");
                    return;
                }

                Interlocked.Add(ref Counters._appended, result.Appended);
                Interlocked.Add(ref Counters._duplicates, result.Duplicates);
                // Duplicates too: a redelivered batch may be the one whose forwarding was lost; the peer dedupes.
                _committed?.Invoke(batch.Events);
            }

            await WriteAcceptedAsync(response, batch, result);
        }
        finally
        {
            _gate.Release();
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    private bool IsAuthenticated(HttpContext context)
    {
        if (_options.AllowUnauthenticated)
        {
            return true;
        }

        // Kestrel only exposes a client certificate that passed ClientCertificateValidation (AuditWebhookTls).
        if (_options.ClientCertificateAuthentication && context.Connection.ClientCertificate is not null)
        {
            return true;
        }

        if (_tokenHashes.Length == 0)
        {
            return false;
        }

        var header = context.Request.Headers.Authorization;
        if (header.Count != 1 || header[0] is not { } value || !value.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        // Hash first so the comparison is constant-time regardless of the presented token's length.
        var presented = SHA256.HashData(Encoding.UTF8.GetBytes(value.AsSpan(7).Trim().ToString()));
        var match = false;
        foreach (var expected in _tokenHashes)
        {
            match |= CryptographicOperations.FixedTimeEquals(presented, expected);
        }

        return match;
    }

    // Returns length -1 when the body exceeds the limit. The returned buffer is rented from the shared pool.
    private static async Task<(byte[] Buffer, int Length)> ReadBodyAsync(Stream body, int limit, CancellationToken ct)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        var length = 0;
        try
        {
            while (true)
            {
                if (length == buffer.Length)
                {
                    if (buffer.Length > limit)
                    {
                        return (buffer, -1);
                    }

                    var bigger = ArrayPool<byte>.Shared.Rent((int)Math.Min((long)buffer.Length * 2, (long)limit + 1));
                    buffer.AsSpan(0, length).CopyTo(bigger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = bigger;
                }

                var read = await body.ReadAsync(buffer.AsMemory(length), ct);
                if (read == 0)
                {
                    return (buffer, length > limit ? -1 : length);
                }

                length += read;
                if (length > limit)
                {
                    return (buffer, -1);
                }
            }
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
    }

    private async Task RejectOversizedAsync(HttpResponse response, long? length)
    {
        Interlocked.Increment(ref Counters._oversized);
        LogOversized(_logger, length ?? -1, _options.MaxBodyBytes);
        await WriteErrorAsync(response, StatusCodes.Status413PayloadTooLarge, $"body larger than {_options.MaxBodyBytes} bytes");
    }

    private static Task WriteUnavailableAsync(HttpResponse response, TimeSpan retryAfter, string message)
    {
        response.Headers.RetryAfter = ((int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        return WriteErrorAsync(response, StatusCodes.Status503ServiceUnavailable, message);
    }

    private static async Task WriteErrorAsync(HttpResponse response, int status, string message)
    {
        response.StatusCode = status;
        response.ContentType = "application/json";
        await using (var writer = new Utf8JsonWriter(response.BodyWriter))
        {
            writer.WriteStartObject();
            writer.WriteString("error", message);
            writer.WriteEndObject();
        }

        await response.BodyWriter.FlushAsync();
    }

    private async Task WriteAcceptedAsync(HttpResponse response, AuditParseBatch batch, AuditAppendResult result)
    {
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "application/json";
        await using (var writer = new Utf8JsonWriter(response.BodyWriter))
        {
            writer.WriteStartObject();
            writer.WriteNumber("received", batch.Items.Count);
            writer.WriteNumber("appended", result.Appended);
            writer.WriteNumber("duplicates", result.Duplicates);
            writer.WriteNumber("rejected", batch.RejectedCount);
            writer.WriteStartArray("rejections");
            var listed = 0;
            foreach (var item in batch.Items)
            {
                if (item.IsEvent)
                {
                    continue;
                }

                if (listed++ == _options.MaxRejectionsReported)
                {
                    break;
                }

                writer.WriteStartObject();
                writer.WriteString("location", item.Location);
                writer.WriteString("reason", item.Rejection);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        await response.BodyWriter.FlushAsync();
    }

    [LoggerMessage(EventId = 4100, Level = LogLevel.Warning, Message = "Audit webhook: unauthenticated request from {Remote}")]
    private static partial void LogUnauthorized(ILogger logger, string? remote);

    [LoggerMessage(EventId = 4101, Level = LogLevel.Warning, Message = "Audit webhook: saturated ({Reason}); answered 503")]
    private static partial void LogSaturated(ILogger logger, string reason);

    [LoggerMessage(EventId = 4102, Level = LogLevel.Warning, Message = "Audit webhook: malformed body: {Reason}")]
    private static partial void LogMalformed(ILogger logger, string reason);

    [LoggerMessage(EventId = 4103, Level = LogLevel.Warning, Message = "Audit webhook: rejected {Rejected} of {Total} items; first: {First}")]
    private static partial void LogItemsRejected(ILogger logger, int rejected, int total, string first);

    [LoggerMessage(EventId = 4104, Level = LogLevel.Warning, Message = "Audit webhook: body of {Length} bytes over the {Limit}-byte limit")]
    private static partial void LogOversized(ILogger logger, long length, long limit);

    [LoggerMessage(EventId = 4105, Level = LogLevel.Error, Message = "Audit webhook: sink failed; answered 503")]
    private static partial void LogSinkFailed(ILogger logger, Exception exception);
}
