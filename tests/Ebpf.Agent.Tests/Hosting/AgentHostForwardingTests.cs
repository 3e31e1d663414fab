using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using Ebpf.Agent.Configuration;
using Ebpf.Agent.Hosting;
using Ebpf.Testing.KubeApi;

namespace Ebpf.Agent.Tests.Hosting;

/// <summary>
/// The real host (capture off, so no root needed) against the Kubernetes API test server: the forwarded-events
/// endpoint exists only when forwarding is on, takes only the forwarding token, and its counters reach /metrics.
/// </summary>
public sealed class AgentHostForwardingTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ebpf-host-forward-").FullName;
    private KubeApiTestServer _kube = null!;

    public async Task InitializeAsync() => _kube = await KubeApiTestServer.StartAsync();

    public async Task DisposeAsync()
    {
        await _kube.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task BuildAsync_ForwardingEnabled_ForwardedPathTakesOnlyTheForwardingTokenAndIsMetered()
    {
        string tokenFile = Path.Combine(_dir, "forward-token");
        await File.WriteAllTextAsync(tokenFile, "new-token\nold-token\n");
        var options = Options(o =>
        {
            o.Audit.Forwarding.Enabled = true;
            o.Audit.Forwarding.TokenFile = tokenFile;
        });
        await using var app = await AgentHost.BuildAsync(options);
        await app.StartAsync();
        try
        {
            var forwarded = new Uri($"http://{options.Webhook.Listen}/audit/forwarded");
            using var none = await PostAsync(forwarded, null);
            using var wrong = await PostAsync(forwarded, "apiserver-token");
            using var rotated = await PostAsync(forwarded, "old-token");
            using var current = await PostAsync(forwarded, "new-token");

            Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
            Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
            Assert.Equal(HttpStatusCode.OK, rotated.StatusCode);
            Assert.Equal(HttpStatusCode.OK, current.StatusCode);
            using var http = new HttpClient();
            string metrics = await http.GetStringAsync($"http://{options.Health.Listen}/metrics");
            Assert.Contains("ebpf_audit_forwarded_total{counter=\"unauthorized\"} 2", metrics, StringComparison.Ordinal);
            Assert.Contains("ebpf_audit_forwarded_total{counter=\"appended\"} 1", metrics, StringComparison.Ordinal);
            Assert.Contains("ebpf_audit_forwarding_total{counter=\"dropped\"} 0", metrics, StringComparison.Ordinal);
        }
        finally
        {
            await app.StopAsync();
        }
    }

    [Fact]
    public async Task BuildAsync_ForwardingUnsetOutsideAPod_NoForwardedEndpoint()
    {
        var options = Options(_ => { });
        await using var app = await AgentHost.BuildAsync(options);
        await app.StartAsync();
        try
        {
            using var response = await PostAsync(new Uri($"http://{options.Webhook.Listen}/audit/forwarded"), "anything");
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        }
        finally
        {
            await app.StopAsync();
        }
    }

    [Fact]
    public async Task BuildAsync_ForwardingEnabledNamespaceUnknown_ConfigurationErrorSaysHow()
    {
        string tokenFile = Path.Combine(_dir, "forward-token");
        await File.WriteAllTextAsync(tokenFile, "t\n");
        // A kubeconfig context without a namespace, no POD_NAMESPACE, no service account: nothing to look agents up in.
        string kubeconfig = Path.Combine(_dir, "kubeconfig-no-ns");
        await File.WriteAllTextAsync(kubeconfig, _kube.Kubeconfig().Replace("    namespace: default\n", "", StringComparison.Ordinal));
        var options = Options(o =>
        {
            o.Kubeconfig = kubeconfig;
            o.Audit.Forwarding.Enabled = true;
            o.Audit.Forwarding.TokenFile = tokenFile;
        });
        if (Environment.GetEnvironmentVariable("POD_NAMESPACE") is { Length: > 0 })
            return; // the environment names a namespace: this case cannot occur here

        var e = await Assert.ThrowsAsync<ConfigurationException>(() => AgentHost.BuildAsync(options));
        Assert.Contains("audit.forwarding.namespace", e.Message, StringComparison.Ordinal);
    }

    private AgentOptions Options(Action<AgentOptions> configure)
    {
        string kubeconfig = Path.Combine(_dir, "kubeconfig");
        File.WriteAllText(kubeconfig, _kube.Kubeconfig());
        var options = new AgentOptions
        {
            NodeName = "node-" + Guid.NewGuid().ToString("N")[..6],
            DataDirectory = Path.Combine(_dir, "data-" + Guid.NewGuid().ToString("N")[..6]),
            Kubeconfig = kubeconfig,
            Capture = { Enabled = false },
            Grpc = { Listen = "" },
            Webhook = { Listen = $"127.0.0.1:{FreePort()}" },
            Health = { Listen = $"127.0.0.1:{FreePort()}" },
        };
        configure(options);
        return options;
    }

    private static async Task<HttpResponseMessage> PostAsync(Uri uri, string? token)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        const string body = """{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"0d1c4b7e-3f7a-4c59-9a51-8c3f2e6d7a10","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/shop/pods","verb":"list","user":{"username":"alice@example.com"},"objectRef":{"resource":"pods","namespace":"shop","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-11-22T12:00:00.000000Z","stageTimestamp":"2026-11-22T12:00:00.010000Z"}]}""";
        using var request = new HttpRequestMessage(HttpMethod.Post, uri) { Content = new StringContent(body, Encoding.UTF8) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        if (token is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return await http.SendAsync(request);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
