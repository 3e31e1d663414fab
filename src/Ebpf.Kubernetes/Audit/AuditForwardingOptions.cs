using System.Security.Cryptography.X509Certificates;

namespace Ebpf.Kubernetes.Audit;

/// <summary>
/// Settings of <see cref="AuditEventForwarder"/>: which audit events go to the agent on another node, how that agent
/// is found and how the forwarded batches are delivered.
/// </summary>
public sealed class AuditForwardingOptions
{
    /// <summary>This agent's node: events for pods on it are never forwarded. Required.</summary>
    public string NodeName { get; set; } = "";

    /// <summary>Namespace of the agent pods (our own pod's namespace). Required.</summary>
    public string AgentNamespace { get; set; } = "";

    /// <summary>Label selector of the agent pods. Defaults to the DaemonSet's pod label <c>app.kubernetes.io/name=ebpf-agent</c>.</summary>
    public string AgentLabelSelector { get; set; } = "app.kubernetes.io/name=ebpf-agent";

    /// <summary>Bearer token presented to the peer's forwarded-events endpoint (the shared forwarding Secret). Required.</summary>
    public string Token { get; set; } = "";

    /// <summary>
    /// Tokens this agent's forwarded-events endpoint accepts (for the host that maps it). Defaults to empty: only
    /// <see cref="Token"/>. Several allow rotating the shared Secret without downtime.
    /// </summary>
    public IReadOnlyList<string> AcceptedTokens { get => _acceptedTokens.Count > 0 ? _acceptedTokens : [Token]; set => _acceptedTokens = value; }

    private IReadOnlyList<string> _acceptedTokens = [];

    /// <summary>URL path of the peer's forwarded-events endpoint. Defaults to /audit/forwarded.</summary>
    public string ForwardedPath { get; set; } = "/audit/forwarded";

    /// <summary>"http" or "https", as the peers' webhook listener serves. Defaults to https.</summary>
    public string PeerScheme { get; set; } = "https";

    /// <summary>
    /// Name of the agent container's port that serves the webhook; the peer's port is read from its pod spec.
    /// Defaults to "webhook" (deploy/base/daemonset.yaml).
    /// </summary>
    public string PeerPortName { get; set; } = "webhook";

    /// <summary>Port used when the peer's pod spec has no port named <see cref="PeerPortName"/>. Defaults to 8443.</summary>
    public int PeerPort { get; set; } = 8443;

    /// <summary>
    /// CA certificates the peers' serving certificate must chain to (https). Null (the default): the peer must
    /// present one of <see cref="PinnedPeerCertificates"/>.
    /// </summary>
    public X509Certificate2Collection? PeerCertificateAuthorities { get; set; }

    /// <summary>
    /// With <see cref="PeerCertificateAuthorities"/>: the DNS name the peer certificate must carry. Peers are dialled by
    /// pod IP, which the shared serving certificate does not name, so the Service name is checked instead. Defaults to
    /// null: the name is not checked (the CA alone vouches).
    /// </summary>
    public string? PeerServerName { get; set; }

    /// <summary>
    /// Without <see cref="PeerCertificateAuthorities"/>: the exact certificates a peer may present (every agent serves
    /// the same Secret, so our own serving certificate). Defaults to none.
    /// </summary>
    public X509Certificate2Collection? PinnedPeerCertificates { get; set; }

    /// <summary>Events waiting to be forwarded; more are dropped and counted. Defaults to 4096.</summary>
    public int QueueCapacity { get; set; } = 4096;

    /// <summary>Events per POST to one peer. Defaults to 200 (half the API server's default batch).</summary>
    public int MaxEventsPerPost { get; set; } = 200;

    /// <summary>Bytes of event JSON per POST (below the peer's webhook.maxBodyBytes). Defaults to 4 MiB.</summary>
    public int MaxBytesPerPost { get; set; } = 4 * 1024 * 1024;

    /// <summary>POSTs in flight at once (to different or the same peers). Defaults to 4.</summary>
    public int MaxConcurrentPosts { get; set; } = 4;

    /// <summary>Delivery attempts of one POST before its events are dropped and counted as failed. Defaults to 5.</summary>
    public int MaxAttempts { get; set; } = 5;

    /// <summary>Wait before the second attempt; doubled for each further one up to <see cref="MaxBackoff"/>. Defaults to 500 ms.</summary>
    public TimeSpan InitialBackoff { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Longest wait between attempts. Defaults to 8 s.</summary>
    public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromSeconds(8);

    /// <summary>Timeout of one POST (connect included). Defaults to 10 s.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a pod's node (from GET pod) is reused. Defaults to 30 s (a pod never changes node; deletion and re-creation under the same name does).</summary>
    public TimeSpan PodNodeCacheTtl { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long the agent pod list is reused; a failed delivery refreshes it sooner. Defaults to 30 s.</summary>
    public TimeSpan PeerCacheTtl { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Pods whose node is cached at most. Defaults to 10,000.</summary>
    public int MaxCachedPods { get; set; } = 10_000;

    /// <summary>Also forward calls made with a pod-bound service-account token of a pod on another node (the node is in the token). Defaults to true.</summary>
    public bool ForwardBoundTokenEvents { get; set; } = true;

    /// <summary>Throws <see cref="ArgumentException"/> with a clear message when the settings cannot work.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(NodeName)) throw new ArgumentException($"{nameof(NodeName)} is required.");
        if (string.IsNullOrWhiteSpace(AgentNamespace)) throw new ArgumentException($"{nameof(AgentNamespace)} is required.");
        if (string.IsNullOrWhiteSpace(AgentLabelSelector)) throw new ArgumentException($"{nameof(AgentLabelSelector)} is required: without it every pod of the namespace would be a peer.");
        if (string.IsNullOrEmpty(Token)) throw new ArgumentException($"{nameof(Token)} is required: peers reject forwarded events without it.");
        if (!ForwardedPath.StartsWith('/')) throw new ArgumentException($"{nameof(ForwardedPath)} must start with '/' (is '{ForwardedPath}').");
        if (PeerScheme is not ("http" or "https")) throw new ArgumentException($"{nameof(PeerScheme)} must be http or https (is '{PeerScheme}').");
        if (PeerPort is < 1 or > 65535) throw new ArgumentException($"{nameof(PeerPort)} must be 1-65535 (is {PeerPort}).");
        if (QueueCapacity < 1 || MaxEventsPerPost < 1 || MaxConcurrentPosts < 1 || MaxAttempts < 1 || MaxCachedPods < 1)
            throw new ArgumentException($"{nameof(QueueCapacity)}, {nameof(MaxEventsPerPost)}, {nameof(MaxConcurrentPosts)}, {nameof(MaxAttempts)} and {nameof(MaxCachedPods)} must be at least 1.");
        if (MaxBytesPerPost < 1024) throw new ArgumentException($"{nameof(MaxBytesPerPost)} must be at least 1 KiB.");
        if (InitialBackoff < TimeSpan.Zero || MaxBackoff < InitialBackoff || RequestTimeout <= TimeSpan.Zero || PodNodeCacheTtl < TimeSpan.Zero || PeerCacheTtl < TimeSpan.Zero)
            throw new ArgumentException("Backoffs and cache lifetimes must not be negative, MaxBackoff not below InitialBackoff, RequestTimeout positive.");
    }
}

/// <summary>Forwarder counters (monotonic; read with the properties).</summary>
public sealed class AuditForwardingCounters
{
    internal long _candidates, _local, _queued, _forwarded, _failed, _dropped, _unresolved, _retries, _posts;

    /// <summary>Events of the accepted batches that name a pod (or a bound-token node) this node does not have.</summary>
    public long Candidates => Volatile.Read(ref _candidates);

    /// <summary>Candidates whose pod turned out to be on this node (API server answer): not forwarded.</summary>
    public long Local => Volatile.Read(ref _local);

    /// <summary>Events taken into the forwarding queue.</summary>
    public long Queued => Volatile.Read(ref _queued);

    /// <summary>Events a peer acknowledged (2xx).</summary>
    public long Forwarded => Volatile.Read(ref _forwarded);

    /// <summary>Events given up: the peer stayed unreachable, had no agent, or refused them.</summary>
    public long Failed => Volatile.Read(ref _failed);

    /// <summary>Events dropped because the queue was full.</summary>
    public long Dropped => Volatile.Read(ref _dropped);

    /// <summary>Events whose pod the API server does not know (deleted) or could not be asked about: not forwarded.</summary>
    public long Unresolved => Volatile.Read(ref _unresolved);

    /// <summary>Delivery attempts after the first.</summary>
    public long Retries => Volatile.Read(ref _retries);

    /// <summary>POSTs acknowledged by peers.</summary>
    public long Posts => Volatile.Read(ref _posts);
}
