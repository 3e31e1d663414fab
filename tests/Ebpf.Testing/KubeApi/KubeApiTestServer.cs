using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Ebpf.Testing.KubeApi;

/// <summary>Options for <see cref="KubeApiTestServer"/>.</summary>
public sealed class KubeApiTestServerOptions
{
    /// <summary>Bearer token the server accepts. Defaults to "test-token".</summary>
    public string Token { get; set; } = "test-token";

    /// <summary>Serve HTTPS with a self-signed certificate for 127.0.0.1 (<see cref="KubeApiTestServer.CaCertificatePem"/>). Defaults to false.</summary>
    public bool UseTls { get; set; }

    /// <summary>How often open watches get a BOOKMARK (when the client asked for them). Defaults to 1 s (the real server: ~1 min).</summary>
    public TimeSpan BookmarkInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Answer a watch from a compacted resourceVersion with HTTP 410 instead of an ERROR event. Defaults to false (the real server sends the event).</summary>
    public bool ExpiredWatchAsHttp410 { get; set; }
}

/// <summary>
/// A Kubernetes API server for tests, speaking the real wire protocol for pods: paged lists
/// (<c>GET /api/v1/pods?fieldSelector=spec.nodeName%3D..&amp;limit=..&amp;continue=..</c>) and watches
/// (<c>?watch=true&amp;resourceVersion=..&amp;allowWatchBookmarks=true</c>: chunked newline-delimited
/// {"type","object"} events, BOOKMARKs, 410 as an ERROR event with a Status), bearer-token auth (401 Status).
/// Kestrel on 127.0.0.1; state survives <see cref="RestartAsync"/> on the same port. Test controls change pods,
/// drop watch connections, expire resourceVersions and inject raw (hostile) bytes.
/// </summary>
public sealed class KubeApiTestServer : IAsyncDisposable
{
    private readonly KubeApiTestServerOptions _options;
    private readonly Lock _lock = new();
    private readonly SortedDictionary<string, JsonObject> _pods = new(StringComparer.Ordinal); // key: namespace/name
    private readonly List<(long Rv, string Type, JsonObject Pod)> _history = [];
    private readonly List<WatchConnection> _watches = [];
    private readonly X509Certificate2? _certificate;
    private WebApplication? _app;
    private long _resourceVersion = 100;
    private long _compactedBelow;
    private int _listRequests, _watchRequests, _unauthorized;
    private string? _nextListBody;

    private KubeApiTestServer(KubeApiTestServerOptions options)
    {
        _options = options;
        if (options.UseTls) _certificate = CreateCertificate();
    }

    public static async Task<KubeApiTestServer> StartAsync(KubeApiTestServerOptions? options = null)
    {
        var server = new KubeApiTestServer(options ?? new KubeApiTestServerOptions());
        await server.StartAppAsync(0).ConfigureAwait(false);
        return server;
    }

    public int Port { get; private set; }
    public Uri BaseAddress => new($"{(_options.UseTls ? "https" : "http")}://127.0.0.1:{Port}");
    /// <summary>The accepted bearer token; change it to make the server reject the old one.</summary>
    public string Token { get => _options.Token; set => _options.Token = value; }
    /// <summary>PEM of the self-signed server certificate (the CA to trust) when <see cref="KubeApiTestServerOptions.UseTls"/>.</summary>
    public string? CaCertificatePem => _certificate?.ExportCertificatePem();
    public long ResourceVersion { get { lock (_lock) return _resourceVersion; } }
    public int ListRequests => Volatile.Read(ref _listRequests);
    public int WatchRequests => Volatile.Read(ref _watchRequests);
    public int UnauthorizedRequests => Volatile.Read(ref _unauthorized);
    public int OpenWatches { get { lock (_lock) return _watches.Count; } }

    /// <summary>A kubeconfig (YAML) for this server with token auth, and the CA when serving TLS.</summary>
    public string Kubeconfig(string? token = null)
    {
        var ca = CaCertificatePem is { } pem ? $"\n    certificate-authority-data: {Convert.ToBase64String(Encoding.UTF8.GetBytes(pem))}" : "";
        return $"""
            apiVersion: v1
            kind: Config
            current-context: test
            clusters:
            - name: test
              cluster:
                server: {BaseAddress.ToString().TrimEnd('/')}{ca}
            contexts:
            - name: test
              context:
                cluster: test
                user: test
                namespace: default
            users:
            - name: test
              user:
                token: {token ?? Token}
            """;
    }

    /// <summary>Adds a pod (ADDED event); sets its metadata.resourceVersion. Returns the new resourceVersion.</summary>
    public long AddPod(JsonObject pod) => Change("ADDED", pod);

    /// <summary>Replaces a pod (MODIFIED event).</summary>
    public long ModifyPod(JsonObject pod) => Change("MODIFIED", pod);

    public long DeletePod(string @namespace, string name)
    {
        lock (_lock)
        {
            if (!_pods.TryGetValue(@namespace + "/" + name, out var pod)) throw new InvalidOperationException($"no pod {@namespace}/{name}");
            return Change("DELETED", (JsonObject)pod.DeepClone());
        }
    }

    /// <summary>Closes every open watch connection abruptly (no final chunk).</summary>
    public void DropWatches()
    {
        lock (_lock)
            foreach (var w in _watches) w.Messages.Writer.TryWrite(WatchMessage.Abort);
    }

    /// <summary>
    /// Compacts history: watches from a resourceVersion older than the current one get 410 Gone, and open
    /// watches receive an ERROR event with a 410 Status and are closed, as after etcd compaction.
    /// </summary>
    public void ExpireResourceVersions()
    {
        lock (_lock)
        {
            _compactedBelow = _resourceVersion;
            _history.Clear();
            foreach (var w in _watches)
            {
                w.Messages.Writer.TryWrite(WatchMessage.Line(GoneEvent(w.StartRv)));
                w.Messages.Writer.TryWrite(WatchMessage.End);
            }
        }
    }

    /// <summary>Sends raw text to open watches as is (add the "\n" yourself); with <paramref name="thenAbort"/> the connection is cut after it.</summary>
    public void InjectWatchText(string text, bool thenAbort = false)
    {
        lock (_lock)
            foreach (var w in _watches)
            {
                w.Messages.Writer.TryWrite(WatchMessage.Raw(text));
                if (thenAbort) w.Messages.Writer.TryWrite(WatchMessage.Abort);
            }
    }

    /// <summary>The next list request is answered with this body (200, application/json) instead of the pods.</summary>
    public void OverrideNextListBody(string body)
    {
        lock (_lock) _nextListBody = body;
    }

    /// <summary>Stops the server (dropping all connections) and starts it again on the same port. The watch cache restarts at the current resourceVersion: older ones get 410.</summary>
    public async Task RestartAsync(TimeSpan downtime = default)
    {
        await StopAppAsync().ConfigureAwait(false);
        if (downtime > TimeSpan.Zero) await Task.Delay(downtime).ConfigureAwait(false);
        lock (_lock)
        {
            _compactedBelow = _resourceVersion;
            _history.Clear();
        }
        await StartAppAsync(Port).ConfigureAwait(false);
    }

    /// <summary>Stops serving (connections refused) until <see cref="StartAgainAsync"/>.</summary>
    public Task StopAsync() => StopAppAsync();

    public Task StartAgainAsync()
    {
        lock (_lock)
        {
            _compactedBelow = _resourceVersion;
            _history.Clear();
        }
        return StartAppAsync(Port);
    }

    private long Change(string type, JsonObject pod)
    {
        lock (_lock)
        {
            var metadata = pod["metadata"]!.AsObject();
            string key = (string)metadata["namespace"]! + "/" + (string)metadata["name"]!;
            long rv = ++_resourceVersion;
            metadata["resourceVersion"] = rv.ToString(CultureInfo.InvariantCulture);
            var stored = (JsonObject)pod.DeepClone();
            if (type == "DELETED") _pods.Remove(key);
            else _pods[key] = stored;
            _history.Add((rv, type, stored));
            string line = EventLine(type, stored);
            string? node = NodeOf(stored);
            foreach (var w in _watches)
                if (w.NodeName is null || w.NodeName == node) w.Messages.Writer.TryWrite(WatchMessage.Line(line));
            return rv;
        }
    }

    private async Task StartAppAsync(int port)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, port, listen =>
        {
            if (_certificate is not null) listen.UseHttps(_certificate);
        }));
        var app = builder.Build();
        app.MapGet("/api/v1/pods", HandlePodsAsync);
        app.MapGet("/api/v1/namespaces/{namespace}/pods", HandleNamespacedListAsync);
        app.MapGet("/api/v1/namespaces/{namespace}/pods/{name}", HandleGetPodAsync);
        await app.StartAsync().ConfigureAwait(false);
        _app = app;
        Port = new Uri(app.Urls.First()).Port;
    }

    private async Task StopAppAsync()
    {
        var app = _app;
        _app = null;
        if (app is null) return;
        DropWatches();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await app.StopAsync(timeout.Token).ConfigureAwait(false);
        await app.DisposeAsync().ConfigureAwait(false);
    }

    private async Task HandlePodsAsync(HttpContext context)
    {
        var auth = context.Request.Headers.Authorization.ToString();
        if (auth != "Bearer " + _options.Token)
        {
            Interlocked.Increment(ref _unauthorized);
            await WriteStatusAsync(context, 401, "Unauthorized", "Unauthorized").ConfigureAwait(false);
            return;
        }
        var query = context.Request.Query;
        string? nodeName = null;
        string selector = query["fieldSelector"].ToString();
        if (selector.Length > 0)
        {
            if (!selector.StartsWith("spec.nodeName=", StringComparison.Ordinal))
            {
                await WriteStatusAsync(context, 400, "BadRequest", $"unable to parse requirement: field label not supported: {selector}").ConfigureAwait(false);
                return;
            }
            nodeName = selector["spec.nodeName=".Length..];
        }
        if (query["watch"] == "true" || query["watch"] == "1") await HandleWatchAsync(context, nodeName).ConfigureAwait(false);
        else await HandleListAsync(context, nodeName).ConfigureAwait(false);
    }

    /// <summary>
    /// GET /api/v1/namespaces/{ns}/pods with labelSelector (equality terms "k=v,k2=v2") and fieldSelector
    /// (spec.nodeName=...), as `kubectl get pods -n ns -l ... --field-selector ...` sends them. Not paged.
    /// </summary>
    private async Task HandleNamespacedListAsync(HttpContext context)
    {
        if (!await AuthorizedAsync(context).ConfigureAwait(false)) return;
        Interlocked.Increment(ref _listRequests);
        string ns = (string)context.Request.RouteValues["namespace"]!;
        string fieldSelector = context.Request.Query["fieldSelector"].ToString();
        string? nodeName = null;
        if (fieldSelector.Length > 0)
        {
            if (!fieldSelector.StartsWith("spec.nodeName=", StringComparison.Ordinal))
            {
                await WriteStatusAsync(context, 400, "BadRequest", $"unable to parse requirement: field label not supported: {fieldSelector}").ConfigureAwait(false);
                return;
            }
            nodeName = fieldSelector["spec.nodeName=".Length..];
        }
        var labels = new List<(string Key, string Value)>();
        foreach (var term in context.Request.Query["labelSelector"].ToString().Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = term.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                await WriteStatusAsync(context, 400, "BadRequest", $"unable to parse requirement: {term}").ConfigureAwait(false);
                return;
            }
            labels.Add((term[..eq], term[(eq + 1)..].TrimStart('=')));
        }
        string body;
        lock (_lock)
        {
            var items = new JsonArray();
            foreach (var p in _pods.Values)
            {
                if ((string?)p["metadata"]!["namespace"] != ns) continue;
                if (nodeName is not null && NodeOf(p) != nodeName) continue;
                if (labels.Any(l => (string?)p["metadata"]!["labels"]?[l.Key] != l.Value)) continue;
                items.Add(p.DeepClone());
            }
            body = new JsonObject
            {
                ["kind"] = "PodList", ["apiVersion"] = "v1",
                ["metadata"] = new JsonObject { ["resourceVersion"] = _resourceVersion.ToString(CultureInfo.InvariantCulture) },
                ["items"] = items,
            }.ToJsonString();
        }
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(body).ConfigureAwait(false);
    }

    /// <summary>GET /api/v1/namespaces/{ns}/pods/{name}: the pod, or a 404 NotFound Status like the real server.</summary>
    private async Task HandleGetPodAsync(HttpContext context)
    {
        if (!await AuthorizedAsync(context).ConfigureAwait(false)) return;
        string key = (string)context.Request.RouteValues["namespace"]! + "/" + (string)context.Request.RouteValues["name"]!;
        string? body;
        lock (_lock) body = _pods.TryGetValue(key, out var pod) ? pod.ToJsonString() : null;
        if (body is null)
        {
            await WriteStatusAsync(context, 404, "NotFound", $"pods \"{context.Request.RouteValues["name"]}\" not found").ConfigureAwait(false);
            return;
        }
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(body).ConfigureAwait(false);
    }

    private async Task<bool> AuthorizedAsync(HttpContext context)
    {
        if (context.Request.Headers.Authorization.ToString() == "Bearer " + _options.Token) return true;
        Interlocked.Increment(ref _unauthorized);
        await WriteStatusAsync(context, 401, "Unauthorized", "Unauthorized").ConfigureAwait(false);
        return false;
    }

    private async Task HandleListAsync(HttpContext context, string? nodeName)
    {
        Interlocked.Increment(ref _listRequests);
        string body;
        lock (_lock)
        {
            if (_nextListBody is not null)
            {
                body = _nextListBody;
                _nextListBody = null;
            }
            else
            {
                int limit = int.TryParse(context.Request.Query["limit"], CultureInfo.InvariantCulture, out var l) && l > 0 ? l : int.MaxValue;
                int offset = 0;
                long listRv = _resourceVersion;
                string continueToken = context.Request.Query["continue"].ToString();
                if (continueToken.Length > 0)
                {
                    // Our continue token: base64("<list rv>:<offset>"), opaque to clients like the real one.
                    var parts = Encoding.UTF8.GetString(Convert.FromBase64String(continueToken)).Split(':');
                    listRv = long.Parse(parts[0], CultureInfo.InvariantCulture);
                    offset = int.Parse(parts[1], CultureInfo.InvariantCulture);
                }
                var matching = _pods.Values.Where(p => nodeName is null || NodeOf(p) == nodeName).ToList();
                var page = matching.Skip(offset).Take(limit).ToList();
                var items = new JsonArray();
                foreach (var p in page) items.Add(p.DeepClone());
                var metadata = new JsonObject { ["resourceVersion"] = listRv.ToString(CultureInfo.InvariantCulture) };
                if (offset + page.Count < matching.Count)
                {
                    metadata["continue"] = Convert.ToBase64String(Encoding.UTF8.GetBytes($"{listRv}:{offset + page.Count}"));
                    metadata["remainingItemCount"] = matching.Count - offset - page.Count;
                }
                body = new JsonObject { ["kind"] = "PodList", ["apiVersion"] = "v1", ["metadata"] = metadata, ["items"] = items }.ToJsonString();
            }
        }
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(body).ConfigureAwait(false);
    }

    private async Task HandleWatchAsync(HttpContext context, string? nodeName)
    {
        Interlocked.Increment(ref _watchRequests);
        bool bookmarks = context.Request.Query["allowWatchBookmarks"] == "true";
        int timeoutSeconds = int.TryParse(context.Request.Query["timeoutSeconds"], CultureInfo.InvariantCulture, out var t) && t > 0 ? t : 1800;
        string rvText = context.Request.Query["resourceVersion"].ToString();
        long startRv = long.TryParse(rvText, CultureInfo.InvariantCulture, out var parsed) ? parsed : 0;
        var connection = new WatchConnection(nodeName, startRv);
        var replay = new List<string>();
        bool gone;
        lock (_lock)
        {
            gone = startRv != 0 && startRv < _compactedBelow;
            if (!gone)
            {
                if (startRv == 0)
                {
                    // resourceVersion unset/"0": synthetic ADDED events for the current state, then changes.
                    foreach (var p in _pods.Values)
                        if (nodeName is null || NodeOf(p) == nodeName) replay.Add(EventLine("ADDED", p));
                }
                else
                {
                    foreach (var (rv, type, pod) in _history)
                        if (rv > startRv && (nodeName is null || NodeOf(pod) == nodeName)) replay.Add(EventLine(type, pod));
                }
                _watches.Add(connection);
            }
        }
        if (gone && _options.ExpiredWatchAsHttp410)
        {
            await WriteStatusAsync(context, 410, "Expired", $"too old resource version: {startRv} ({_compactedBelow})").ConfigureAwait(false);
            return;
        }
        context.Response.ContentType = "application/json";
        // Like the real server, send the headers at once: a client waits for them before reading any event.
        await context.Response.StartAsync().ConfigureAwait(false);
        await context.Response.Body.FlushAsync().ConfigureAwait(false);
        if (gone)
        {
            await WriteLineAsync(context, GoneEvent(startRv)).ConfigureAwait(false);
            return;
        }
        try
        {
            foreach (var line in replay) await WriteLineAsync(context, line).ConfigureAwait(false);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
            timeout.CancelAfter(TimeSpan.FromSeconds(timeoutSeconds));
            while (!timeout.IsCancellationRequested)
            {
                using var tick = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token);
                tick.CancelAfter(_options.BookmarkInterval);
                WatchMessage message;
                try
                {
                    message = await connection.Messages.Reader.ReadAsync(tick.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!timeout.IsCancellationRequested)
                {
                    if (bookmarks) await WriteLineAsync(context, BookmarkLine(ResourceVersion)).ConfigureAwait(false);
                    continue;
                }
                if (message.Kind == WatchMessageKind.Abort)
                {
                    context.Abort();
                    return;
                }
                if (message.Kind == WatchMessageKind.End) return;
                if (message.Kind == WatchMessageKind.Raw)
                {
                    await context.Response.WriteAsync(message.Text).ConfigureAwait(false);
                    await context.Response.Body.FlushAsync().ConfigureAwait(false);
                }
                else await WriteLineAsync(context, message.Text).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            // timeoutSeconds elapsed or the client went away: the real server ends the response cleanly.
        }
        catch (IOException)
        {
        }
        finally
        {
            lock (_lock) _watches.Remove(connection);
        }
    }

    private static async Task WriteLineAsync(HttpContext context, string line)
    {
        await context.Response.WriteAsync(line + "\n").ConfigureAwait(false);
        await context.Response.Body.FlushAsync().ConfigureAwait(false);
    }

    private static Task WriteStatusAsync(HttpContext context, int code, string reason, string message)
    {
        context.Response.StatusCode = code;
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(StatusJson(code, reason, message).ToJsonString());
    }

    private static JsonObject StatusJson(int code, string reason, string message) => new()
    {
        ["kind"] = "Status",
        ["apiVersion"] = "v1",
        ["metadata"] = new JsonObject(),
        ["status"] = "Failure",
        ["message"] = message,
        ["reason"] = reason,
        ["code"] = code,
    };

    private string GoneEvent(long startRv) => new JsonObject
    {
        ["type"] = "ERROR",
        ["object"] = StatusJson(410, "Expired", $"too old resource version: {startRv} ({_compactedBelow})"),
    }.ToJsonString();

    private static string EventLine(string type, JsonObject pod) => new JsonObject { ["type"] = type, ["object"] = pod.DeepClone() }.ToJsonString();

    private static string BookmarkLine(long rv) => new JsonObject
    {
        ["type"] = "BOOKMARK",
        ["object"] = new JsonObject
        {
            ["kind"] = "Pod",
            ["apiVersion"] = "v1",
            ["metadata"] = new JsonObject
            {
                ["resourceVersion"] = rv.ToString(CultureInfo.InvariantCulture),
                ["annotations"] = new JsonObject { ["k8s.io/initial-events-end"] = "true" },
            },
        },
    }.ToJsonString();

    private static string? NodeOf(JsonObject pod) => (string?)pod["spec"]?["nodeName"];

    private static X509Certificate2 CreateCertificate()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=kube-apiserver-test", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        san.AddDnsName("localhost");
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        // Round-trip through PKCS#12 so Kestrel gets a certificate with a usable private key on every platform.
        return X509CertificateLoader.LoadPkcs12(cert.Export(X509ContentType.Pkcs12), null);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAppAsync().ConfigureAwait(false);
        _certificate?.Dispose();
    }

    private enum WatchMessageKind { Line, Raw, Abort, End }

    private readonly record struct WatchMessage(WatchMessageKind Kind, string Text)
    {
        public static WatchMessage Line(string text) => new(WatchMessageKind.Line, text);
        public static WatchMessage Raw(string text) => new(WatchMessageKind.Raw, text);
        public static readonly WatchMessage Abort = new(WatchMessageKind.Abort, "");
        public static readonly WatchMessage End = new(WatchMessageKind.End, "");
    }

    private sealed class WatchConnection(string? nodeName, long startRv)
    {
        public string? NodeName { get; } = nodeName;
        public long StartRv { get; } = startRv;
        public Channel<WatchMessage> Messages { get; } = Channel.CreateUnbounded<WatchMessage>();
    }
}
