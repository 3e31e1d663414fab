using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;
using Ebpf.Core.Audit;
using Ebpf.Kubernetes.Api;
using Ebpf.Kubernetes.Audit;
using Ebpf.Testing.KubeApi;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Ebpf.Kubernetes.Tests.Audit;

/// <summary>
/// Agents on "nodes" A, B and C as the host wires them: real Kestrel listeners with the webhook (offering committed
/// batches to the forwarder) and the forwarded-events endpoint (not offering them), a real forwarder, and the
/// Kubernetes API test server listing the workload pods and the agent pods (podIP 127.0.0.1, each agent's webhook
/// port as the container port named "webhook").
/// </summary>
public sealed class AuditEventForwarderTests : IAsyncLifetime
{
    private const string ForwardToken = "fwd-6f1d2c9e-shared-token";
    private const string ApiServerToken = "apiserver-webhook-token";
    private const string AgentNamespace = "ebpf-test";
    private const string Shop = "shop";
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(15);

    private readonly List<IAsyncDisposable> _disposables = [];
    private KubeApiTestServer _kube = null!;

    public async Task InitializeAsync()
    {
        _kube = await KubeApiTestServer.StartAsync();
        _kube.AddPod(KubePodTemplate.Create(Shop, "web-a", "node-a"));
        _kube.AddPod(KubePodTemplate.Create(Shop, "web-b", "node-b"));
        _kube.AddPod(KubePodTemplate.Create(Shop, "web-c", "node-c"));
    }

    public async Task DisposeAsync()
    {
        foreach (var d in Enumerable.Reverse(_disposables)) await d.DisposeAsync();
        await _kube.DisposeAsync();
    }

    [Fact]
    public async Task Webhook_ExecIntoPodOnOtherNode_PostedWithTokenToThatNodesAgentOnly()
    {
        var a = await StartAgentAsync("node-a");
        var b = await StartAgentAsync("node-b");
        var c = await StartAgentAsync("node-c");
        string auditId = Guid.NewGuid().ToString();

        using var response = await PostAsync(a.WebhookUri, EventList(ExecEvent("web-b", auditId)), ApiServerToken);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await EventuallyAsync(() => b.Sink.Stored.Any(e => e.AuditId == auditId), "node-b's agent stores the forwarded exec");
        Assert.Contains(a.Sink.Stored, e => e.AuditId == auditId); // still stored where it arrived
        Assert.Empty(c.Sink.Stored);
        Assert.Equal(1, a.Forwarder.Counters.Forwarded);
        Assert.Equal(1, b.Forwarded.Counters.Appended);
        Assert.Equal(0, b.Forwarded.Counters.Unauthorized);
        // Byte for byte what the API server sent: the peer derives the same exec request.
        var forwarded = b.Sink.Stored.Single(e => e.AuditId == auditId);
        Assert.Equal(AuditStreamingKind.Exec, forwarded.Derived.Streaming!.Kind);
        Assert.Equal(["sh", "-c", "id"], forwarded.Derived.Streaming.Command);
        Assert.Equal("alice@example.com", forwarded.Derived.AttributedUser!.Username);
        Assert.Equal(0, b.Forwarder.Counters.Candidates);
    }

    [Fact]
    public async Task Webhook_LocalPodExecAndNonStreamingEvent_NotForwarded()
    {
        var a = await StartAgentAsync("node-a", localPods: [(Shop, "web-a")]);
        var b = await StartAgentAsync("node-b");
        string local = Guid.NewGuid().ToString(), list = Guid.NewGuid().ToString(), remote = Guid.NewGuid().ToString();

        // One batch, in this order: the remote exec arriving at B proves the two before it were passed over.
        using var response = await PostAsync(a.WebhookUri, EventList(ExecEvent("web-a", local), GetPodsEvent(list), ExecEvent("web-b", remote)), ApiServerToken);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await EventuallyAsync(() => b.Sink.Stored.Any(e => e.AuditId == remote), "the remote exec reaches node-b");
        Assert.Equal([remote], b.Sink.Stored.Select(e => e.AuditId));
        Assert.Equal(1, a.Forwarder.Counters.Candidates);
        Assert.Equal(3, a.Sink.Stored.Count);
    }

    [Fact]
    public async Task ForwardedPath_EventForPodOfThirdNode_StoredButNeverForwardedAgain()
    {
        var b = await StartAgentAsync("node-b");
        var c = await StartAgentAsync("node-c");
        string auditId = Guid.NewGuid().ToString();

        using var response = await PostAsync(b.ForwardedUri, EventList(ExecEvent("web-c", auditId)), ForwardToken);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains(b.Sink.Stored, e => e.AuditId == auditId);
        Assert.Equal(0, b.Forwarder.Counters.Candidates);
        // The same event through B's webhook would go to C: that path proves C is reachable, and the forwarded one did not go.
        string viaWebhook = Guid.NewGuid().ToString();
        using var second = await PostAsync(b.WebhookUri, EventList(ExecEvent("web-c", viaWebhook)), ApiServerToken);
        await EventuallyAsync(() => c.Sink.Stored.Any(e => e.AuditId == viaWebhook), "the webhook's event reaches node-c");
        Assert.DoesNotContain(c.Sink.Stored, e => e.AuditId == auditId);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("wrong-token")]
    [InlineData(ApiServerToken)]
    public async Task ForwardedPath_MissingOrWrongToken_401AndNothingStored(string? token)
    {
        var b = await StartAgentAsync("node-b");

        using var response = await PostAsync(b.ForwardedUri, EventList(ExecEvent("web-b", Guid.NewGuid().ToString())), token);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Empty(b.Sink.Stored);
        Assert.Equal(1, b.Forwarded.Counters.Unauthorized);
    }

    [Theory]
    [InlineData("not json at all", "application/json", HttpStatusCode.BadRequest)]
    [InlineData("[1,2,3]", "application/json", HttpStatusCode.BadRequest)]
    [InlineData("""{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":{"x":1}}""", "application/json", HttpStatusCode.BadRequest)]
    [InlineData("""{"kind":"EventList","items":[""", "application/json", HttpStatusCode.BadRequest)]
    [InlineData("""{"kind":"EventList","items":[]}""", "text/plain", HttpStatusCode.UnsupportedMediaType)]
    public async Task ForwardedPath_HostileBody_RejectedLikeWebhookAndNothingStored(string body, string contentType, HttpStatusCode expected)
    {
        var b = await StartAgentAsync("node-b");

        using var response = await PostAsync(b.ForwardedUri, body, ForwardToken, contentType);

        Assert.Equal(expected, response.StatusCode);
        Assert.Empty(b.Sink.Stored);
        // The endpoint keeps working after the hostile body.
        using var good = await PostAsync(b.ForwardedUri, EventList(ExecEvent("web-b", Guid.NewGuid().ToString())), ForwardToken);
        Assert.Equal(HttpStatusCode.OK, good.StatusCode);
    }

    [Fact]
    public async Task ForwardedPath_OversizedBody_413AndNothingStored()
    {
        var b = await StartAgentAsync("node-b", forwardedMaxBodyBytes: 64 * 1024);
        var items = Enumerable.Range(0, 200).Select(_ => ExecEvent("web-b", Guid.NewGuid().ToString())).ToArray();

        using var response = await PostAsync(b.ForwardedUri, EventList(items), ForwardToken);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Empty(b.Sink.Stored);
    }

    [Fact]
    public async Task PeerDown_RetriedThenDroppedAndCounted_WebhookStill200()
    {
        var a = await StartAgentAsync("node-a", o =>
        {
            o.MaxAttempts = 3;
            o.InitialBackoff = TimeSpan.FromMilliseconds(20);
            o.MaxBackoff = TimeSpan.FromMilliseconds(50);
        });
        _kube.AddPod(KubePodTemplate.CreateAgent("node-b", "127.0.0.1", ClosedPort(), AgentNamespace, "agent-b-gone"));

        using var response = await PostAsync(a.WebhookUri, EventList(ExecEvent("web-b", Guid.NewGuid().ToString())), ApiServerToken);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await EventuallyAsync(() => a.Forwarder.Counters.Failed == 1, "the event is given up after its attempts");
        Assert.Equal(2, a.Forwarder.Counters.Retries);
        Assert.Equal(0, a.Forwarder.Counters.Forwarded);
        Assert.Single(a.Sink.Stored);
    }

    [Fact]
    public async Task PeerReplaced_DeliveryFailsAtOldAddress_RelistsAgentsAndDeliversToNewOne()
    {
        var a = await StartAgentAsync("node-a", o =>
        {
            o.MaxAttempts = 50;
            o.InitialBackoff = TimeSpan.FromMilliseconds(20);
            o.MaxBackoff = TimeSpan.FromMilliseconds(100);
        });
        var b = await StartAgentAsync("node-b", register: false);
        var agentPod = KubePodTemplate.CreateAgent("node-b", "127.0.0.1", ClosedPort(), AgentNamespace, "agent-b");
        _kube.AddPod(agentPod);
        string auditId = Guid.NewGuid().ToString();

        using var response = await PostAsync(a.WebhookUri, EventList(ExecEvent("web-b", auditId)), ApiServerToken);
        await EventuallyAsync(() => a.Forwarder.Counters.Retries >= 2, "attempts at the dead address");
        // The DaemonSet replaced the agent: same node, new address.
        _kube.ModifyPod(KubePodTemplate.CreateAgent("node-b", "127.0.0.1", b.Port, AgentNamespace, "agent-b"));

        await EventuallyAsync(() => b.Sink.Stored.Any(e => e.AuditId == auditId), "the event reaches the new agent");
        Assert.Equal(1, a.Forwarder.Counters.Forwarded);
        Assert.Equal(0, a.Forwarder.Counters.Failed);
    }

    [Fact]
    public async Task Offer_QueueFull_DropsAndCountsWithoutBlocking()
    {
        var a = await StartAgentAsync("node-a", o => o.QueueCapacity = 2, runForwarder: false);

        using var response = await PostAsync(a.WebhookUri, EventList(Enumerable.Range(0, 5).Select(_ => ExecEvent("web-b", Guid.NewGuid().ToString())).ToArray()), ApiServerToken);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(5, a.Sink.Stored.Count);
        Assert.Equal(5, a.Forwarder.Counters.Candidates);
        Assert.Equal(2, a.Forwarder.Counters.Queued);
        Assert.Equal(3, a.Forwarder.Counters.Dropped);
    }

    [Fact]
    public async Task Webhook_BoundTokenCallFromPodOnOtherNode_ForwardedToTheTokensNode()
    {
        var a = await StartAgentAsync("node-a");
        var b = await StartAgentAsync("node-b");
        string fromB = Guid.NewGuid().ToString(), fromA = Guid.NewGuid().ToString();

        using var response = await PostAsync(a.WebhookUri, EventList(BoundTokenEvent("node-a", fromA), BoundTokenEvent("node-b", fromB)), ApiServerToken);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await EventuallyAsync(() => b.Sink.Stored.Any(e => e.AuditId == fromB), "the bound-token call reaches node-b");
        Assert.DoesNotContain(b.Sink.Stored, e => e.AuditId == fromA);
        Assert.Equal(1, a.Forwarder.Counters.Candidates);
    }

    [Fact]
    public async Task Webhook_ExecIntoPodTheApiServerDoesNotKnow_NotForwardedCountedUnresolved()
    {
        var a = await StartAgentAsync("node-a");

        using var response = await PostAsync(a.WebhookUri, EventList(ExecEvent("deleted-pod", Guid.NewGuid().ToString())), ApiServerToken);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await EventuallyAsync(() => a.Forwarder.Counters.Unresolved == 1, "the unknown pod is counted");
        Assert.Equal(0, a.Forwarder.Counters.Forwarded);
        Assert.Equal(0, a.Forwarder.Counters.Failed);
    }

    [Fact]
    public async Task Webhook_PodMovedToThisNodeSinceTheWatch_CountedLocalNotForwarded()
    {
        // The local watch has not caught up yet, but the API server already says node-a.
        var a = await StartAgentAsync("node-a");
        _kube.AddPod(KubePodTemplate.Create(Shop, "web-new", "node-a"));

        using var response = await PostAsync(a.WebhookUri, EventList(ExecEvent("web-new", Guid.NewGuid().ToString())), ApiServerToken);

        await EventuallyAsync(() => a.Forwarder.Counters.Local == 1, "the pod is found on this node");
        Assert.Equal(0, a.Forwarder.Counters.Forwarded);
    }

    [Fact]
    public async Task AuditLogTailer_ExecLineForPodOnOtherNode_ForwardedThroughForwardingSink()
    {
        // The log backend on a control-plane node: its agent tails every node's events, like the webhook receives them.
        var a = await StartAgentAsync("node-a");
        var b = await StartAgentAsync("node-b");
        var dir = Directory.CreateTempSubdirectory("ebpf-forward-log-").FullName;
        try
        {
            string log = Path.Combine(dir, "audit.log"), auditId = Guid.NewGuid().ToString();
            await File.WriteAllTextAsync(log, GetPodsEvent(Guid.NewGuid().ToString()).ToJsonString() + "\n" + ExecEvent("web-b", auditId).ToJsonString() + "\n");
            var tailer = new AuditLogTailer(new AuditLogTailerOptions { Path = log, CheckpointPath = Path.Combine(dir, "checkpoint"), PollInterval = TimeSpan.FromMilliseconds(50) },
                new ForwardingAuditSink(a.Sink, a.Forwarder.Offer));
            using var stop = new CancellationTokenSource();
            var run = tailer.RunAsync(stop.Token);

            await EventuallyAsync(() => b.Sink.Stored.Any(e => e.AuditId == auditId), "the tailed exec reaches node-b");
            await stop.CancelAsync();
            await run;
            Assert.Equal(2, a.Sink.Stored.Count);
            Assert.Single(b.Sink.Stored);
            Assert.Equal(1, a.Forwarder.Counters.Candidates);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    public enum PeerTrust { PinnedOwnCertificate, CaAndServiceName, PinnedOtherCertificate, CaButOtherName, OtherCa }

    [Theory]
    [InlineData(PeerTrust.PinnedOwnCertificate, true)]
    [InlineData(PeerTrust.CaAndServiceName, true)]
    [InlineData(PeerTrust.PinnedOtherCertificate, false)]
    [InlineData(PeerTrust.CaButOtherName, false)]
    [InlineData(PeerTrust.OtherCa, false)]
    public async Task Https_PeerCertificate_DeliveredOnlyWhenTrusted(PeerTrust trust, bool delivered)
    {
        // The shared serving certificate names the Service, not the pod IP the peer is dialled by.
        using var ca = CreateCa("ebpf-test-ca");
        using var otherCa = CreateCa("someone-else");
        using var serving = CreateLeaf(ca, "ebpf-agent-webhook.ebpf-test.svc");
        using var other = CreateLeaf(otherCa, "ebpf-agent-webhook.ebpf-test.svc");
        void Trust(AuditForwardingOptions o)
        {
            o.PeerScheme = "https";
            o.MaxAttempts = 2;
            o.InitialBackoff = TimeSpan.FromMilliseconds(10);
            switch (trust)
            {
                case PeerTrust.PinnedOwnCertificate: o.PinnedPeerCertificates = [serving]; break;
                case PeerTrust.PinnedOtherCertificate: o.PinnedPeerCertificates = [other]; break;
                case PeerTrust.CaAndServiceName: o.PeerCertificateAuthorities = [ca]; o.PeerServerName = "ebpf-agent-webhook.ebpf-test.svc"; break;
                case PeerTrust.CaButOtherName: o.PeerCertificateAuthorities = [ca]; o.PeerServerName = "ebpf-agent-webhook.elsewhere.svc"; break;
                case PeerTrust.OtherCa: o.PeerCertificateAuthorities = [otherCa]; break;
            }
        }
        var a = await StartAgentAsync("node-a", Trust, serverCertificate: serving);
        var b = await StartAgentAsync("node-b", Trust, serverCertificate: serving);
        string auditId = Guid.NewGuid().ToString();

        using var response = await PostAsync(a.WebhookUri, EventList(ExecEvent("web-b", auditId)), ApiServerToken, certificateAuthority: ca);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await EventuallyAsync(() => a.Forwarder.Counters.Forwarded + a.Forwarder.Counters.Failed == 1, "delivered or given up");
        Assert.Equal(delivered, b.Sink.Stored.Any(e => e.AuditId == auditId));
        Assert.Equal(delivered ? 0 : 1, a.Forwarder.Counters.Failed);
    }

    // ---- the agent-like node ----

    private sealed class AgentNode(WebApplication app, CancellationTokenSource stop, Task run) : IAsyncDisposable
    {
        public required string Node { get; init; }
        public required InMemoryAuditSink Sink { get; init; }
        public required AuditEventForwarder Forwarder { get; init; }
        public required AuditWebhookReceiver Forwarded { get; init; }
        public required int Port { get; init; }
        public string Scheme { get; init; } = "http";
        public Uri WebhookUri => new($"{Scheme}://127.0.0.1:{Port}/audit/webhook");
        public Uri ForwardedUri => new($"{Scheme}://127.0.0.1:{Port}/audit/forwarded");

        public async ValueTask DisposeAsync()
        {
            await stop.CancelAsync();
            await run;
            await app.StopAsync();
            await app.DisposeAsync();
            Forwarder.Dispose();
            stop.Dispose();
        }
    }

    private async Task<AgentNode> StartAgentAsync(string node, Action<AuditForwardingOptions>? configure = null,
        (string Namespace, string Pod)[]? localPods = null, bool register = true, bool runForwarder = true, long forwardedMaxBodyBytes = 16 * 1024 * 1024,
        X509Certificate2? serverCertificate = null)
    {
        var options = new AuditForwardingOptions
        {
            NodeName = node,
            AgentNamespace = AgentNamespace,
            Token = ForwardToken,
            PeerScheme = "http",
            InitialBackoff = TimeSpan.FromMilliseconds(50),
        };
        configure?.Invoke(options);
        var api = new KubeApiClient(new KubeClientConfig { Server = _kube.BaseAddress, Token = _kube.Token });
        var local = new HashSet<(string, string)>(localPods ?? []);
        var forwarder = new AuditEventForwarder(options, new AuditPeerDirectory(api, options), (ns, pod) => local.Contains((ns, pod)));
        var sink = new InMemoryAuditSink();
        var webhook = new AuditWebhookReceiver(new AuditWebhookOptions { BearerTokens = [ApiServerToken] }, sink, committed: forwarder.Offer);
        var forwarded = new AuditWebhookReceiver(new AuditWebhookOptions { BearerTokens = options.AcceptedTokens, MaxBodyBytes = forwardedMaxBodyBytes }, sink);

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, listen =>
        {
            if (serverCertificate is not null) listen.UseHttps(serverCertificate);
        }));
        var app = builder.Build();
        app.MapAuditWebhook("/audit/webhook", webhook);
        app.MapAuditWebhook(options.ForwardedPath, forwarded);
        await app.StartAsync();
        int port = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single()).Port;
        var stop = new CancellationTokenSource();
        var run = runForwarder ? forwarder.RunAsync(stop.Token) : Task.CompletedTask;
        var agent = new AgentNode(app, stop, run) { Node = node, Sink = sink, Forwarder = forwarder, Forwarded = forwarded, Port = port, Scheme = serverCertificate is null ? "http" : "https" };
        _disposables.Add(agent);
        if (register) _kube.AddPod(KubePodTemplate.CreateAgent(node, "127.0.0.1", port, AgentNamespace, "agent-" + node));
        return agent;
    }

    // ---- events, shaped after recorded API server events (see tests/Ebpf.Agent.Tests/EndToEnd/ExecAuditEvents.cs) ----

    private static JsonObject ExecEvent(string pod, string auditId) => new()
    {
        ["kind"] = "Event",
        ["apiVersion"] = "audit.k8s.io/v1",
        ["level"] = "Metadata",
        ["auditID"] = auditId,
        ["stage"] = "ResponseStarted",
        ["requestURI"] = $"/api/v1/namespaces/{Shop}/pods/{pod}/exec?command=sh&command=-c&command=id&container=web&stdin=true&stdout=true&tty=false",
        ["verb"] = "create",
        ["user"] = new JsonObject { ["username"] = "alice@example.com", ["groups"] = new JsonArray("developers", "system:authenticated") },
        ["sourceIPs"] = new JsonArray("10.20.30.40"),
        ["userAgent"] = "kubectl/v1.30.2 (linux/amd64) kubernetes/3968350",
        ["objectRef"] = new JsonObject { ["resource"] = "pods", ["namespace"] = Shop, ["name"] = pod, ["apiVersion"] = "v1", ["subresource"] = "exec" },
        ["responseStatus"] = new JsonObject { ["metadata"] = new JsonObject(), ["code"] = 101 },
        ["requestReceivedTimestamp"] = Now(),
        ["stageTimestamp"] = Now(),
        ["annotations"] = new JsonObject { ["authorization.k8s.io/decision"] = "allow", ["authorization.k8s.io/reason"] = "" },
    };

    private static JsonObject GetPodsEvent(string auditId) => new()
    {
        ["kind"] = "Event",
        ["apiVersion"] = "audit.k8s.io/v1",
        ["level"] = "Metadata",
        ["auditID"] = auditId,
        ["stage"] = "ResponseComplete",
        ["requestURI"] = $"/api/v1/namespaces/{Shop}/pods?limit=500",
        ["verb"] = "list",
        ["user"] = new JsonObject { ["username"] = "alice@example.com", ["groups"] = new JsonArray("system:authenticated") },
        ["sourceIPs"] = new JsonArray("10.20.30.40"),
        ["objectRef"] = new JsonObject { ["resource"] = "pods", ["namespace"] = Shop, ["apiVersion"] = "v1" },
        ["responseStatus"] = new JsonObject { ["metadata"] = new JsonObject(), ["code"] = 200 },
        ["requestReceivedTimestamp"] = Now(),
        ["stageTimestamp"] = Now(),
    };

    /// <summary>A call with a pod-bound service-account token: the API server copies the token's pod and node into user.extra.</summary>
    private static JsonObject BoundTokenEvent(string node, string auditId) => new()
    {
        ["kind"] = "Event",
        ["apiVersion"] = "audit.k8s.io/v1",
        ["level"] = "Metadata",
        ["auditID"] = auditId,
        ["stage"] = "ResponseComplete",
        ["requestURI"] = "/api/v1/namespaces/kube-system/secrets",
        ["verb"] = "list",
        ["user"] = new JsonObject
        {
            ["username"] = "system:serviceaccount:shop:default",
            ["uid"] = "4d6e1c7a-0f0b-4c35-9d1e-2a3b4c5d6e7f",
            ["groups"] = new JsonArray("system:serviceaccounts", "system:serviceaccounts:shop", "system:authenticated"),
            ["extra"] = new JsonObject
            {
                ["authentication.kubernetes.io/credential-id"] = new JsonArray("JTI=5b0c6a3e-8a57-4d0f-b3c1-6c7f8d9e0a1b"),
                ["authentication.kubernetes.io/node-name"] = new JsonArray(node),
                ["authentication.kubernetes.io/node-uid"] = new JsonArray("0d7e9a55-1c0f-4b3a-8f67-2b9d3c4e5f60"),
                ["authentication.kubernetes.io/pod-name"] = new JsonArray("web-x"),
                ["authentication.kubernetes.io/pod-uid"] = new JsonArray("8a6c3e2f-5b1d-4c2e-9f3a-1d2e3f4a5b6c"),
            },
        },
        ["sourceIPs"] = new JsonArray("10.244.1.17"),
        ["objectRef"] = new JsonObject { ["resource"] = "secrets", ["namespace"] = "kube-system", ["apiVersion"] = "v1" },
        ["responseStatus"] = new JsonObject { ["metadata"] = new JsonObject(), ["code"] = 403 },
        ["requestReceivedTimestamp"] = Now(),
        ["stageTimestamp"] = Now(),
    };

    private static string Now() => DateTimeOffset.UtcNow.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture);

    private static string EventList(params JsonObject[] events) => AuditFixtureLines.EventList(events.Select(e => e.ToJsonString()));

    private static async Task<HttpResponseMessage> PostAsync(Uri uri, string body, string? token, string contentType = "application/json",
        X509Certificate2? certificateAuthority = null)
    {
        using var handler = new SocketsHttpHandler();
        if (certificateAuthority is not null)
        {
            // The test's API-server side: trusts the test CA and accepts the Service name for 127.0.0.1.
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, _) =>
            {
                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.Add(certificateAuthority);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                return certificate is X509Certificate2 c && chain.Build(c);
            };
        }
        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(10) };
        using var request = new HttpRequestMessage(HttpMethod.Post, uri) { Content = new StringContent(body, Encoding.UTF8) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue(contentType);
        if (token is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return await http.SendAsync(request);
    }

    private static X509Certificate2 CreateCa(string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        return X509CertificateLoader.LoadPkcs12(cert.Export(X509ContentType.Pkcs12), null);
    }

    private static X509Certificate2 CreateLeaf(X509Certificate2 ca, string dnsName)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={dnsName}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(dnsName);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var signed = request.Create(ca, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(29), RandomNumberGenerator.GetBytes(8));
        using var withKey = signed.CopyWithPrivateKey(key);
        // Round-trip through PKCS#12 so Kestrel gets a certificate with a usable private key.
        return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
    }

    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static async Task EventuallyAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"not within {Patience}: {what}");
            await Task.Delay(20);
        }
    }
}
