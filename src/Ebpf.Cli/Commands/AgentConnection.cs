using System.CommandLine;
using Ebpf.Api.ExecTrace;
using Ebpf.Api.Grpc;
using Ebpf.Api.V1;
using Ebpf.Kubernetes.Api;

namespace Ebpf.Cli.Commands;

/// <summary>The options every agent command takes: output format, where the agent is, how to trust it.</summary>
public sealed class AgentConnectionOptions
{
    public const string DefaultAddress = "127.0.0.1:50051";
    public const string AgentEnvironmentVariable = "EBPF_AGENT";

    public Option<string> Output { get; } = new("--output", "-o")
    {
        Description = "Output format: table, wide (more columns), json or yaml",
        DefaultValueFactory = _ => "table",
    };

    public Option<string?> Agent { get; } = new("--agent")
    {
        Description = $"Agent gRPC address: host:port or http(s)://host:port; sessions, findings, show, status and watch also take a comma-separated list and ask every agent in it. Defaults to ${AgentEnvironmentVariable}, then to the agent(s) found through the kubeconfig (kubectl port-forward), then {DefaultAddress}",
    };

    public Option<string> Timeout { get; } = new("--timeout")
    {
        Description = "Deadline of each request to the agent (not of watch), e.g. 10s, 1m",
        DefaultValueFactory = _ => "10s",
    };

    public Option<FileInfo?> CaFile { get; } = new("--ca-file") { Description = "PEM CA bundle the agent's TLS certificate must chain to (with an https:// address)" };

    public Option<bool> InsecureSkipTlsVerify { get; } = new("--insecure-skip-tls-verify") { Description = "Accept any agent certificate (test clusters only)" };

    public Option<FileInfo?> TokenFile { get; } = new("--token-file") { Description = "File with the bearer token the agent requires (grpc.token on the agent)" };

    public Option<string?> Kubeconfig { get; } = new("--kubeconfig") { Description = "kubeconfig used to find the agent in the cluster. Defaults to $KUBECONFIG, then ~/.kube/config" };

    public Option<string?> Context { get; } = new("--context") { Description = "kubeconfig context. Defaults to its current-context" };

    public Option<string?> Node { get; } = new("--node") { Description = "Talk to the agent on this node only (each agent stores only its own node's data). Without it (and without --pod), sessions, findings, show, status and watch ask every agent of the cluster" };

    public AgentConnectionOptions()
    {
        Output.AcceptOnlyFromAmong("table", "wide", "json", "yaml");
    }

    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { Output, Agent, Timeout, CaFile, InsecureSkipTlsVerify, TokenFile, Kubeconfig, Context, Node })
            command.Options.Add(option);
    }
}

/// <summary>Where the CLI reads its environment; tests replace it so the developer's own setup cannot leak in.</summary>
public sealed class CliEnvironment
{
    public Func<string, string?> Variable { get; init; } = Environment.GetEnvironmentVariable;
    public string HomeDirectory { get; init; } = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
    public string Kubectl { get; init; } = "kubectl";
    public TimeProvider Time { get; init; } = TimeProvider.System;

    public static CliEnvironment Process { get; } = new();

    /// <summary>--kubeconfig, else the first file of $KUBECONFIG, else ~/.kube/config; null when none exists.</summary>
    public string? KubeconfigPath(string? explicitPath)
    {
        if (!string.IsNullOrEmpty(explicitPath)) return explicitPath;
        var fromEnvironment = Variable("KUBECONFIG");
        if (!string.IsNullOrEmpty(fromEnvironment))
        {
            // kubectl merges the list; the first file that exists is where current-context usually lives.
            return fromEnvironment.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries).FirstOrDefault(File.Exists);
        }
        var home = Path.Combine(HomeDirectory, ".kube", "config");
        return File.Exists(home) ? home : null;
    }
}

/// <summary>How the CLI authenticates to and trusts every agent it asks (--token-file, --ca-file, --insecure-skip-tls-verify).</summary>
public sealed record AgentClientSettings(string? Token, string? CertificateAuthorityPath, bool InsecureSkipVerify)
{
    public static AgentClientSettings Read(ParseResult parse, AgentConnectionOptions options)
    {
        string? token = null;
        if (parse.GetValue(options.TokenFile) is { } tokenFile)
        {
            try { token = File.ReadAllText(tokenFile.FullName).Trim(); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new CliUsageException($"cannot read --token-file {tokenFile.FullName}: {e.Message}");
            }
        }
        var caFile = parse.GetValue(options.CaFile);
        if (caFile is not null && !caFile.Exists) throw new CliUsageException($"--ca-file {caFile.FullName} does not exist");
        return new AgentClientSettings(token, caFile?.FullName, parse.GetValue(options.InsecureSkipTlsVerify));
    }
}

/// <summary>
/// One agent to ask: an address (--agent, $EBPF_AGENT) or a discovered agent pod reached through kubectl
/// port-forward (with the kubeconfig and context that found it).
/// </summary>
public sealed record AgentEndpoint(string Text, Uri? Address, AgentPod? Pod, string? Kubeconfig = null, string? Context = null, string Kubectl = "kubectl")
{
    public static AgentEndpoint ForPod(AgentPod pod, string kubeconfig, string? context, string kubectl) =>
        new($"{pod.Namespace}/{pod.Name}", null, pod, kubeconfig, context, kubectl);

    /// <summary>How the agent reads in warnings: its node (and pod) when discovered, else the address as typed.</summary>
    public string Name => Pod is { } p ? $"node {p.Node} (pod {p.Namespace}/{p.Name})" : Text;
}

/// <summary>The agents a command asks, and the nodes whose agent is not running (their data cannot be in the answer).</summary>
public sealed record AgentPlan(IReadOnlyList<AgentEndpoint> Endpoints, IReadOnlyList<AgentPod> NotRunning);

/// <summary>A connected client plus whatever keeps the connection alive (a port-forward child).</summary>
public sealed class AgentConnection : IAsyncDisposable
{
    private readonly PortForward? _portForward;
    private string? _node;

    private AgentConnection(ExecTraceClient client, string address, PortForward? portForward, string? node)
    {
        Client = client;
        Address = address;
        _portForward = portForward;
        _node = node;
    }

    public ExecTraceClient Client { get; }

    /// <summary>How the address reads in messages (what the user typed, or the pod behind the port-forward).</summary>
    public string Address { get; }

    /// <summary>Parses "host:port" or "http(s)://host:port" into the URI the gRPC client wants.</summary>
    public static bool TryParseAddress(string text, out Uri address)
    {
        address = null!;
        text = text.Trim();
        if (!text.Contains("://", StringComparison.Ordinal)) text = "http://" + text;
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || string.IsNullOrEmpty(uri.Host)
            || uri.AbsolutePath is not ("/" or "") || !string.IsNullOrEmpty(uri.Query))
            return false;
        address = uri;
        return true;
    }

    /// <summary>
    /// Connects to the one agent of a single-agent command (pod): --agent, else $EBPF_AGENT, else (when a
    /// kubeconfig exists) the agent pod on the right node via kubectl port-forward, else 127.0.0.1:50051.
    /// <paramref name="targetPod"/> picks the node for pod-scoped commands.
    /// </summary>
    public static async Task<AgentConnection> OpenAsync(ParseResult parse, AgentConnectionOptions options, CliEnvironment environment,
        (string Namespace, string Pod)? targetPod, CancellationToken cancellationToken)
    {
        var settings = AgentClientSettings.Read(parse, options);
        var plan = await PlanAsync(parse, options, environment, targetPod, clusterWide: false, cancellationToken).ConfigureAwait(false);
        return await ConnectAsync(plan.Endpoints[0], settings, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The agents a command asks. --agent, else $EBPF_AGENT: one address, or (for a <paramref name="clusterWide"/>
    /// command) a comma-separated list. Else, with a kubeconfig: the agent on --node or on the target pod's node,
    /// and for a cluster-wide command without either, every running agent (one per node). Else 127.0.0.1:50051.
    /// </summary>
    public static async Task<AgentPlan> PlanAsync(ParseResult parse, AgentConnectionOptions options, CliEnvironment environment,
        (string Namespace, string Pod)? targetPod, bool clusterWide, CancellationToken cancellationToken)
    {
        string? text = parse.GetValue(options.Agent);
        if (string.IsNullOrWhiteSpace(text)) text = environment.Variable(AgentConnectionOptions.AgentEnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(text))
        {
            var parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Distinct(StringComparer.Ordinal).ToList();
            if (parts.Count > 1 && !clusterWide)
                throw new CliUsageException($"agent address '{text.Trim()}' is a list: this command talks to one agent, give one address");
            var endpoints = new List<AgentEndpoint>();
            foreach (var part in parts.Count == 1 ? [text.Trim()] : parts)
            {
                if (!TryParseAddress(part, out var address))
                    throw new CliUsageException($"agent address '{part}' is not host:port or http(s)://host:port");
                endpoints.Add(new AgentEndpoint(part, address, null));
            }
            if (endpoints.Count == 0)
                throw new CliUsageException($"agent address '{text.Trim()}' is not host:port or http(s)://host:port");
            return new AgentPlan(endpoints, []);
        }
        if (environment.KubeconfigPath(parse.GetValue(options.Kubeconfig)) is { } kubeconfig)
        {
            string? context = parse.GetValue(options.Context), node = parse.GetValue(options.Node);
            if (clusterWide && node is null && targetPod is null)
            {
                var targets = await DiscoverAllAsync(kubeconfig, context, cancellationToken).ConfigureAwait(false);
                return new AgentPlan(targets.Running.Select(p => AgentEndpoint.ForPod(p, kubeconfig, context, environment.Kubectl)).ToList(), targets.NotRunning);
            }
            var agent = await DiscoverAsync(kubeconfig, context, node, targetPod, cancellationToken).ConfigureAwait(false);
            return new AgentPlan([AgentEndpoint.ForPod(agent, kubeconfig, context, environment.Kubectl)], []);
        }
        TryParseAddress(AgentConnectionOptions.DefaultAddress, out var fallback);
        return new AgentPlan([new AgentEndpoint(AgentConnectionOptions.DefaultAddress, fallback, null)], []);
    }

    /// <summary>Opens a client to <paramref name="endpoint"/>, starting its kubectl port-forward first for an agent pod.</summary>
    public static async Task<AgentConnection> ConnectAsync(AgentEndpoint endpoint, AgentClientSettings settings, CancellationToken cancellationToken)
    {
        PortForward? portForward = null;
        Uri address;
        string display;
        if (endpoint.Pod is { } agent)
        {
            portForward = await PortForward.StartAsync(agent, endpoint.Kubeconfig, endpoint.Context, TimeSpan.FromSeconds(20),
                cancellationToken, endpoint.Kubectl).ConfigureAwait(false);
            address = new Uri($"http://127.0.0.1:{portForward.LocalPort}");
            display = $"pod {agent.Namespace}/{agent.Name} on node {agent.Node} (via kubectl port-forward 127.0.0.1:{portForward.LocalPort})";
        }
        else
        {
            address = endpoint.Address!;
            display = endpoint.Name;
        }
        var client = new ExecTraceClient(new GrpcClientOptions
        {
            Address = address,
            BearerToken = settings.Token,
            CertificateAuthorityPath = settings.CertificateAuthorityPath,
            InsecureSkipVerify = settings.InsecureSkipVerify,
        });
        return new AgentConnection(client, display, portForward, endpoint.Pod?.Node);
    }

    /// <summary>Every agent of the cluster (see <see cref="AgentDiscovery.FindAgentsAsync"/>).</summary>
    public static async Task<AgentTargets> DiscoverAllAsync(string kubeconfig, string? context, CancellationToken cancellationToken)
    {
        using var kube = OpenKube(kubeconfig, context);
        return await new AgentDiscovery(kube).FindAgentsAsync(null, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The node of the agent: known for a discovered pod, else asked once (GetStatus) of an agent reached by address.
    /// </summary>
    public async Task<string> NodeAsync(GrpcCallOptions call)
    {
        _node ??= (await Client.GetStatusAsync(new GetStatusRequest(), call).ConfigureAwait(false)).Node;
        return _node;
    }

    /// <summary>The agent pod for a command: on the target pod's node, on --node, or the cluster's only agent.</summary>
    public static async Task<AgentPod> DiscoverAsync(string kubeconfig, string? context, string? node, (string Namespace, string Pod)? targetPod,
        CancellationToken cancellationToken)
    {
        using var kube = OpenKube(kubeconfig, context);
        var discovery = new AgentDiscovery(kube);
        if (node is null && targetPod is { } target)
            node = await discovery.NodeOfPodAsync(target.Namespace, target.Pod, cancellationToken).ConfigureAwait(false);
        return await discovery.FindAgentAsync(node, cancellationToken).ConfigureAwait(false);
    }

    private static KubeApiClient OpenKube(string kubeconfig, string? context)
    {
        KubeClientConfig config;
        try { config = KubeClientConfig.FromKubeconfig(kubeconfig, context); }
        catch (KubeConfigException e) { throw new AgentDiscoveryException($"{e.Message} (or pass --agent)", e); }
        return new KubeApiClient(config, new KubeApiClientOptions { RequestTimeout = TimeSpan.FromSeconds(15) });
    }

    /// <summary>The namespace of the kubeconfig's context, for `pod` without -n; null without a kubeconfig or namespace.</summary>
    public static string? KubeconfigNamespace(ParseResult parse, AgentConnectionOptions options, CliEnvironment environment)
    {
        if (environment.KubeconfigPath(parse.GetValue(options.Kubeconfig)) is not { } path) return null;
        try { return KubeClientConfig.FromKubeconfig(path, parse.GetValue(options.Context)).Namespace; }
        catch (KubeConfigException) { return null; }
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        if (_portForward is not null) await _portForward.DisposeAsync().ConfigureAwait(false);
    }
}

/// <summary>A flag value that parsed but makes no sense (exit 2), found after System.CommandLine's own checks.</summary>
public sealed class CliUsageException(string message) : Exception(message);
