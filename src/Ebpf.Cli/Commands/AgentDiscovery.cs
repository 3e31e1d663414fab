using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Ebpf.Kubernetes.Api;

namespace Ebpf.Cli.Commands;

/// <summary>An agent pod found through the Kubernetes API.</summary>
public sealed record AgentPod(string Namespace, string Name, string Node);

/// <summary>Why the agent could not be found in the cluster; the message is shown as is.</summary>
public sealed class AgentDiscoveryException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The agents a cluster-wide command asks (one per node), and the nodes whose agent pod is not running.</summary>
public sealed record AgentTargets(IReadOnlyList<AgentPod> Running, IReadOnlyList<AgentPod> NotRunning);

/// <summary>
/// Finds the ebpf-agent that holds the data about a pod: the agent is a DaemonSet and each agent only sees its own
/// node, so the node of the target pod (or --node) picks the agent pod.
/// </summary>
public sealed class AgentDiscovery(KubeApiClient kube)
{
    public const string AgentNamespace = "ebpf-system";
    public const string AgentLabelSelector = "app.kubernetes.io/name=ebpf-agent";
    public const int AgentGrpcPort = 50051;

    /// <summary>The node a pod is scheduled on.</summary>
    public async Task<string> NodeOfPodAsync(string @namespace, string pod, CancellationToken cancellationToken)
    {
        JsonElement? found = await Call(() => kube.GetPodAsync(@namespace, pod, cancellationToken)).ConfigureAwait(false);
        if (found is not { } element)
            throw new AgentDiscoveryException($"pod {@namespace}/{pod} not found in the cluster at {kube.Server}");
        if (!element.TryGetProperty("spec", out var spec) || !spec.TryGetProperty("nodeName", out var node)
            || node.ValueKind != JsonValueKind.String || string.IsNullOrEmpty(node.GetString()))
            throw new AgentDiscoveryException($"pod {@namespace}/{pod} is not scheduled on a node yet");
        return node.GetString()!;
    }

    /// <summary>
    /// The running agent pod on <paramref name="node"/>; without a node, the only agent of the cluster (a cluster
    /// with several nodes needs --node or a pod to choose one).
    /// </summary>
    public async Task<AgentPod> FindAgentAsync(string? node, CancellationToken cancellationToken)
    {
        var running = await RunningAgentsAsync(node, cancellationToken).ConfigureAwait(false);
        if (running.Count > 1)
        {
            if (node is null)
                throw new AgentDiscoveryException($"{running.Count} ebpf-agent pods (nodes: {string.Join(", ", running.Select(a => a.Node).Order(StringComparer.Ordinal))}): each agent knows only its node; pick one with --node, or give --pod");
            // A rolling update can briefly run two; any of them serves the node's store.
        }
        return running.OrderBy(a => a.Name, StringComparer.Ordinal).First();
    }

    /// <summary>
    /// Every agent a cluster-wide command must ask: one running agent pod per node, ordered by node. Nodes whose
    /// agent pods exist but none runs are returned in <see cref="AgentTargets.NotRunning"/>, since their data is
    /// missing from the answer. With <paramref name="node"/>, just that node's agent (as <see cref="FindAgentAsync"/>).
    /// </summary>
    public async Task<AgentTargets> FindAgentsAsync(string? node, CancellationToken cancellationToken)
    {
        if (node is not null)
            return new AgentTargets([await FindAgentAsync(node, cancellationToken).ConfigureAwait(false)], []);
        var agents = await ListAgentsAsync(null, cancellationToken).ConfigureAwait(false);
        EnsureRunning(agents, null);
        // A rolling update can briefly run two on one node; both serve the node's store, so ask one (the first by name).
        var running = agents.Where(a => a.Running).Select(a => a.Pod)
            .GroupBy(a => a.Node, StringComparer.Ordinal)
            .Select(g => g.OrderBy(a => a.Name, StringComparer.Ordinal).First())
            .OrderBy(a => a.Node, StringComparer.Ordinal).ThenBy(a => a.Name, StringComparer.Ordinal)
            .ToList();
        var covered = running.Select(a => a.Node).ToHashSet(StringComparer.Ordinal);
        var notRunning = agents.Where(a => !a.Running && !covered.Contains(a.Pod.Node))
            .Select(a => a.Pod).OrderBy(a => a.Node, StringComparer.Ordinal).ThenBy(a => a.Name, StringComparer.Ordinal).ToList();
        return new AgentTargets(running, notRunning);
    }

    private async Task<List<AgentPod>> RunningAgentsAsync(string? node, CancellationToken cancellationToken)
    {
        var agents = await ListAgentsAsync(node, cancellationToken).ConfigureAwait(false);
        EnsureRunning(agents, node);
        return agents.Where(a => a.Running).Select(a => a.Pod).ToList();
    }

    private async Task<List<(AgentPod Pod, bool Running)>> ListAgentsAsync(string? node, CancellationToken cancellationToken)
    {
        var page = await Call(() => kube.ListPodsAsync(AgentNamespace, AgentLabelSelector,
            node is null ? null : "spec.nodeName=" + node, 500, null, cancellationToken)).ConfigureAwait(false);
        var agents = new List<(AgentPod Pod, bool Running)>();
        foreach (var item in page.Items)
        {
            string name = Text(item, "metadata", "name");
            string nodeName = Text(item, "spec", "nodeName");
            if (name.Length == 0) continue;
            agents.Add((new AgentPod(AgentNamespace, name, nodeName), Text(item, "status", "phase") == "Running"));
        }
        return agents;
    }

    private static void EnsureRunning(List<(AgentPod Pod, bool Running)> agents, string? node)
    {
        string where = node is null ? "in the cluster" : $"on node {node}";
        if (agents.Count == 0)
            throw new AgentDiscoveryException($"no ebpf-agent pod {where} (namespace {AgentNamespace}, label {AgentLabelSelector}). Is the DaemonSet deployed there?");
        if (!agents.Any(a => a.Running))
            throw new AgentDiscoveryException($"the ebpf-agent pod {where} ({string.Join(", ", agents.Select(a => a.Pod.Name))}) is not running");
    }

    private async Task<T> Call<T>(Func<Task<T>> call)
    {
        try
        {
            return await call().ConfigureAwait(false);
        }
        catch (KubeApiException e)
        {
            throw new AgentDiscoveryException($"Kubernetes API at {kube.Server}: {e.Message}", e);
        }
        catch (HttpRequestException e)
        {
            throw new AgentDiscoveryException($"cannot reach the Kubernetes API at {kube.Server}: {e.Message}", e);
        }
    }

    private static string Text(JsonElement element, string first, string second) =>
        element.TryGetProperty(first, out var a) && a.ValueKind == JsonValueKind.Object
        && a.TryGetProperty(second, out var b) && b.ValueKind == JsonValueKind.String ? b.GetString() ?? "" : "";
}

/// <summary>
/// `kubectl port-forward` to an agent pod as a child process. The API server's pod proxy speaks HTTP/1.1 and cannot
/// carry gRPC's HTTP/2 streams, but port-forward tunnels raw TCP (SPDY/WebSocket streams), so h2c works through it.
/// </summary>
public sealed partial class PortForward : IAsyncDisposable
{
    private readonly Process _process;

    private PortForward(Process process, int localPort)
    {
        _process = process;
        LocalPort = localPort;
    }

    public int LocalPort { get; }

    /// <summary>Starts kubectl and waits for its "Forwarding from 127.0.0.1:PORT -> 50051" line.</summary>
    public static async Task<PortForward> StartAsync(AgentPod agent, string? kubeconfig, string? context, TimeSpan timeout,
        CancellationToken cancellationToken, string kubectl = "kubectl")
    {
        var start = new ProcessStartInfo(kubectl)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (kubeconfig is not null) { start.ArgumentList.Add("--kubeconfig"); start.ArgumentList.Add(kubeconfig); }
        if (context is not null) { start.ArgumentList.Add("--context"); start.ArgumentList.Add(context); }
        foreach (var a in new[] { "port-forward", "-n", agent.Namespace, "pod/" + agent.Name, "--address", "127.0.0.1",
            ":" + AgentDiscovery.AgentGrpcPort.ToString(CultureInfo.InvariantCulture) })
            start.ArgumentList.Add(a);

        Process process;
        try
        {
            process = Process.Start(start) ?? throw new AgentDiscoveryException($"could not start {kubectl}");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new AgentDiscoveryException($"cannot run '{kubectl} port-forward' to reach agent pod {agent.Name} on node {agent.Node}: {e.Message}. Install kubectl or pass --agent", e);
        }

        var stderr = new System.Text.StringBuilder();
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.AppendLine(e.Data); };
        process.BeginErrorReadLine();
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        wait.CancelAfter(timeout);
        try
        {
            while (true)
            {
                string? line = await process.StandardOutput.ReadLineAsync(wait.Token).ConfigureAwait(false);
                if (line is null)
                {
                    await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
                    string err;
                    lock (stderr) err = LastError(stderr.ToString());
                    throw new AgentDiscoveryException($"kubectl port-forward to {agent.Namespace}/{agent.Name} exited ({process.ExitCode}): {err}");
                }
                if (TryParseForwardingLine(line, out int port))
                {
                    // Keep draining stdout ("Handling connection for ...") so kubectl never blocks on a full pipe.
                    _ = process.StandardOutput.BaseStream.CopyToAsync(Stream.Null, CancellationToken.None);
                    return new PortForward(process, port);
                }
            }
        }
        catch (OperationCanceledException e)
        {
            Kill(process);
            process.Dispose();
            if (cancellationToken.IsCancellationRequested) throw;
            throw new AgentDiscoveryException($"kubectl port-forward to {agent.Namespace}/{agent.Name} did not report a local port within {timeout.TotalSeconds:0}s", e);
        }
        catch
        {
            Kill(process);
            process.Dispose();
            throw;
        }
    }

    /// <summary>Parses kubectl's "Forwarding from 127.0.0.1:43817 -> 50051" (the IPv6 line "[::1]:…" is skipped).</summary>
    public static bool TryParseForwardingLine(string line, out int port)
    {
        var match = ForwardingLine().Match(line);
        port = match.Success && int.TryParse(match.Groups[1].ValueSpan, NumberStyles.None, CultureInfo.InvariantCulture, out int p) && p is > 0 and < 65536 ? p : 0;
        return port != 0;
    }

    [GeneratedRegex(@"^Forwarding from 127\.0\.0\.1:(\d+) -> \d+\s*$")]
    private static partial Regex ForwardingLine();

    /// <summary>
    /// kubectl's verdict from its stderr: client-go logs warnings (klog "E1122 ...") before the final
    /// "error: ..." / "Error from server ..." line, which is the one that explains the failure.
    /// </summary>
    public static string LastError(string stderr)
    {
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return lines.LastOrDefault(l => l.StartsWith("error", StringComparison.OrdinalIgnoreCase)) ?? lines.LastOrDefault() ?? "(no output)";
    }

    private static void Kill(Process process)
    {
        try
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException) { /* already gone */ }
    }

    public async ValueTask DisposeAsync()
    {
        Kill(_process);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try { await _process.WaitForExitAsync(timeout.Token).ConfigureAwait(false); }
        catch (OperationCanceledException) { /* killed; don't hang the CLI on exit */ }
        _process.Dispose();
    }
}
