using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;

namespace Ebpf.Kubernetes.Api;

/// <summary>Options for <see cref="KubeApiClient"/>.</summary>
public sealed class KubeApiClientOptions
{
    /// <summary>Timeout of non-watch requests. Defaults to 30 s.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often a token file is re-read. Defaults to 1 minute (client-go's cached token source).</summary>
    public TimeSpan TokenRefreshInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Largest list response body accepted; larger ones fail the request. Defaults to 64 MiB.</summary>
    public int MaxListResponseBytes { get; set; } = 64 << 20;

    /// <summary>Largest error body read to explain a failure. Defaults to 64 KiB.</summary>
    public int MaxErrorBodyBytes { get; set; } = 64 << 10;
}

/// <summary>A page of a pod list: items kept raw so each can be decoded (or rejected) on its own.</summary>
public sealed record PodListPage(string ResourceVersion, string? Continue, IReadOnlyList<JsonElement> Items);

/// <summary>
/// The few calls the agent makes to the API server (list and watch pods), over HttpClient with our own
/// System.Text.Json source-generated model. All requests go through here.
/// </summary>
public sealed class KubeApiClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly BearerTokenSource _token;
    private readonly KubeApiClientOptions _options;

    public KubeApiClient(KubeClientConfig config, KubeApiClientOptions? options = null, TimeProvider? time = null)
    {
        _options = options ?? new KubeApiClientOptions();
        Server = config.Server;
        _token = new BearerTokenSource(config.Token, config.TokenFile, _options.TokenRefreshInterval, time);
        var handler = new SocketsHttpHandler
        {
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            ConnectTimeout = TimeSpan.FromSeconds(10),
            AutomaticDecompression = DecompressionMethods.None,
        };
        if (config.ClientCertificate is not null) handler.SslOptions.ClientCertificates = [config.ClientCertificate];
        if (config.InsecureSkipTlsVerify)
        {
            // kubeconfig insecure-skip-tls-verify: the user asked for no server verification.
#pragma warning disable CA5359
            handler.SslOptions.RemoteCertificateValidationCallback = static (_, _, _, _) => true;
#pragma warning restore CA5359
        }
        else if (config.CaCertificates.Count > 0)
        {
            var roots = config.CaCertificates;
            // The cluster CA is the only trust anchor for this server (like client-go with a CA file).
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
            {
                if (certificate is null) return false;
                if ((errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0) return false;
                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.AddRange(roots);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                return chain.Build(certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()));
            };
        }
        _http = new HttpClient(handler) { BaseAddress = config.Server, Timeout = Timeout.InfiniteTimeSpan };
    }

    public Uri Server { get; }

    public async Task<PodListPage> ListPodsAsync(string? fieldSelector, int limit, string? continueToken, CancellationToken cancellationToken)
    {
        var query = new StringBuilder("/api/v1/pods?limit=").Append(limit);
        if (!string.IsNullOrEmpty(fieldSelector)) query.Append("&fieldSelector=").Append(Uri.EscapeDataString(fieldSelector));
        if (!string.IsNullOrEmpty(continueToken)) query.Append("&continue=").Append(Uri.EscapeDataString(continueToken));
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.RequestTimeout);
        using var response = await SendAsync(query.ToString(), timeout.Token).ConfigureAwait(false);
        var body = await ReadBoundedAsync(response.Content, _options.MaxListResponseBytes, timeout.Token).ConfigureAwait(false)
            ?? throw new KubeApiException($"pod list response larger than {_options.MaxListResponseBytes} bytes");
        RawPodList? list;
        try { list = JsonSerializer.Deserialize(body, KubeJsonContext.Default.RawPodList); }
        catch (JsonException e) { throw new KubeApiException($"pod list is not valid JSON: {e.Message}", e); }
        if (list?.Metadata?.ResourceVersion is not { Length: > 0 } rv) throw new KubeApiException("pod list has no metadata.resourceVersion");
        return new PodListPage(rv, string.IsNullOrEmpty(list.Metadata.Continue) ? null : list.Metadata.Continue, list.Items ?? []);
    }

    /// <summary>
    /// One page of pods in <paramref name="namespace"/> (all namespaces when null) matching a label selector
    /// (<c>app.kubernetes.io/name=ebpf-agent</c>) and a field selector (<c>spec.nodeName=node-a</c>).
    /// </summary>
    public async Task<PodListPage> ListPodsAsync(string? @namespace, string? labelSelector, string? fieldSelector, int limit,
        string? continueToken, CancellationToken cancellationToken)
    {
        var query = new StringBuilder(@namespace is null ? "/api/v1/pods" : $"/api/v1/namespaces/{Uri.EscapeDataString(@namespace)}/pods")
            .Append("?limit=").Append(limit);
        if (!string.IsNullOrEmpty(labelSelector)) query.Append("&labelSelector=").Append(Uri.EscapeDataString(labelSelector));
        if (!string.IsNullOrEmpty(fieldSelector)) query.Append("&fieldSelector=").Append(Uri.EscapeDataString(fieldSelector));
        if (!string.IsNullOrEmpty(continueToken)) query.Append("&continue=").Append(Uri.EscapeDataString(continueToken));
        return await ListAsync(query.ToString(), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>One pod, or null when the API server answers 404 (no such pod).</summary>
    public async Task<JsonElement?> GetPodAsync(string @namespace, string name, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.RequestTimeout);
        HttpResponseMessage response;
        try
        {
            response = await SendAsync($"/api/v1/namespaces/{Uri.EscapeDataString(@namespace)}/pods/{Uri.EscapeDataString(name)}", timeout.Token).ConfigureAwait(false);
        }
        catch (KubeApiException e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
        using (response)
        {
            var body = await ReadBoundedAsync(response.Content, _options.MaxErrorBodyBytes * 16, timeout.Token).ConfigureAwait(false)
                ?? throw new KubeApiException($"pod {@namespace}/{name} response larger than {_options.MaxErrorBodyBytes * 16} bytes");
            try
            {
                using var doc = JsonDocument.Parse(body);
                return doc.RootElement.Clone();
            }
            catch (JsonException e) { throw new KubeApiException($"pod {@namespace}/{name} is not valid JSON: {e.Message}", e); }
        }
    }

    private async Task<PodListPage> ListAsync(string pathAndQuery, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.RequestTimeout);
        using var response = await SendAsync(pathAndQuery, timeout.Token).ConfigureAwait(false);
        var body = await ReadBoundedAsync(response.Content, _options.MaxListResponseBytes, timeout.Token).ConfigureAwait(false)
            ?? throw new KubeApiException($"pod list response larger than {_options.MaxListResponseBytes} bytes");
        RawPodList? list;
        try { list = JsonSerializer.Deserialize(body, KubeJsonContext.Default.RawPodList); }
        catch (JsonException e) { throw new KubeApiException($"pod list is not valid JSON: {e.Message}", e); }
        if (list?.Metadata?.ResourceVersion is not { Length: > 0 } rv) throw new KubeApiException("pod list has no metadata.resourceVersion");
        return new PodListPage(rv, string.IsNullOrEmpty(list.Metadata.Continue) ? null : list.Metadata.Continue, list.Items ?? []);
    }

    /// <summary>Opens a pod watch from <paramref name="resourceVersion"/>; the caller reads newline-delimited events from the stream.</summary>
    public async Task<Stream> WatchPodsAsync(string? fieldSelector, string resourceVersion, int timeoutSeconds, CancellationToken cancellationToken)
    {
        var query = new StringBuilder("/api/v1/pods?watch=true&allowWatchBookmarks=true&resourceVersion=")
            .Append(Uri.EscapeDataString(resourceVersion)).Append("&timeoutSeconds=").Append(timeoutSeconds);
        if (!string.IsNullOrEmpty(fieldSelector)) query.Append("&fieldSelector=").Append(Uri.EscapeDataString(fieldSelector));
        using var connect = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        connect.CancelAfter(_options.RequestTimeout);
        var response = await SendAsync(query.ToString(), connect.Token).ConfigureAwait(false);
        try
        {
            return await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            response.Dispose();
            throw;
        }
    }

    private async Task<HttpResponseMessage> SendAsync(string pathAndQuery, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, pathAndQuery);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        if (_token.GetToken() is { } token) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        if (response.IsSuccessStatusCode) return response;
        using (response)
        {
            var body = await ReadBoundedAsync(response.Content, _options.MaxErrorBodyBytes, cancellationToken).ConfigureAwait(false);
            Status? status = null;
            if (body is not null)
            {
                try { status = JsonSerializer.Deserialize(body, KubeJsonContext.Default.Status); }
                catch (JsonException) { /* not a Status: report the HTTP status alone */ }
            }
            string hint = response.StatusCode switch
            {
                HttpStatusCode.Unauthorized => " (the bearer token or client certificate was rejected)",
                HttpStatusCode.Forbidden => " (RBAC: the service account needs list/watch on pods)",
                _ => "",
            };
            throw new KubeApiException(response.StatusCode, status,
                $"GET {pathAndQuery} failed: {(int)response.StatusCode} {response.ReasonPhrase}{hint}{(status?.Message is { } m ? ": " + m : "")}");
        }
    }

    /// <summary>The body, or null when it is longer than <paramref name="maxBytes"/>.</summary>
    private static async Task<byte[]?> ReadBoundedAsync(HttpContent content, int maxBytes, CancellationToken cancellationToken)
    {
        if (content.Headers.ContentLength > maxBytes) return null;
        await using var stream = await content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await stream.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
        {
            if (buffer.Length + read > maxBytes) return null;
            buffer.Write(chunk, 0, read);
        }
        return buffer.ToArray();
    }

    public void Dispose() => _http.Dispose();
}
