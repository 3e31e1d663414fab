using Ebpf.Core.Audit;

namespace Ebpf.Kubernetes.Audit;

/// <summary>Settings of the audit webhook receiver (<see cref="AuditWebhookEndpointExtensions.MapAuditWebhook(Microsoft.AspNetCore.Routing.IEndpointRouteBuilder, string, AuditWebhookReceiver)"/>).</summary>
public sealed class AuditWebhookOptions
{
    /// <summary>
    /// Largest accepted request body; larger ones get 413. Defaults to 16 MiB, above kube-apiserver's default
    /// batch cap (--audit-webhook-truncate-max-batch-size, 10 MiB, only enforced when truncation is enabled).
    /// </summary>
    public long MaxBodyBytes { get; set; } = 16 * 1024 * 1024;

    /// <summary>
    /// How many requests may be parsed/appended at once; further requests get 503 with Retry-After at once instead
    /// of queueing (which would hold their bodies in memory). Defaults to 4.
    /// </summary>
    public int MaxConcurrentRequests { get; set; } = 4;

    /// <summary>How long to wait for the sink before answering 503 so the API server retries. Defaults to 20 seconds.</summary>
    public TimeSpan AppendTimeout { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>Retry-After sent with 503. Defaults to 5 seconds (the API server uses its own backoff, but honours the status).</summary>
    public TimeSpan RetryAfter { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Accepted bearer tokens (the <c>users[].user.token</c> of the API server's webhook kubeconfig). Compared in
    /// constant time. Empty (the default) disables bearer authentication.
    /// </summary>
    public IReadOnlyList<string> BearerTokens { get; set; } = [];

    /// <summary>
    /// When true, a request on a TLS connection whose client certificate passed validation (see
    /// <see cref="AuditWebhookTls"/>) is authenticated. Defaults to false.
    /// </summary>
    public bool ClientCertificateAuthentication { get; set; }

    /// <summary>Accept requests with no credentials. Only for tests and loopback setups. Defaults to false.</summary>
    public bool AllowUnauthenticated { get; set; }

    /// <summary>How many item rejections are listed in a response body (all are counted). Defaults to 20.</summary>
    public int MaxRejectionsReported { get; set; } = 20;

    /// <summary>Limits for parsing the body. Defaults to <see cref="AuditParserOptions"/> defaults.</summary>
    public AuditParserOptions Parser { get; set; } = new();

    /// <summary>
    /// Reads bearer tokens from a file (a mounted Secret): one token per line, blank lines ignored, surrounding
    /// whitespace trimmed (Secret files often end with a newline). Several lines allow rotating without downtime.
    /// </summary>
    public static IReadOnlyList<string> ReadBearerTokenFile(string path)
    {
        var tokens = File.ReadAllLines(path).Select(l => l.Trim()).Where(l => l.Length > 0).ToList();
        return tokens.Count > 0 ? tokens : throw new ArgumentException($"Bearer token file {path} holds no token.");
    }

    /// <summary>Throws <see cref="ArgumentException"/> with a clear message when the settings cannot work.</summary>
    public void Validate()
    {
        if (MaxBodyBytes is < 1024 or > int.MaxValue)
        {
            throw new ArgumentException($"{nameof(MaxBodyBytes)} must be within 1 KiB..2 GiB (is {MaxBodyBytes}).");
        }

        if (MaxConcurrentRequests < 1)
        {
            throw new ArgumentException($"{nameof(MaxConcurrentRequests)} must be at least 1 (is {MaxConcurrentRequests}).");
        }

        if (AppendTimeout <= TimeSpan.Zero || RetryAfter < TimeSpan.Zero)
        {
            throw new ArgumentException($"{nameof(AppendTimeout)} must be positive and {nameof(RetryAfter)} not negative.");
        }

        if (BearerTokens.Any(string.IsNullOrEmpty))
        {
            throw new ArgumentException($"{nameof(BearerTokens)} contains an empty token.");
        }

        if (!AllowUnauthenticated && BearerTokens.Count == 0 && !ClientCertificateAuthentication)
        {
            throw new ArgumentException($"No authentication configured: set {nameof(BearerTokens)} and/or {nameof(ClientCertificateAuthentication)}, or {nameof(AllowUnauthenticated)} explicitly.");
        }

        Parser.Validate();
    }
}

/// <summary>Webhook receiver counters (monotonic; read with the properties).</summary>
public sealed class AuditWebhookCounters
{
    internal long _requests, _received, _appended, _duplicates, _rejected, _malformed, _oversized, _saturated, _unauthorized, _sinkFailures;

    /// <summary>HTTP requests that reached the endpoint.</summary>
    public long Requests => Volatile.Read(ref _requests);

    /// <summary>EventList items received in well-formed bodies.</summary>
    public long Received => Volatile.Read(ref _received);

    /// <summary>Events the sink stored as new.</summary>
    public long Appended => Volatile.Read(ref _appended);

    /// <summary>Events the sink already had (redelivery).</summary>
    public long Duplicates => Volatile.Read(ref _duplicates);

    /// <summary>Items rejected by the parser (acknowledged and dropped: retrying cannot fix them).</summary>
    public long Rejected => Volatile.Read(ref _rejected);

    /// <summary>Bodies answered 400.</summary>
    public long MalformedBodies => Volatile.Read(ref _malformed);

    /// <summary>Bodies answered 413.</summary>
    public long OversizedBodies => Volatile.Read(ref _oversized);

    /// <summary>Requests answered 503 because the gate was full or the sink pushed back or timed out.</summary>
    public long Saturated => Volatile.Read(ref _saturated);

    /// <summary>Requests answered 401.</summary>
    public long Unauthorized => Volatile.Read(ref _unauthorized);

    /// <summary>Sink failures (answered 503 so the API server retries).</summary>
    public long SinkFailures => Volatile.Read(ref _sinkFailures);
}
