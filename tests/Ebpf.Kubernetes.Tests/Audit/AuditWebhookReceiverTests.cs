using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Ebpf.Core.Audit;
using Ebpf.Kubernetes.Audit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Ebpf.Kubernetes.Tests.Audit;

/// <summary>Real Kestrel on 127.0.0.1 with a random port, real HTTP(S) clients, EventLists built from the real fixtures.</summary>
public sealed class AuditWebhookReceiverTests
{
    private const string Token = "s3cr3t-audit-token-1";

    private static AuditWebhookOptions Options(Action<AuditWebhookOptions>? configure = null)
    {
        var options = new AuditWebhookOptions { BearerTokens = [Token] };
        configure?.Invoke(options);
        return options;
    }

    private sealed class Server(WebApplication app, Uri baseUri) : IAsyncDisposable
    {
        public Uri Uri { get; } = new(baseUri, "/audit");

        public async ValueTask DisposeAsync()
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    private static async Task<Server> StartAsync(AuditWebhookReceiver receiver, Action<ListenOptions>? configureListen = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, listen => configureListen?.Invoke(listen)));
        var app = builder.Build();
        app.MapAuditWebhook("/audit", receiver);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        return new Server(app, new Uri(address.Replace("[::1]", "127.0.0.1", StringComparison.Ordinal)));
    }

    private static HttpRequestMessage Post(Uri uri, string body, string? token = Token, string contentType = "application/json")
    {
        var request = new HttpRequestMessage(HttpMethod.Post, uri) { Content = new StringContent(body, Encoding.UTF8) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue(contentType);
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        return request;
    }

    private static async Task<JsonElement> JsonAsync(HttpResponseMessage response)
        => JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();

    [Fact]
    public async Task Post_ValidEventList_Returns200AfterAppend()
    {
        var sink = new InMemoryAuditSink();
        var receiver = new AuditWebhookReceiver(Options(), sink);
        await using var server = await StartAsync(receiver);
        using var client = new HttpClient();
        var items = AuditFixtureLines.Demo.Concat(AuditFixtureLines.Falco).ToList();

        using var response = await client.SendAsync(Post(server.Uri, AuditFixtureLines.EventList(items)));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await JsonAsync(response);
        Assert.Equal(items.Count, body.GetProperty("received").GetInt32());
        // Falco's corpus has two pairs of edited copies sharing (auditID, stage, stageTimestamp): anonymous_/some-user_
        // creates_namespace_foo and the two *_privileged_2nd_container pods. The key makes the second of each a duplicate.
        Assert.Equal(items.Count - 2, body.GetProperty("appended").GetInt32());
        Assert.Equal(2, body.GetProperty("duplicates").GetInt32());
        Assert.Equal(0, body.GetProperty("rejected").GetInt32());
        Assert.Equal(items.Count - 2, sink.Stored.Count);
        Assert.Contains(sink.Stored, e => e.Derived.Streaming is { Kind: AuditStreamingKind.Exec, Command: ["bash"] });
        Assert.Equal(items.Count, receiver.Counters.Received);
        Assert.Equal(items.Count - 2, receiver.Counters.Appended);
    }

    [Fact]
    public async Task Post_RedeliveredBatch_DedupedBySinkKey()
    {
        var sink = new InMemoryAuditSink();
        var receiver = new AuditWebhookReceiver(Options(), sink);
        await using var server = await StartAsync(receiver);
        using var client = new HttpClient();
        var body = AuditFixtureLines.EventList(AuditFixtureLines.Demo);

        using var first = await client.SendAsync(Post(server.Uri, body));
        using var second = await client.SendAsync(Post(server.Uri, body));

        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        var json = await JsonAsync(second);
        Assert.Equal(0, json.GetProperty("appended").GetInt32());
        Assert.Equal(AuditFixtureLines.Demo.Count, json.GetProperty("duplicates").GetInt32());
        Assert.Equal(AuditFixtureLines.Demo.Count, sink.Stored.Count);
        Assert.Equal(AuditFixtureLines.Demo.Count, receiver.Counters.Duplicates);
    }

    [Fact]
    public async Task Post_PartiallyValidBatch_AppendsValidAndReportsRejected()
    {
        var sink = new InMemoryAuditSink();
        var receiver = new AuditWebhookReceiver(Options(), sink);
        await using var server = await StartAsync(receiver);
        using var client = new HttpClient();
        var falcoNotEvent = File.ReadAllText(Path.Combine(AuditFixtures.Falco, "fal_01_003.json"));
        var items = new[] { AuditFixtureLines.Demo[0], falcoNotEvent, AuditFixtureLines.Demo[1] };

        using var response = await client.SendAsync(Post(server.Uri, AuditFixtureLines.EventList(items)));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var json = await JsonAsync(response);
        Assert.Equal(2, json.GetProperty("appended").GetInt32());
        Assert.Equal(1, json.GetProperty("rejected").GetInt32());
        var rejection = json.GetProperty("rejections")[0];
        Assert.Equal("items[1]", rejection.GetProperty("location").GetString());
        Assert.Contains("kind", rejection.GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Equal(2, sink.Stored.Count);
        Assert.Equal(1, receiver.Counters.Rejected);
    }

    [Theory]
    [InlineData("this is not json", "invalid JSON")]
    [InlineData("{\"kind\":\"EventList\",\"apiVersion\":\"audit.k8s.io/v1\",\"items\":[{\"auditID\":", "invalid JSON")]
    [InlineData("{\"kind\":\"Event\",\"auditID\":\"x\"}", "expected \"EventList\"")]
    [InlineData("[]", "not a JSON object")]
    public async Task Post_MalformedBody_Returns400WithReason(string body, string reason)
    {
        var sink = new InMemoryAuditSink();
        var receiver = new AuditWebhookReceiver(Options(), sink);
        await using var server = await StartAsync(receiver);
        using var client = new HttpClient();

        using var response = await client.SendAsync(Post(server.Uri, body));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains(reason, (await JsonAsync(response)).GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Empty(sink.Stored);
        Assert.Equal(1, receiver.Counters.MalformedBodies);
    }

    [Fact]
    public async Task Post_WrongContentType_Returns415()
    {
        var receiver = new AuditWebhookReceiver(Options(), new InMemoryAuditSink());
        await using var server = await StartAsync(receiver);
        using var client = new HttpClient();

        using var response = await client.SendAsync(Post(server.Uri, AuditFixtureLines.EventList(AuditFixtureLines.Demo), contentType: "application/yaml"));

        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
    }

    [Fact]
    public async Task Post_OversizedBodyWithContentLength_Returns413()
    {
        var sink = new InMemoryAuditSink();
        var receiver = new AuditWebhookReceiver(Options(o => o.MaxBodyBytes = 32 * 1024), sink);
        await using var server = await StartAsync(receiver);
        using var client = new HttpClient();

        using var response = await client.SendAsync(Post(server.Uri, AuditFixtureLines.EventList(AuditFixtureLines.Demo.Concat(AuditFixtureLines.Demo))));

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Empty(sink.Stored);
        Assert.Equal(1, receiver.Counters.OversizedBodies);
    }

    [Fact]
    public async Task Post_OversizedChunkedBody_Returns413()
    {
        var sink = new InMemoryAuditSink();
        var receiver = new AuditWebhookReceiver(Options(o => o.MaxBodyBytes = 32 * 1024), sink);
        await using var server = await StartAsync(receiver);
        using var client = new HttpClient();
        var bytes = Encoding.UTF8.GetBytes(AuditFixtureLines.EventList(AuditFixtureLines.Demo.Concat(AuditFixtureLines.Demo)));
        using var request = new HttpRequestMessage(HttpMethod.Post, server.Uri) { Content = new StreamContent(new UnknownLengthStream(bytes)) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Token);
        request.Headers.TransferEncodingChunked = true;

        using var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Empty(sink.Stored);
    }

    [Fact]
    public async Task Post_WhileGateFull_Returns503WithRetryAfter()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var sink = new InMemoryAuditSink { BeforeAppend = async (_, ct) => { entered.TrySetResult(); await release.Task.WaitAsync(ct); } };
        var receiver = new AuditWebhookReceiver(Options(o => { o.MaxConcurrentRequests = 1; o.RetryAfter = TimeSpan.FromSeconds(7); }), sink);
        await using var server = await StartAsync(receiver);
        using var client = new HttpClient();

        var first = client.SendAsync(Post(server.Uri, AuditFixtureLines.EventList(AuditFixtureLines.Demo.Take(3))));
        await entered.Task.WaitAsync(TimeSpan.FromSeconds(30));
        using var second = await client.SendAsync(Post(server.Uri, AuditFixtureLines.EventList(AuditFixtureLines.Demo.Skip(3).Take(3))));
        await Task.Delay(100);
        Assert.False(first.IsCompleted, "answered before the sink acknowledged");
        release.SetResult();
        using var firstResponse = await first;

        Assert.Equal(HttpStatusCode.ServiceUnavailable, second.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(7), second.Headers.RetryAfter?.Delta);
        Assert.Equal(HttpStatusCode.OK, firstResponse.StatusCode);
        Assert.Equal(3, sink.Stored.Count);
        Assert.Equal(1, receiver.Counters.Saturated);
    }

    [Fact]
    public async Task Post_SinkPushesBack_Returns503AndNothingAcknowledged()
    {
        var sink = new InMemoryAuditSink { BeforeAppend = (_, _) => throw new AuditSinkSaturatedException("store queue full") { RetryAfter = TimeSpan.FromSeconds(2) } };
        var receiver = new AuditWebhookReceiver(Options(), sink);
        await using var server = await StartAsync(receiver);
        using var client = new HttpClient();

        using var response = await client.SendAsync(Post(server.Uri, AuditFixtureLines.EventList(AuditFixtureLines.Demo)));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(2), response.Headers.RetryAfter?.Delta);
        Assert.Equal(0, receiver.Counters.Appended);
    }

    [Fact]
    public async Task Post_SinkTooSlow_Returns503()
    {
        var sink = new InMemoryAuditSink { BeforeAppend = (_, ct) => Task.Delay(Timeout.Infinite, ct) };
        var receiver = new AuditWebhookReceiver(Options(o => o.AppendTimeout = TimeSpan.FromMilliseconds(200)), sink);
        await using var server = await StartAsync(receiver);
        using var client = new HttpClient();

        using var response = await client.SendAsync(Post(server.Uri, AuditFixtureLines.EventList(AuditFixtureLines.Demo)));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.NotNull(response.Headers.RetryAfter);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("s3cr3t-audit-token-2")]
    [InlineData("s3cr3t")]
    [InlineData("")]
    public async Task Post_WrongOrMissingBearerToken_Returns401(string? token)
    {
        var sink = new InMemoryAuditSink();
        var receiver = new AuditWebhookReceiver(Options(), sink);
        await using var server = await StartAsync(receiver);
        using var client = new HttpClient();
        using var request = Post(server.Uri, AuditFixtureLines.EventList(AuditFixtureLines.Demo), token: null);
        if (token is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + token);
        }

        using var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("Bearer", response.Headers.WwwAuthenticate.Single().Scheme);
        Assert.Empty(sink.Stored);
        Assert.Equal(1, receiver.Counters.Unauthorized);
    }

    [Fact]
    public void Options_NoAuthentication_RejectedAtStartup()
    {
        var error = Assert.Throws<ArgumentException>(() => new AuditWebhookReceiver(new AuditWebhookOptions(), new InMemoryAuditSink()));
        Assert.Contains("No authentication configured", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Post_ClientCertificateFromTrustedCa_AcceptedOverTls()
    {
        using var pki = new TestPki();
        var sink = new InMemoryAuditSink();
        var receiver = new AuditWebhookReceiver(new AuditWebhookOptions { ClientCertificateAuthentication = true }, sink);
        await using var server = await StartAsync(receiver, listen => listen.UseAuditWebhookHttps(pki.Server, pki.CaPemPath));
        var uri = new UriBuilder(server.Uri) { Scheme = "https" }.Uri;
        using var client = pki.Client(pki.TrustedClient);

        using var response = await client.SendAsync(Post(uri, AuditFixtureLines.EventList(AuditFixtureLines.Demo), token: null));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(AuditFixtureLines.Demo.Count, sink.Stored.Count);
    }

    [Fact]
    public async Task Post_ClientCertificateFromOtherCaOrNone_RefusedAtHandshake()
    {
        using var pki = new TestPki();
        var sink = new InMemoryAuditSink();
        var receiver = new AuditWebhookReceiver(new AuditWebhookOptions { ClientCertificateAuthentication = true }, sink);
        await using var server = await StartAsync(receiver, listen => listen.UseAuditWebhookHttps(pki.Server, pki.CaPemPath));
        var uri = new UriBuilder(server.Uri) { Scheme = "https" }.Uri;

        using var rogue = pki.Client(pki.RogueClient);
        using var anonymous = pki.Client(null);
        await Assert.ThrowsAsync<HttpRequestException>(() => rogue.SendAsync(Post(uri, AuditFixtureLines.EventList(AuditFixtureLines.Demo), token: null)));
        await Assert.ThrowsAsync<HttpRequestException>(() => anonymous.SendAsync(Post(uri, AuditFixtureLines.EventList(AuditFixtureLines.Demo), token: null)));
        Assert.Empty(sink.Stored);
    }

    [Fact]
    public async Task Post_TlsWithoutClientCertButBearer_AcceptedWhenCertOptional()
    {
        using var pki = new TestPki();
        var sink = new InMemoryAuditSink();
        var receiver = new AuditWebhookReceiver(new AuditWebhookOptions { ClientCertificateAuthentication = true, BearerTokens = [Token] }, sink);
        await using var server = await StartAsync(receiver, listen => listen.UseAuditWebhookHttps(pki.Server, pki.CaPemPath, Microsoft.AspNetCore.Server.Kestrel.Https.ClientCertificateMode.AllowCertificate));
        var uri = new UriBuilder(server.Uri) { Scheme = "https" }.Uri;
        using var client = pki.Client(null);

        using var withToken = await client.SendAsync(Post(uri, AuditFixtureLines.EventList(AuditFixtureLines.Demo.Take(2))));
        using var without = await client.SendAsync(Post(uri, AuditFixtureLines.EventList(AuditFixtureLines.Demo.Take(2)), token: null));

        Assert.Equal(HttpStatusCode.OK, withToken.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, without.StatusCode);
    }

    private sealed class UnknownLengthStream(byte[] data) : MemoryStream(data)
    {
        public override bool CanSeek => false;
    }

    /// <summary>A CA, a server certificate for 127.0.0.1, a client certificate from the CA and one from an unrelated CA.</summary>
    private sealed class TestPki : IDisposable
    {
        private readonly string _dir = Directory.CreateTempSubdirectory("audit-pki-").FullName;
        private readonly X509Certificate2 _ca;

        public TestPki()
        {
            _ca = CreateCa("CN=ebpf-test-audit-ca");
            using var rogueCa = CreateCa("CN=rogue-ca");
            Server = Issue(_ca, "CN=127.0.0.1", serverAuth: true);
            TrustedClient = Issue(_ca, "CN=kube-apiserver-audit", serverAuth: false);
            RogueClient = Issue(rogueCa, "CN=kube-apiserver-audit", serverAuth: false);
            CaPemPath = Path.Combine(_dir, "ca.pem");
            File.WriteAllText(CaPemPath, _ca.ExportCertificatePem());
        }

        public X509Certificate2 Server { get; }
        public X509Certificate2 TrustedClient { get; }
        public X509Certificate2 RogueClient { get; }
        public string CaPemPath { get; }

        public HttpClient Client(X509Certificate2? certificate)
        {
            var handler = new HttpClientHandler
            {
                ClientCertificateOptions = ClientCertificateOption.Manual,
                ServerCertificateCustomValidationCallback = (_, cert, _, _) => cert is not null && IsTrustedServer(cert, _ca),
            };
            if (certificate is not null)
            {
                handler.ClientCertificates.Add(certificate);
            }

            return new HttpClient(handler);
        }

        private static bool IsTrustedServer(X509Certificate2 certificate, X509Certificate2 ca)
        {
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.Add(ca);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            return chain.Build(certificate);
        }

        private static X509Certificate2 CreateCa(string name)
        {
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var request = new CertificateRequest(name, key, HashAlgorithmName.SHA256);
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
            request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
            request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
            return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        }

        private static X509Certificate2 Issue(X509Certificate2 ca, string name, bool serverAuth)
        {
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var request = new CertificateRequest(name, key, HashAlgorithmName.SHA256);
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
            request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
            request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(serverAuth ? "1.3.6.1.5.5.7.3.1" : "1.3.6.1.5.5.7.3.2")], false));
            if (serverAuth)
            {
                var san = new SubjectAlternativeNameBuilder();
                san.AddIpAddress(IPAddress.Loopback);
                request.CertificateExtensions.Add(san.Build());
            }

            var serial = RandomNumberGenerator.GetBytes(12);
            using var issued = request.Create(ca, DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddHours(12), serial);
            using var withKey = issued.CopyWithPrivateKey(key);
            // Round-trip through PKCS#12 so the key is usable by SslStream on every platform.
            return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
        }

        public void Dispose()
        {
            _ca.Dispose();
            Directory.Delete(_dir, recursive: true);
        }
    }
}
