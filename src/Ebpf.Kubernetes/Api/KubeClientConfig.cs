using System.Security.Cryptography.X509Certificates;
using YamlDotNet.Serialization;
using YamlDotNet.Serialization.NamingConventions;

namespace Ebpf.Kubernetes.Api;

/// <summary>
/// How to reach and authenticate to the API server: from the pod's service account (<see cref="InCluster"/>)
/// or from a kubeconfig file (<see cref="FromKubeconfig"/>). Exec credential plugins and auth providers are not
/// supported and fail with a clear message.
/// </summary>
public sealed class KubeClientConfig
{
    public const string ServiceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount";

    public required Uri Server { get; init; }
    /// <summary>Trusted CA certificates for the server; empty: the system store.</summary>
    public X509Certificate2Collection CaCertificates { get; init; } = [];
    public bool InsecureSkipTlsVerify { get; init; }
    /// <summary>A fixed bearer token (kubeconfig <c>token</c>).</summary>
    public string? Token { get; init; }
    /// <summary>A token file re-read periodically (bound service-account tokens rotate).</summary>
    public string? TokenFile { get; init; }
    public X509Certificate2? ClientCertificate { get; init; }
    /// <summary>The namespace of the kubeconfig context (null when it sets none, and in-cluster).</summary>
    public string? Namespace { get; init; }

    /// <summary>True when running in a pod with a service account token and the service env variables.</summary>
    public static bool IsInCluster(string serviceAccountDirectory = ServiceAccountDirectory, Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        return !string.IsNullOrEmpty(environment("KUBERNETES_SERVICE_HOST")) && !string.IsNullOrEmpty(environment("KUBERNETES_SERVICE_PORT"))
            && File.Exists(Path.Combine(serviceAccountDirectory, "token"));
    }

    /// <summary>
    /// The in-cluster configuration as client-go's rest.InClusterConfig builds it: https://KUBERNETES_SERVICE_HOST:PORT,
    /// the service account's ca.crt and its token file.
    /// </summary>
    public static KubeClientConfig InCluster(string serviceAccountDirectory = ServiceAccountDirectory, Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        string? host = environment("KUBERNETES_SERVICE_HOST"), port = environment("KUBERNETES_SERVICE_PORT");
        if (string.IsNullOrEmpty(host) || string.IsNullOrEmpty(port))
            throw new KubeConfigException("not in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set");
        string tokenFile = Path.Combine(serviceAccountDirectory, "token");
        if (!File.Exists(tokenFile)) throw new KubeConfigException($"not in a cluster: no service account token at {tokenFile}");
        // IPv6 service hosts need brackets in the URI.
        string authority = host.Contains(':', StringComparison.Ordinal) ? $"[{host}]:{port}" : $"{host}:{port}";
        if (!Uri.TryCreate($"https://{authority}", UriKind.Absolute, out var server))
            throw new KubeConfigException($"invalid KUBERNETES_SERVICE_HOST/PORT: {host}:{port}");
        var caFile = Path.Combine(serviceAccountDirectory, "ca.crt");
        return new KubeClientConfig
        {
            Server = server,
            TokenFile = tokenFile,
            CaCertificates = File.Exists(caFile) ? LoadPemCertificates(File.ReadAllText(caFile), caFile) : [],
        };
    }

    /// <summary>Reads a kubeconfig: the named context, else current-context. Relative file paths are relative to the kubeconfig.</summary>
    public static KubeClientConfig FromKubeconfig(string path, string? context = null)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new KubeConfigException($"cannot read kubeconfig {path}: {e.Message}", e); }
        return ParseKubeconfig(text, Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".", context, path);
    }

    public static KubeClientConfig ParseKubeconfig(string yaml, string baseDirectory, string? context = null, string source = "kubeconfig")
    {
        KubeconfigFile file;
        try
        {
            var deserializer = new DeserializerBuilder().WithNamingConvention(HyphenatedNamingConvention.Instance).IgnoreUnmatchedProperties().Build();
            file = deserializer.Deserialize<KubeconfigFile?>(yaml) ?? throw new KubeConfigException($"{source}: empty");
        }
        catch (YamlDotNet.Core.YamlException e)
        {
            throw new KubeConfigException($"{source}: invalid YAML at {e.Start}: {e.InnerException?.Message ?? e.Message}", e);
        }

        string contextName = context ?? file.CurrentContext ?? throw new KubeConfigException($"{source}: no current-context and no context given");
        var ctx = file.Contexts?.FirstOrDefault(c => c.Name == contextName)?.Context
            ?? throw new KubeConfigException($"{source}: context '{contextName}' not found");
        var cluster = file.Clusters?.FirstOrDefault(c => c.Name == ctx.Cluster)?.Cluster
            ?? throw new KubeConfigException($"{source}: cluster '{ctx.Cluster}' of context '{contextName}' not found");
        var user = ctx.User is null ? null : file.Users?.FirstOrDefault(u => u.Name == ctx.User)?.User
            ?? throw new KubeConfigException($"{source}: user '{ctx.User}' of context '{contextName}' not found");

        if (user?.Exec is not null)
            throw new KubeConfigException($"{source}: user '{ctx.User}' uses an exec credential plugin ({user.Exec.Command}); exec plugins are not supported, use a token, token file or client certificate");
        if (user?.AuthProvider is not null)
            throw new KubeConfigException($"{source}: user '{ctx.User}' uses an auth-provider; not supported, use a token, token file or client certificate");
        if (string.IsNullOrEmpty(cluster.Server) || !Uri.TryCreate(cluster.Server, UriKind.Absolute, out var server))
            throw new KubeConfigException($"{source}: cluster '{ctx.Cluster}' has no valid server");

        X509Certificate2Collection ca = [];
        if (!string.IsNullOrEmpty(cluster.CertificateAuthorityData)) ca = LoadPemCertificates(DecodeBase64(cluster.CertificateAuthorityData, "certificate-authority-data", source), source);
        else if (!string.IsNullOrEmpty(cluster.CertificateAuthority)) ca = LoadPemCertificates(ReadRelative(baseDirectory, cluster.CertificateAuthority, source), cluster.CertificateAuthority);

        X509Certificate2? clientCert = null;
        string? certPem = !string.IsNullOrEmpty(user?.ClientCertificateData) ? DecodeBase64(user.ClientCertificateData, "client-certificate-data", source)
            : !string.IsNullOrEmpty(user?.ClientCertificate) ? ReadRelative(baseDirectory, user.ClientCertificate, source) : null;
        string? keyPem = !string.IsNullOrEmpty(user?.ClientKeyData) ? DecodeBase64(user.ClientKeyData, "client-key-data", source)
            : !string.IsNullOrEmpty(user?.ClientKey) ? ReadRelative(baseDirectory, user.ClientKey, source) : null;
        if (certPem is not null || keyPem is not null)
        {
            if (certPem is null || keyPem is null) throw new KubeConfigException($"{source}: user '{ctx.User}' needs both a client certificate and a client key");
            try { clientCert = X509Certificate2.CreateFromPem(certPem, keyPem); }
            catch (System.Security.Cryptography.CryptographicException e) { throw new KubeConfigException($"{source}: invalid client certificate or key: {e.Message}", e); }
        }

        return new KubeClientConfig
        {
            Server = server,
            CaCertificates = ca,
            InsecureSkipTlsVerify = cluster.InsecureSkipTlsVerify,
            Token = string.IsNullOrEmpty(user?.Token) ? null : user.Token,
            TokenFile = string.IsNullOrEmpty(user?.TokenFile) ? null : Path.Combine(baseDirectory, user.TokenFile),
            ClientCertificate = clientCert,
            Namespace = string.IsNullOrEmpty(ctx.Namespace) ? null : ctx.Namespace,
        };
    }

    private static string ReadRelative(string baseDirectory, string file, string source)
    {
        var full = Path.Combine(baseDirectory, file);
        try { return File.ReadAllText(full); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new KubeConfigException($"{source}: cannot read {full}: {e.Message}", e); }
    }

    private static string DecodeBase64(string data, string field, string source)
    {
        try { return System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(data)); }
        catch (FormatException e) { throw new KubeConfigException($"{source}: {field} is not valid base64", e); }
    }

    private static X509Certificate2Collection LoadPemCertificates(string pem, string source)
    {
        var collection = new X509Certificate2Collection();
        try { collection.ImportFromPem(pem); }
        catch (System.Security.Cryptography.CryptographicException e) { throw new KubeConfigException($"{source}: invalid CA certificate: {e.Message}", e); }
        if (collection.Count == 0) throw new KubeConfigException($"{source}: no PEM certificate found");
        return collection;
    }

    // kubeconfig schema (k8s.io/client-go/tools/clientcmd/api/v1/types.go): only the fields we use.
    private sealed class KubeconfigFile
    {
        public string? CurrentContext { get; set; }
        public List<NamedCluster>? Clusters { get; set; }
        public List<NamedContext>? Contexts { get; set; }
        public List<NamedUser>? Users { get; set; }
    }

    private sealed class NamedCluster { public string? Name { get; set; } public ClusterEntry? Cluster { get; set; } }
    private sealed class NamedContext { public string? Name { get; set; } public ContextEntry? Context { get; set; } }
    private sealed class NamedUser { public string? Name { get; set; } public UserEntry? User { get; set; } }

    private sealed class ClusterEntry
    {
        public string? Server { get; set; }
        public string? CertificateAuthority { get; set; }
        public string? CertificateAuthorityData { get; set; }
        public bool InsecureSkipTlsVerify { get; set; }
    }

    private sealed class ContextEntry
    {
        public string? Cluster { get; set; }
        public string? User { get; set; }
        public string? Namespace { get; set; }
    }

    private sealed class UserEntry
    {
        public string? Token { get; set; }
        public string? TokenFile { get; set; }
        public string? ClientCertificate { get; set; }
        public string? ClientCertificateData { get; set; }
        public string? ClientKey { get; set; }
        public string? ClientKeyData { get; set; }
        public ExecConfig? Exec { get; set; }
        public Dictionary<string, object>? AuthProvider { get; set; }
    }

    private sealed class ExecConfig
    {
        public string? Command { get; set; }
    }
}

public sealed class KubeConfigException : Exception
{
    public KubeConfigException(string message) : base(message) { }
    public KubeConfigException(string message, Exception inner) : base(message, inner) { }
}
