using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Threading.Channels;
using Ebpf.Core.Audit;
using Ebpf.Kubernetes.Api;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ebpf.Kubernetes.Audit;

/// <summary>
/// Sends audit events to the agent on the node where they can be joined. kube-apiserver posts every batch to one
/// URL (the Service), so a batch reaches one agent, but an exec is joined with its processes only by the agent of the
/// pod's node. After the webhook has committed a batch, <see cref="Offer"/> picks the events that name a pod of
/// another node (pods/exec, attach, portforward, ephemeralcontainers; calls made with a pod-bound token of another
/// node) and queues them; <see cref="RunAsync"/> finds the pod's node and that node's agent and POSTs them as an
/// EventList to its forwarded-events endpoint, which stores them like webhook events and never forwards them again.
/// </summary>
/// <remarks>
/// Never on the API server's request path: <see cref="Offer"/> only enqueues (TryWrite), a full queue drops and counts.
/// Deliveries are retried with exponential backoff, then dropped and counted. The peer deduplicates by
/// (auditID, stage, stageTimestamp), so a retry after a lost acknowledgement is harmless.
/// </remarks>
public sealed partial class AuditEventForwarder : IDisposable
{
    private static readonly byte[] ListHead = """{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":["""u8.ToArray();
    private static readonly byte[] ListTail = "]}"u8.ToArray();

    private readonly AuditForwardingOptions _options;
    private readonly AuditPeerDirectory _directory;
    private readonly Func<string, string, bool> _isLocalPod;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Channel<Pending> _queue;
    private readonly SemaphoreSlim _slots;
    private readonly HttpClient _http;
    private readonly IDisposable? _ownedApiClient;

    /// <param name="options">Settings; validated here.</param>
    /// <param name="directory">Pod → node and node → agent lookups.</param>
    /// <param name="isLocalPod">True when (namespace, name) is a pod of this node (the node-scoped pod watch).</param>
    /// <param name="ownedApiClient">The directory's API client when the forwarder should dispose of it. Defaults to none.</param>
    public AuditEventForwarder(AuditForwardingOptions options, AuditPeerDirectory directory, Func<string, string, bool> isLocalPod,
        TimeProvider? time = null, ILogger<AuditEventForwarder>? logger = null, IDisposable? ownedApiClient = null)
    {
        _ownedApiClient = ownedApiClient;
        options.Validate();
        _options = options;
        _directory = directory;
        _isLocalPod = isLocalPod;
        _time = time ?? TimeProvider.System;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _queue = Channel.CreateBounded<Pending>(new BoundedChannelOptions(options.QueueCapacity)
        {
            // Full queue: TryWrite fails and the event is counted as dropped; the webhook never waits.
            FullMode = BoundedChannelFullMode.Wait,
            // One loop reads; any number of webhook requests write.
            SingleReader = true,
            SingleWriter = false,
        });
        _slots = new SemaphoreSlim(options.MaxConcurrentPosts, options.MaxConcurrentPosts);
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = options.RequestTimeout,
            // Agent pods are replaced on upgrade: do not keep talking to an address for long.
            PooledConnectionLifetime = TimeSpan.FromMinutes(2),
            AutomaticDecompression = DecompressionMethods.None,
        };
        if (options.PeerScheme == "https")
        {
            handler.SslOptions.RemoteCertificateValidationCallback = ValidatePeerCertificate;
        }
        _http = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
    }

    public AuditForwardingCounters Counters { get; } = new();

    public AuditForwardingOptions Options => _options;

    /// <summary>
    /// Queues the events of a committed batch that belong to another node. Never blocks and never throws: a full
    /// queue drops (counted in <see cref="AuditForwardingCounters.Dropped"/>).
    /// </summary>
    public void Offer(IReadOnlyList<AuditEvent> events)
    {
        foreach (var auditEvent in events)
        {
            try
            {
                if (!TryTarget(auditEvent, out var pending)) continue;
                Interlocked.Increment(ref Counters._candidates);
                if (_queue.Writer.TryWrite(pending))
                {
                    Interlocked.Increment(ref Counters._queued);
                }
                else
                {
                    if (Interlocked.Increment(ref Counters._dropped) == 1) LogQueueFull(_logger, _options.QueueCapacity);
                }
            }
            catch (Exception e)
            {
                // A bug here must not turn an acknowledged batch into an error answer.
                LogOfferFailed(_logger, e);
            }
        }
    }

    /// <summary>Which events leave this node, and for where (the pod to look up, or the bound token's node).</summary>
    private bool TryTarget(AuditEvent auditEvent, out Pending pending)
    {
        pending = default;
        // Only native events can be re-posted as an EventList item byte for byte.
        if (auditEvent.SourceFormat != AuditSourceFormat.Native || auditEvent.RawJson.IsEmpty) return false;
        var derived = auditEvent.Derived;
        if (derived.Streaming is { PodNamespace: { Length: > 0 } ns, PodName: { Length: > 0 } pod })
        {
            if (_isLocalPod(ns, pod)) return false;
            pending = new Pending(auditEvent.RawJson, ns, pod, null);
            return true;
        }
        if (_options.ForwardBoundTokenEvents && derived.BoundToken?.NodeName is { Length: > 0 } node && node != _options.NodeName)
        {
            pending = new Pending(auditEvent.RawJson, null, null, node);
            return true;
        }
        return false;
    }

    /// <summary>Forwards queued events until <paramref name="cancellationToken"/> is cancelled.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var deliveries = new List<Task>();
        try
        {
            var reader = _queue.Reader;
            var batch = new List<Pending>(_options.MaxEventsPerPost);
            while (await reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
            {
                batch.Clear();
                while (batch.Count < _options.MaxEventsPerPost * _options.MaxConcurrentPosts && reader.TryRead(out var item)) batch.Add(item);
                var byNode = new Dictionary<string, List<ReadOnlyMemory<byte>>>(StringComparer.Ordinal);
                foreach (var item in batch)
                {
                    string? node = item.Node ?? await ResolveNodeAsync(item.Namespace!, item.Pod!, cancellationToken).ConfigureAwait(false);
                    if (node is null) continue;
                    if (node == _options.NodeName)
                    {
                        Interlocked.Increment(ref Counters._local);
                        continue;
                    }
                    if (!byNode.TryGetValue(node, out var list)) byNode[node] = list = [];
                    list.Add(item.RawJson);
                }
                foreach (var (node, events) in byNode)
                {
                    foreach (var chunk in Chunk(events))
                    {
                        await _slots.WaitAsync(cancellationToken).ConfigureAwait(false);
                        deliveries.RemoveAll(t => t.IsCompleted);
                        deliveries.Add(DeliverAsync(node, chunk, cancellationToken));
                    }
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        await Task.WhenAll(deliveries).ConfigureAwait(false);
    }

    private async Task<string?> ResolveNodeAsync(string @namespace, string pod, CancellationToken cancellationToken)
    {
        try
        {
            var node = await _directory.GetPodNodeAsync(@namespace, pod, cancellationToken).ConfigureAwait(false);
            if (node is null)
            {
                Interlocked.Increment(ref Counters._unresolved);
                LogPodUnknown(_logger, @namespace, pod);
            }
            return node;
        }
        catch (Exception e) when (e is KubeApiException or HttpRequestException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            Interlocked.Increment(ref Counters._unresolved);
            LogLookupFailed(_logger, @namespace, pod, e.Message);
            return null;
        }
    }

    private IEnumerable<List<ReadOnlyMemory<byte>>> Chunk(List<ReadOnlyMemory<byte>> events)
    {
        var chunk = new List<ReadOnlyMemory<byte>>();
        long bytes = 0;
        foreach (var e in events)
        {
            if (chunk.Count > 0 && (chunk.Count == _options.MaxEventsPerPost || bytes + e.Length > _options.MaxBytesPerPost))
            {
                yield return chunk;
                chunk = [];
                bytes = 0;
            }
            chunk.Add(e);
            bytes += e.Length + 1;
        }
        if (chunk.Count > 0) yield return chunk;
    }

    private async Task DeliverAsync(string node, List<ReadOnlyMemory<byte>> events, CancellationToken cancellationToken)
    {
        try
        {
            byte[] body = EventList(events);
            var backoff = _options.InitialBackoff;
            string reason = "";
            for (int attempt = 1; attempt <= _options.MaxAttempts; attempt++)
            {
                if (attempt > 1)
                {
                    Interlocked.Increment(ref Counters._retries);
                    await Task.Delay(backoff, _time, cancellationToken).ConfigureAwait(false);
                    backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, _options.MaxBackoff.Ticks));
                }
                Uri? peer;
                try
                {
                    peer = await _directory.GetPeerAsync(node, refresh: attempt > 1, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is KubeApiException or HttpRequestException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
                {
                    reason = "listing agent pods failed: " + e.Message;
                    continue;
                }
                if (peer is null)
                {
                    reason = "no Running agent pod on the node";
                    continue;
                }
                var (outcome, detail) = await PostAsync(peer, body, cancellationToken).ConfigureAwait(false);
                if (outcome == PostOutcome.Delivered)
                {
                    Interlocked.Add(ref Counters._forwarded, events.Count);
                    Interlocked.Increment(ref Counters._posts);
                    LogForwarded(_logger, events.Count, node, peer);
                    return;
                }
                reason = $"{peer}: {detail}";
                if (outcome == PostOutcome.Refused) break;
            }
            Interlocked.Add(ref Counters._failed, events.Count);
            LogDeliveryFailed(_logger, events.Count, node, reason);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        finally
        {
            _slots.Release();
        }
    }

    private async Task<(PostOutcome Outcome, string Detail)> PostAsync(Uri peer, byte[] body, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.RequestTimeout);
        using var request = new HttpRequestMessage(HttpMethod.Post, peer) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _options.Token);
        try
        {
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
            int status = (int)response.StatusCode;
            if (response.IsSuccessStatusCode) return (PostOutcome.Delivered, "");
            // 503 (saturated), 408, 429 and 5xx are worth retrying; other 4xx (401 wrong token, 400, 413) are not.
            bool retry = status is 408 or 429 or >= 500;
            return (retry ? PostOutcome.Retry : PostOutcome.Refused, $"answered {status}");
        }
        catch (HttpRequestException e)
        {
            return (PostOutcome.Retry, e.Message);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return (PostOutcome.Retry, $"no answer within {_options.RequestTimeout}");
        }
    }

    private static byte[] EventList(List<ReadOnlyMemory<byte>> events)
    {
        int length = ListHead.Length + ListTail.Length + events.Sum(e => e.Length) + Math.Max(0, events.Count - 1);
        var body = new byte[length];
        ListHead.CopyTo(body, 0);
        int at = ListHead.Length;
        for (int i = 0; i < events.Count; i++)
        {
            if (i > 0) body[at++] = (byte)',';
            events[i].Span.CopyTo(body.AsSpan(at));
            at += events[i].Length;
        }
        ListTail.CopyTo(body, at);
        return body;
    }

    private bool ValidatePeerCertificate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (certificate is null) return false;
        var presented = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        if (_options.PeerCertificateAuthorities is { Count: > 0 } authorities)
        {
            using var custom = new X509Chain();
            custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            custom.ChainPolicy.CustomTrustStore.AddRange(authorities);
            // Cluster CAs publish no CRL/OCSP endpoints.
            custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            if (!custom.Build(presented)) return false;
            // Peers are dialled by pod IP, which the shared serving certificate does not name: check the Service name.
            return _options.PeerServerName is not { Length: > 0 } name || presented.MatchesHostname(name);
        }
        if (_options.PinnedPeerCertificates is { Count: > 0 } pinned)
        {
            foreach (var p in pinned)
            {
                if (p.RawDataMemory.Span.SequenceEqual(presented.RawDataMemory.Span)) return true;
            }
        }
        return false;
    }

    public void Dispose()
    {
        _queue.Writer.TryComplete();
        _http.Dispose();
        _ownedApiClient?.Dispose();
    }

    private enum PostOutcome { Delivered, Retry, Refused }

    private readonly record struct Pending(ReadOnlyMemory<byte> RawJson, string? Namespace, string? Pod, string? Node);

    [LoggerMessage(EventId = 4120, Level = LogLevel.Warning, Message = "Audit forwarding: queue full ({Capacity} events); events are dropped and counted (first drop)")]
    private static partial void LogQueueFull(ILogger logger, int capacity);

    [LoggerMessage(EventId = 4121, Level = LogLevel.Error, Message = "Audit forwarding: could not queue an event")]
    private static partial void LogOfferFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 4122, Level = LogLevel.Debug, Message = "Audit forwarding: pod {Namespace}/{Pod} not found or not scheduled; its event stays here")]
    private static partial void LogPodUnknown(ILogger logger, string @namespace, string pod);

    [LoggerMessage(EventId = 4123, Level = LogLevel.Warning, Message = "Audit forwarding: cannot find the node of pod {Namespace}/{Pod}: {Reason}")]
    private static partial void LogLookupFailed(ILogger logger, string @namespace, string pod, string reason);

    [LoggerMessage(EventId = 4124, Level = LogLevel.Debug, Message = "Audit forwarding: {Count} events to node {Node} ({Peer})")]
    private static partial void LogForwarded(ILogger logger, int count, string node, Uri peer);

    [LoggerMessage(EventId = 4125, Level = LogLevel.Warning, Message = "Audit forwarding: gave up on {Count} events for node {Node}: {Reason}")]
    private static partial void LogDeliveryFailed(ILogger logger, int count, string node, string reason);
}
