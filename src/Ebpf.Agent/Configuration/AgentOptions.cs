using System.Net;

namespace Ebpf.Agent.Configuration;

/// <summary>
/// Everything the agent is configured with. Sources, later ones winning: built-in defaults, the config file
/// (--config, YAML or JSON), environment variables (EBPF_ prefix, '__' for nesting, e.g. EBPF_Grpc__Listen),
/// then command-line flags. Validated at start-up by <see cref="AgentOptionsValidator"/>.
/// </summary>
public sealed class AgentOptions
{
    /// <summary>Name of this node. Defaults to $NODE_NAME (set from the downward API in the DaemonSet), else the host name.</summary>
    public string NodeName { get; set; } = "";

    /// <summary>Where the store, audit-log checkpoints and other state live. Defaults to /var/lib/ebpf-agent.</summary>
    public string DataDirectory { get; set; } = "/var/lib/ebpf-agent";

    /// <summary>
    /// Run without a Kubernetes API server: identity comes from cgroup paths only (pod UID, container id), no names
    /// or labels. Defaults to false; the agent also falls back to standalone when it finds neither in-cluster
    /// configuration nor <see cref="Kubeconfig"/>.
    /// </summary>
    public bool Standalone { get; set; }

    /// <summary>Path of a kubeconfig to reach the API server with. Defaults to none: in-cluster configuration.</summary>
    public string? Kubeconfig { get; set; }

    /// <summary>
    /// Standalone with known pods: a pod list as `kubectl get pods -o json` prints it, used instead of a pod watch
    /// (implies <see cref="Standalone"/>). Defaults to none.
    /// </summary>
    public string? PodsFile { get; set; }

    public GrpcOptions Grpc { get; set; } = new();
    public HttpEndpointOptions Health { get; set; } = new() { Listen = "127.0.0.1:9090" };
    public WebhookOptions Webhook { get; set; } = new();
    public CaptureConfig Capture { get; set; } = new();
    public AuditLogOptions AuditLog { get; set; } = new();
    public AuditOptions Audit { get; set; } = new();
    public RetentionOptions Retention { get; set; } = new();
    public CorrelationConfig Correlation { get; set; } = new();
}

/// <summary>An address to listen on: "host:port", "[v6]:port" or "*:port" for all interfaces.</summary>
public class HttpEndpointOptions
{
    /// <summary>Listen address; empty disables the endpoint.</summary>
    public string Listen { get; set; } = "";
}

public sealed class GrpcOptions : HttpEndpointOptions
{
    public GrpcOptions() => Listen = "127.0.0.1:50051";

    /// <summary>PEM certificate for TLS. Defaults to none: h2c (plain HTTP/2), meant for loopback.</summary>
    public string? CertificatePath { get; set; }
    public string? KeyPath { get; set; }
    /// <summary>CA bundle that client certificates must chain to. Defaults to none: no client certificates asked.</summary>
    public string? ClientCaPath { get; set; }
    /// <summary>File holding a bearer token clients must present. Defaults to none.</summary>
    public string? BearerTokenFile { get; set; }
    /// <summary>Records queued per subscriber before the oldest are dropped. Defaults to 65536.</summary>
    public int SubscriberQueueCapacity { get; set; } = 65536;
}

public sealed class WebhookOptions : HttpEndpointOptions
{
    public WebhookOptions() => Listen = "127.0.0.1:8443";

    /// <summary>URL path the API server posts EventLists to. Defaults to /audit/webhook.</summary>
    public string Path { get; set; } = "/audit/webhook";
    /// <summary>PEM certificate for TLS. Defaults to none: plain HTTP, only sensible on loopback.</summary>
    public string? CertificatePath { get; set; }
    public string? KeyPath { get; set; }
    /// <summary>CA bundle the API server's client certificate must chain to. Defaults to none.</summary>
    public string? ClientCaPath { get; set; }
    /// <summary>File holding the bearer token the API server presents (webhook kubeconfig user.token). Defaults to none.</summary>
    public string? BearerTokenFile { get; set; }
    /// <summary>Largest accepted request body. Defaults to 64 MiB (400 events of a few KiB each, with room).</summary>
    public long MaxBodyBytes { get; set; } = 64L * 1024 * 1024;
}

public sealed class CaptureConfig
{
    /// <summary>Load the BPF programs. Defaults to true; false runs the agent as an audit-only receiver.</summary>
    public bool Enabled { get; set; } = true;
    /// <summary>Which tasks the kernel side reports: containers (kubepods cgroups), nonroot, or all. Defaults to containers.</summary>
    public string Filter { get; set; } = "containers";
    /// <summary>Ring buffer size in bytes, a power of two. Defaults to 8 MiB.</summary>
    public int RingBufferBytes { get; set; } = 8 * 1024 * 1024;
    /// <summary>How long the reader waits before draining without a wake-up (bounds latency). Defaults to 100 ms.</summary>
    public int PollTimeoutMs { get; set; } = 100;
    /// <summary>Pending bytes in the ring buffer that force a wake-up. Defaults to 256 KiB.</summary>
    public int WakeupThresholdBytes { get; set; } = 256 * 1024;
    /// <summary>Report failed opens too. Defaults to true.</summary>
    public bool FailedOpens { get; set; } = true;
    /// <summary>Only report opens of paths under these prefixes. Defaults to none: every path.</summary>
    public List<string> FilePrefixes { get; set; } = [];
}

public sealed class AuditLogOptions
{
    /// <summary>JSON-lines audit logs to follow (kube-apiserver --audit-log-path). Defaults to none.</summary>
    public List<string> Paths { get; set; } = [];
}

public sealed class AuditOptions
{
    /// <summary>Forwarding of audit events to the agent on the pod's node (see deploy/audit/README.md).</summary>
    public AuditForwardingConfig Forwarding { get; set; } = new();
}

/// <summary>
/// The API server posts each webhook batch to one agent; an exec is joined only by the agent of the pod's node. With
/// forwarding, the receiving agent sends the events of pods on other nodes to their agents.
/// </summary>
public sealed class AuditForwardingConfig
{
    /// <summary>
    /// Forward audit events of other nodes' pods to their agents. Defaults to unset: on when the agent runs in a pod
    /// (in-cluster API access) and <see cref="TokenFile"/> exists, off otherwise (standalone, kubeconfig, no token).
    /// </summary>
    public bool? Enabled { get; set; }

    /// <summary>
    /// File holding the bearer token shared by all agents (Secret ebpf-agent-forwarding-token): presented to peers and
    /// required on this agent's forwarded-events endpoint. Defaults to none.
    /// </summary>
    public string? TokenFile { get; set; }

    /// <summary>Namespace of the agent pods. Defaults to $POD_NAMESPACE (downward API), else the service account's namespace file, else the kubeconfig context's namespace.</summary>
    public string? Namespace { get; set; }

    /// <summary>Label selector of the agent pods. Defaults to app.kubernetes.io/name=ebpf-agent (the DaemonSet's pod label).</summary>
    public string AgentLabelSelector { get; set; } = "app.kubernetes.io/name=ebpf-agent";

    /// <summary>Path, on the webhook listener, where peers post forwarded events. Defaults to /audit/forwarded.</summary>
    public string Path { get; set; } = "/audit/forwarded";

    /// <summary>Peer port when the agent pod has no container port named "webhook". Defaults to the port of webhook.listen.</summary>
    public int? PeerPort { get; set; }

    /// <summary>
    /// CA bundle the peers' webhook certificate must chain to (when the webhook serves TLS). Defaults to none: a peer
    /// must present exactly this agent's own webhook certificate (every agent mounts the same Secret).
    /// </summary>
    public string? PeerCaPath { get; set; }

    /// <summary>With <see cref="PeerCaPath"/>: the DNS name the peer certificate must carry. Defaults to ebpf-agent-webhook.&lt;namespace&gt;.svc.</summary>
    public string? PeerServerName { get; set; }

    /// <summary>Events waiting to be forwarded before further ones are dropped and counted. Defaults to 4096.</summary>
    public int QueueCapacity { get; set; } = 4096;

    /// <summary>Delivery attempts per batch (exponential backoff from 0.5 s, at most 8 s apart) before it is dropped and counted. Defaults to 5.</summary>
    public int MaxAttempts { get; set; } = 5;
}

public sealed class RetentionOptions
{
    /// <summary>Records older than this are deleted. Defaults to 7 days.</summary>
    public TimeSpan MaxAge { get; set; } = TimeSpan.FromDays(7);
    /// <summary>The store is trimmed, oldest first, above this size. Defaults to 1 GiB.</summary>
    public long MaxBytes { get; set; } = 1L << 30;
}

public sealed class CorrelationConfig
{
    /// <summary>Allowed clock difference between the API server and this node. Defaults to 2 s.</summary>
    public TimeSpan ClockSkew { get; set; } = TimeSpan.FromSeconds(2);
    /// <summary>How long after an exec starts its audit event may still arrive. Defaults to 60 s.</summary>
    public TimeSpan AuditWaitWindow { get; set; } = TimeSpan.FromSeconds(60);
    /// <summary>
    /// "ip:port" endpoints of the API server as pods reach it (the kubernetes Service's ClusterIP:443, or the server
    /// address itself); pods connecting there are candidates for their service-account token's API calls. Defaults to
    /// empty: derived from the API server URL the pod watch uses and, in a pod, KUBERNETES_SERVICE_HOST/PORT
    /// (see <see cref="ApiServerEndpointList"/>).
    /// </summary>
    public List<string> ApiServerEndpoints { get; set; } = [];
}

/// <summary>Parses "host:port" listen addresses; "*" and "0.0.0.0" mean all interfaces.</summary>
public static class ListenAddress
{
    public static bool TryParse(string text, out IPEndPoint? endpoint, out string? error)
    {
        endpoint = null;
        error = null;
        if (!HostPortText.TrySplit(text, out var parts))
        {
            error = $"'{text}' is not host:port";
            return false;
        }
        // Stray brackets ("[::1:80", "[[::1]]:80") have always been trimmed here rather than rejected, so listen
        // addresses that start today keep starting.
        string host = parts.Host.Trim('[', ']');
        if (!ushort.TryParse(parts.Port, out ushort port))
        {
            error = $"'{text}': port must be 0-65535";
            return false;
        }
        IPAddress? address = host switch
        {
            "*" or "0.0.0.0" => IPAddress.Any,
            "::" => IPAddress.IPv6Any,
            "localhost" => IPAddress.Loopback,
            _ => IPAddress.TryParse(host, out var parsed) ? parsed : null,
        };
        if (address is null)
        {
            error = $"'{text}': host must be an IP address, localhost or *";
            return false;
        }
        endpoint = new IPEndPoint(address, port);
        return true;
    }
}
