using Ebpf.Cli.Commands;
using Ebpf.Kubernetes.Api;
using Ebpf.Testing.KubeApi;

namespace Ebpf.Cli.Tests.Commands;

/// <summary>
/// Finding the agent through the Kubernetes API (KubeApiTestServer speaks the real pod get/list protocol with
/// realistic pod objects). The port-forward tunnel itself needs a real cluster; only its failure path runs here.
/// </summary>
public sealed class AgentDiscoveryTests : IAsyncLifetime
{
    private KubeApiTestServer _server = null!;
    private readonly string _directory = Directory.CreateTempSubdirectory("exectrace-discovery-test-").FullName;
    private string _kubeconfig = "";

    public async Task InitializeAsync()
    {
        _server = await KubeApiTestServer.StartAsync();
        _kubeconfig = Path.Combine(_directory, "config");
        await File.WriteAllTextAsync(_kubeconfig, _server.Kubeconfig());
        _server.AddPod(KubePodTemplate.Create("shop", "web-0", "node-b"));
        _server.AddPod(KubePodTemplate.Create("shop", "pending-0", ""));
        _server.AddPod(KubePodTemplate.CreateAgent("node-a", "ebpf-agent-aaaaa"));
        _server.AddPod(KubePodTemplate.CreateAgent("node-b", "ebpf-agent-bbbbb"));
        _server.AddPod(KubePodTemplate.CreateAgent("node-c", "ebpf-agent-ccccc", phase: "Pending"));
        // Same label in another namespace: not ours.
        _server.AddPod(KubePodTemplate.CreateAgent("node-b", "impostor").Also(p => p["metadata"]!["namespace"] = "default"));
        // Right namespace and node, wrong label.
        _server.AddPod(KubePodTemplate.Create("ebpf-system", "other-daemon", "node-b", labels: new Dictionary<string, string> { ["app.kubernetes.io/name"] = "other" }));
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task DiscoverAsync_TargetPod_PicksTheAgentOnThePodsNode()
    {
        var agent = await AgentConnection.DiscoverAsync(_kubeconfig, null, null, ("shop", "web-0"), CancellationToken.None);

        Assert.Equal(new AgentPod("ebpf-system", "ebpf-agent-bbbbb", "node-b"), agent);
    }

    [Fact]
    public async Task DiscoverAsync_Node_PicksThatNodesAgent()
    {
        var agent = await AgentConnection.DiscoverAsync(_kubeconfig, null, "node-a", null, CancellationToken.None);

        Assert.Equal("ebpf-agent-aaaaa", agent.Name);
    }

    [Fact]
    public async Task DiscoverAsync_SeveralAgentsNoNode_AsksForNode()
    {
        var e = await Assert.ThrowsAsync<AgentDiscoveryException>(() => AgentConnection.DiscoverAsync(_kubeconfig, null, null, null, CancellationToken.None));

        Assert.Contains("2 ebpf-agent pods (nodes: node-a, node-b)", e.Message);
        Assert.Contains("--node", e.Message);
    }

    [Fact]
    public async Task DiscoverAsync_OneAgentInCluster_UsedWithoutNode()
    {
        _server.DeletePod("ebpf-system", "ebpf-agent-aaaaa");
        _server.DeletePod("ebpf-system", "ebpf-agent-ccccc");

        var agent = await AgentConnection.DiscoverAsync(_kubeconfig, null, null, null, CancellationToken.None);

        Assert.Equal("ebpf-agent-bbbbb", agent.Name);
    }

    [Theory]
    [InlineData("node-c", null, "is not running")]
    [InlineData("node-z", null, "no ebpf-agent pod on node node-z")]
    [InlineData(null, "missing-0", "pod shop/missing-0 not found")]
    [InlineData(null, "pending-0", "not scheduled on a node")]
    public async Task DiscoverAsync_NoUsableAgent_SaysWhy(string? node, string? pod, string expected)
    {
        var e = await Assert.ThrowsAsync<AgentDiscoveryException>(() =>
            AgentConnection.DiscoverAsync(_kubeconfig, null, node, pod is null ? null : ("shop", pod), CancellationToken.None));

        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public async Task DiscoverAsync_RejectedToken_ReportsApiError()
    {
        await File.WriteAllTextAsync(_kubeconfig, _server.Kubeconfig(token: "stale"));

        var e = await Assert.ThrowsAsync<AgentDiscoveryException>(() => AgentConnection.DiscoverAsync(_kubeconfig, null, "node-a", null, CancellationToken.None));

        Assert.Contains("401", e.Message);
        Assert.Equal(1, _server.UnauthorizedRequests);
    }

    [Fact]
    public async Task KubeApiClient_ListPodsByLabelAndNode_SendsBothSelectors()
    {
        using var kube = new KubeApiClient(KubeClientConfig.FromKubeconfig(_kubeconfig));

        var page = await kube.ListPodsAsync("ebpf-system", AgentDiscovery.AgentLabelSelector, "spec.nodeName=node-b", 100, null, CancellationToken.None);

        Assert.Equal(["ebpf-agent-bbbbb"], page.Items.Select(i => i.GetProperty("metadata").GetProperty("name").GetString()));
        Assert.Null(await kube.GetPodAsync("shop", "nope", CancellationToken.None));
        Assert.Equal("node-b", (await kube.GetPodAsync("shop", "web-0", CancellationToken.None))!.Value.GetProperty("spec").GetProperty("nodeName").GetString());
    }

    [KubectlFact]
    public async Task Cli_NoAgentFlagWithKubeconfig_DiscoversThenFailsAtPortForwardWithExit3()
    {
        // Real kubectl against the test API server: it finds the pod we chose, then cannot open the SPDY/WebSocket
        // port-forward stream (the test server has no portforward subresource), so the CLI reports kubectl's error.
        var output = new StringWriter();
        var error = new StringWriter();

        int exit = await CliRoot.RunAsync(["pod", "web-0", "-n", "shop", "--kubeconfig", _kubeconfig], output, error, AgentFixture.Environment());

        Assert.Equal(AgentExit.Unreachable, exit);
        Assert.Contains("kubectl port-forward to ebpf-system/ebpf-agent-bbbbb exited (1): Error from server (NotFound)", error.ToString());
        Assert.Single(error.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("Pass --agent or set $EBPF_AGENT", error.ToString());
        Assert.Equal("", output.ToString());
    }

    [Fact]
    public async Task Cli_WatchSeveralAgentsNoNode_FollowsEveryRunningAgentNamingEachNode()
    {
        // watch fans out like the cluster-wide commands, but holds every stream open at once: each agent is dialled
        // (kubectl cannot be started here, so each fails naming its node) and the pending agent's node is reported.
        var error = new StringWriter();
        var environment = new CliEnvironment
        {
            Variable = name => name == "KUBECONFIG" ? _kubeconfig : null,
            HomeDirectory = "/nonexistent-home",
            Kubectl = Path.Combine(_directory, "no-kubectl"),
        };

        int exit = await CliRoot.RunAsync(["watch"], new StringWriter(), error, environment);

        Assert.Equal(AgentExit.Unreachable, exit);
        var lines = error.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(4, lines.Length);
        Assert.Equal("warning: node node-c: the ebpf-agent pod ebpf-agent-ccccc is not running; that node's data is missing", lines[0]);
        // The two dials fail concurrently: either may be reported first.
        Assert.Contains(lines, l => l.StartsWith("warning: node node-a: cannot find the agent: cannot run '", StringComparison.Ordinal) && l.Contains("to reach agent pod ebpf-agent-aaaaa on node node-a", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("warning: node node-b: cannot find the agent: cannot run '", StringComparison.Ordinal));
        Assert.Equal("error: no agent could be watched", lines[3]);
    }

    [Fact]
    public async Task FindAgentsAsync_SeveralAgentsNoNode_OneRunningAgentPerNodeAndTheNodesWithout()
    {
        // A rolling update on node-a: the old pod still runs next to the new one.
        _server.AddPod(KubePodTemplate.CreateAgent("node-a", "ebpf-agent-a2222"));
        using var kube = new KubeApiClient(KubeClientConfig.FromKubeconfig(_kubeconfig));

        var targets = await new AgentDiscovery(kube).FindAgentsAsync(null, CancellationToken.None);

        Assert.Equal([new AgentPod("ebpf-system", "ebpf-agent-a2222", "node-a"), new AgentPod("ebpf-system", "ebpf-agent-bbbbb", "node-b")], targets.Running);
        Assert.Equal([new AgentPod("ebpf-system", "ebpf-agent-ccccc", "node-c")], targets.NotRunning);

        var one = await new AgentDiscovery(kube).FindAgentsAsync("node-b", CancellationToken.None);
        Assert.Equal(["ebpf-agent-bbbbb"], one.Running.Select(a => a.Name));
        Assert.Empty(one.NotRunning);
    }

    [Fact]
    public async Task FindAgentsAsync_NoRunningAgent_SaysWhy()
    {
        _server.DeletePod("ebpf-system", "ebpf-agent-aaaaa");
        _server.DeletePod("ebpf-system", "ebpf-agent-bbbbb");
        using var kube = new KubeApiClient(KubeClientConfig.FromKubeconfig(_kubeconfig));

        var e = await Assert.ThrowsAsync<AgentDiscoveryException>(() => new AgentDiscovery(kube).FindAgentsAsync(null, CancellationToken.None));

        Assert.Contains("the ebpf-agent pod in the cluster (ebpf-agent-ccccc) is not running", e.Message);
    }

    [Theory]
    [InlineData("sessions")]
    [InlineData("findings")]
    [InlineData("show", "7f3a9c02")]
    [InlineData("status")]
    public async Task Cli_ClusterWideCommandSeveralAgents_AsksEveryRunningAgentNamingEachNode(params string[] args)
    {
        // Every running agent is dialled (one port-forward each); here kubectl cannot be started, so each fails
        // with a reason naming its node, and the pending agent's node is reported as missing.
        var error = new StringWriter();
        var environment = new CliEnvironment
        {
            Variable = name => name == "KUBECONFIG" ? _kubeconfig : null,
            HomeDirectory = "/nonexistent-home",
            Kubectl = Path.Combine(_directory, "no-kubectl"),
        };

        int exit = await CliRoot.RunAsync(args, new StringWriter(), error, environment);

        Assert.Equal(AgentExit.Unreachable, exit);
        var lines = error.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, lines.Length);
        Assert.StartsWith("error: node node-a: cannot find the agent: cannot run '", lines[0]);
        Assert.Contains("to reach agent pod ebpf-agent-aaaaa on node node-a", lines[0]);
        Assert.StartsWith("error: node node-b: cannot find the agent: cannot run '", lines[1]);
        Assert.Equal("warning: node node-c: the ebpf-agent pod ebpf-agent-ccccc is not running; that node's data is missing", lines[2]);
    }

    [Fact]
    public async Task Cli_PodWithoutNamespace_UsesKubeconfigContextNamespace()
    {
        await File.WriteAllTextAsync(_kubeconfig, _server.Kubeconfig().Replace("namespace: default", "namespace: shop", StringComparison.Ordinal));
        var error = new StringWriter();

        // No -n: discovery looks the pod up in the context's namespace, as kubectl would.
        int exit = await CliRoot.RunAsync(["pod", "missing-0", "--kubeconfig", _kubeconfig], new StringWriter(), error, AgentFixture.Environment());

        Assert.Equal(AgentExit.Unreachable, exit);
        Assert.Contains("pod shop/missing-0 not found", error.ToString());
    }

    [Fact]
    public void LastError_KlogNoiseThenVerdict_KeepsTheVerdict()
    {
        const string stderr = "E1122 11:11:36.989431   27875 memcache.go:265] \"Unhandled Error\" err=\"couldn't get current server API group list\"\n"
            + "Error from server (NotFound): pods \"x\" not found\n";
        Assert.Equal("Error from server (NotFound): pods \"x\" not found", PortForward.LastError(stderr));
        Assert.Equal("(no output)", PortForward.LastError(""));
        Assert.Equal("unable to listen", PortForward.LastError("W1 something\nunable to listen\n"));
    }

    [Fact]
    public async Task Cli_SessionsWithPodButNoNamespace_LooksThePodUpInContextNamespace()
    {
        await File.WriteAllTextAsync(_kubeconfig, _server.Kubeconfig().Replace("namespace: default", "namespace: kube-system", StringComparison.Ordinal));
        var error = new StringWriter();

        int exit = await CliRoot.RunAsync(["sessions", "--pod", "web-0", "--kubeconfig", _kubeconfig], new StringWriter(), error, AgentFixture.Environment());

        Assert.Equal(AgentExit.Unreachable, exit);
        Assert.Contains("pod kube-system/web-0 not found", error.ToString());
    }

    [Theory]
    [InlineData("Forwarding from 127.0.0.1:43817 -> 50051", 43817)]
    [InlineData("Forwarding from 127.0.0.1:1 -> 50051\r", 1)]
    [InlineData("Forwarding from [::1]:43817 -> 50051", 0)]
    [InlineData("Handling connection for 43817", 0)]
    [InlineData("Forwarding from 127.0.0.1:99999 -> 50051", 0)]
    [InlineData("", 0)]
    public void TryParseForwardingLine_KubectlOutput_LocalPortOfTheIpv4Line(string line, int expected)
    {
        Assert.Equal(expected != 0, PortForward.TryParseForwardingLine(line, out int port));
        Assert.Equal(expected, port);
    }

}

/// <summary>Needs the real kubectl binary on PATH; skipped without it, except when CI=true.</summary>
public sealed class KubectlFactAttribute : FactAttribute
{
    public KubectlFactAttribute()
    {
        bool onPath = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Any(d => File.Exists(Path.Combine(d, "kubectl")));
        if (!onPath && Environment.GetEnvironmentVariable("CI") != "true")
            Skip = "kubectl is not on PATH (CI=true makes this a failure)";
    }
}

internal static class JsonObjectExtensions
{
    public static System.Text.Json.Nodes.JsonObject Also(this System.Text.Json.Nodes.JsonObject o, Action<System.Text.Json.Nodes.JsonObject> change)
    {
        change(o);
        return o;
    }
}
