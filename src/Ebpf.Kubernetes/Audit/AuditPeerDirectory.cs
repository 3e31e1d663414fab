using System.Globalization;
using System.Text.Json;
using Ebpf.Kubernetes.Api;

namespace Ebpf.Kubernetes.Audit;

/// <summary>
/// Answers the two questions forwarding asks the API server: on which node is a pod (GET pod, spec.nodeName), and
/// where does the agent of a node listen (the Running agent pod on that node: status.podIP and its webhook port).
/// Both answers are cached briefly. Safe for concurrent use.
/// </summary>
public sealed class AuditPeerDirectory
{
    private readonly KubeApiClient _api;
    private readonly AuditForwardingOptions _options;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, (string? Node, long At)> _podNodes = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _peerRefresh = new(1, 1);
    private volatile PeerSnapshot? _peers;

    public AuditPeerDirectory(KubeApiClient api, AuditForwardingOptions options, TimeProvider? time = null)
    {
        _api = api;
        _options = options;
        _time = time ?? TimeProvider.System;
    }

    /// <summary>The pod's spec.nodeName; null when the pod does not exist or is not scheduled yet. API errors throw.</summary>
    public async Task<string?> GetPodNodeAsync(string @namespace, string name, CancellationToken cancellationToken)
    {
        string key = @namespace + "/" + name;
        lock (_lock)
        {
            if (_podNodes.TryGetValue(key, out var cached) && _time.GetElapsedTime(cached.At) < _options.PodNodeCacheTtl)
                return cached.Node;
        }
        var element = await _api.GetPodAsync(@namespace, name, cancellationToken).ConfigureAwait(false);
        string? node = null;
        if (element is { } pod)
        {
            Pod? parsed;
            try { parsed = pod.Deserialize(KubeJsonContext.Default.Pod); }
            catch (JsonException e) { throw new KubeApiException($"pod {key} is not a Pod: {e.Message}", e); }
            node = string.IsNullOrEmpty(parsed?.Spec?.NodeName) ? null : parsed.Spec.NodeName;
        }
        lock (_lock)
        {
            // Bounded: a flood of execs into short-lived pods must not grow the cache without limit.
            if (_podNodes.Count >= _options.MaxCachedPods) _podNodes.Clear();
            _podNodes[key] = (node, _time.GetTimestamp());
        }
        return node;
    }

    /// <summary>
    /// The forwarded-events URL of the agent on <paramref name="nodeName"/>, or null when no Running agent pod with an
    /// IP is there. <paramref name="refresh"/> re-lists the agent pods (after a failed delivery: the agent may have
    /// been replaced) unless the list is younger than <see cref="AuditForwardingOptions.InitialBackoff"/>. API errors throw.
    /// </summary>
    public async Task<Uri?> GetPeerAsync(string nodeName, bool refresh, CancellationToken cancellationToken)
    {
        var snapshot = _peers;
        if (snapshot is not null && _time.GetElapsedTime(snapshot.At) < (refresh ? _options.InitialBackoff : _options.PeerCacheTtl))
            return snapshot.ByNode.GetValueOrDefault(nodeName);
        await _peerRefresh.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // Another caller may have refreshed while this one waited.
            snapshot = _peers;
            if (snapshot is null || _time.GetElapsedTime(snapshot.At) >= (refresh ? _options.InitialBackoff : _options.PeerCacheTtl))
            {
                snapshot = await ListPeersAsync(cancellationToken).ConfigureAwait(false);
                _peers = snapshot;
            }
            return snapshot.ByNode.GetValueOrDefault(nodeName);
        }
        finally
        {
            _peerRefresh.Release();
        }
    }

    private async Task<PeerSnapshot> ListPeersAsync(CancellationToken cancellationToken)
    {
        var byNode = new Dictionary<string, Uri>(StringComparer.Ordinal);
        string? continueToken = null;
        int pages = 0;
        do
        {
            var page = await _api.ListPodsAsync(_options.AgentNamespace, _options.AgentLabelSelector, null, 500, continueToken, cancellationToken).ConfigureAwait(false);
            foreach (var item in page.Items)
            {
                if (TryGetPeer(item, out var node, out var uri)) byNode[node] = uri;
            }
            continueToken = page.Continue;
        }
        while (continueToken is not null && ++pages < 100);
        return new PeerSnapshot(byNode, _time.GetTimestamp());
    }

    private bool TryGetPeer(JsonElement item, out string node, out Uri uri)
    {
        node = "";
        uri = null!;
        Pod? pod;
        try { pod = item.Deserialize(KubeJsonContext.Default.Pod); }
        catch (JsonException) { return false; } // one malformed pod must not cost the other peers
        if (pod?.Spec?.NodeName is not { Length: > 0 } nodeName || pod.Status?.Phase != "Running" || pod.Metadata?.DeletionTimestamp is not null)
            return false;
        if (pod.Status.PodIP is not { Length: > 0 } ip || !System.Net.IPAddress.TryParse(ip, out var address))
            return false;
        int port = _options.PeerPort;
        foreach (var container in pod.Spec.Containers ?? [])
        {
            foreach (var p in container.Ports ?? [])
            {
                if (p.Name == _options.PeerPortName && p.ContainerPort is > 0 and < 65536) port = p.ContainerPort.Value;
            }
        }
        string host = address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{address}]" : address.ToString();
        node = nodeName;
        uri = new Uri($"{_options.PeerScheme}://{host}:{port.ToString(CultureInfo.InvariantCulture)}{_options.ForwardedPath}");
        return true;
    }

    private sealed record PeerSnapshot(Dictionary<string, Uri> ByNode, long At);
}
