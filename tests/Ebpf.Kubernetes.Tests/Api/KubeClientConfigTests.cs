using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Ebpf.Kubernetes.Api;

namespace Ebpf.Kubernetes.Tests.Api;

public sealed class KubeClientConfigTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ebpf-kubeconfig-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (string CertPem, string KeyPem) NewCertificate(string subject)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var cert = new CertificateRequest("CN=" + subject, key, HashAlgorithmName.SHA256)
            .CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        return (cert.ExportCertificatePem(), key.ExportPkcs8PrivateKeyPem());
    }

    private static string B64(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));

    private string Kubeconfig(string users, string current = "prod", string clusterExtra = "") => $"""
        apiVersion: v1
        kind: Config
        preferences: {"{}"}
        current-context: {current}
        clusters:
        - name: prod-cluster
          cluster:
            server: https://10.0.0.1:6443{clusterExtra}
        - name: dev-cluster
          cluster:
            server: https://dev.example:443
            insecure-skip-tls-verify: true
        contexts:
        - name: prod
          context: {"{"}cluster: prod-cluster, user: alice, namespace: kube-system{"}"}
        - name: dev
          context:
            cluster: dev-cluster
            user: bob
        users:
        {users}
        """;

    [Fact]
    public void ParseKubeconfig_CurrentContextWithTokenAndCaData_ReadsServerCaAndToken()
    {
        var (ca, _) = NewCertificate("cluster-ca");
        var yaml = Kubeconfig("- name: alice\n  user:\n    token: s3cr3t\n- name: bob\n  user:\n    token: other",
            clusterExtra: "\n    certificate-authority-data: " + B64(ca));
        var config = KubeClientConfig.ParseKubeconfig(yaml, _dir);
        Assert.Equal(new Uri("https://10.0.0.1:6443"), config.Server);
        Assert.Equal("s3cr3t", config.Token);
        Assert.Equal("CN=cluster-ca", Assert.Single(config.CaCertificates).Subject);
        Assert.False(config.InsecureSkipTlsVerify);
    }

    [Fact]
    public void ParseKubeconfig_NamedContextInsecureWithTokenFile_ResolvesRelativeFile()
    {
        var yaml = Kubeconfig("- name: alice\n  user:\n    token: a\n- name: bob\n  user:\n    tokenFile: ignored\n    token-file: tokens/bob");
        var config = KubeClientConfig.ParseKubeconfig(yaml, _dir, context: "dev");
        Assert.Equal(new Uri("https://dev.example:443"), config.Server);
        Assert.True(config.InsecureSkipTlsVerify);
        Assert.Equal(Path.Combine(_dir, "tokens/bob"), config.TokenFile);
        Assert.Null(config.Token);
    }

    [Fact]
    public void FromKubeconfig_ClientCertificateDataAndFiles_LoadsCertificateWithKey()
    {
        var (cert, key) = NewCertificate("alice");
        var withData = Kubeconfig($"- name: alice\n  user:\n    client-certificate-data: {B64(cert)}\n    client-key-data: {B64(key)}\n- name: bob\n  user: {"{}"}");
        Assert.True(KubeClientConfig.ParseKubeconfig(withData, _dir).ClientCertificate!.HasPrivateKey);

        File.WriteAllText(Path.Combine(_dir, "alice.crt"), cert);
        File.WriteAllText(Path.Combine(_dir, "alice.key"), key);
        File.WriteAllText(Path.Combine(_dir, "ca.crt"), NewCertificate("file-ca").CertPem);
        var withFiles = Kubeconfig("- name: alice\n  user:\n    client-certificate: alice.crt\n    client-key: alice.key\n- name: bob\n  user: {}",
            clusterExtra: "\n    certificate-authority: ca.crt");
        var path = Path.Combine(_dir, "config");
        File.WriteAllText(path, withFiles);
        var config = KubeClientConfig.FromKubeconfig(path);
        Assert.Equal("CN=alice", config.ClientCertificate!.Subject);
        Assert.True(config.ClientCertificate.HasPrivateKey);
        Assert.Equal("CN=file-ca", config.CaCertificates[0].Subject);
    }

    [Theory]
    [InlineData("- name: alice\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: aws\n      args: [eks, get-token]", "exec plugins are not supported")]
    [InlineData("- name: alice\n  user:\n    auth-provider:\n      name: gcp", "auth-provider")]
    [InlineData("- name: alice\n  user:\n    client-certificate-data: QUJD", "both a client certificate and a client key")]
    [InlineData("- name: alice\n  user:\n    client-certificate-data: '%%%'\n    client-key-data: QUJD", "not valid base64")]
    [InlineData("- name: carol\n  user: {}", "user 'alice' of context 'prod' not found")]
    public void ParseKubeconfig_Unsupported_ThrowsClearError(string users, string message)
    {
        var e = Assert.Throws<KubeConfigException>(() => KubeClientConfig.ParseKubeconfig(Kubeconfig(users), _dir));
        Assert.Contains(message, e.Message);
    }

    [Theory]
    [InlineData("current-context: nope\nclusters: []\ncontexts: []\nusers: []", "context 'nope' not found")]
    [InlineData("clusters: [", "invalid YAML")]
    [InlineData("", "empty")]
    [InlineData("kind: Config", "no current-context")]
    public void ParseKubeconfig_Broken_ThrowsClearError(string yaml, string message)
    {
        var e = Assert.Throws<KubeConfigException>(() => KubeClientConfig.ParseKubeconfig(yaml, _dir));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void FromKubeconfig_MissingFile_ThrowsClearError()
    {
        var e = Assert.Throws<KubeConfigException>(() => KubeClientConfig.FromKubeconfig(Path.Combine(_dir, "missing")));
        Assert.Contains("cannot read kubeconfig", e.Message);
    }

    [Fact]
    public void InCluster_ServiceAccountFilesAndEnv_BuildsHttpsConfig()
    {
        File.WriteAllText(Path.Combine(_dir, "token"), "tok-1\n");
        File.WriteAllText(Path.Combine(_dir, "ca.crt"), NewCertificate("kube-ca").CertPem);
        var env = new Dictionary<string, string> { ["KUBERNETES_SERVICE_HOST"] = "10.96.0.1", ["KUBERNETES_SERVICE_PORT"] = "443" };
        Assert.True(KubeClientConfig.IsInCluster(_dir, env.GetValueOrDefault));
        var config = KubeClientConfig.InCluster(_dir, env.GetValueOrDefault);
        Assert.Equal(new Uri("https://10.96.0.1:443"), config.Server);
        Assert.Equal(Path.Combine(_dir, "token"), config.TokenFile);
        Assert.Equal("CN=kube-ca", config.CaCertificates[0].Subject);

        env["KUBERNETES_SERVICE_HOST"] = "fd00:10:96::1";
        Assert.Equal("[fd00:10:96::1]", KubeClientConfig.InCluster(_dir, env.GetValueOrDefault).Server.Host);

        env.Remove("KUBERNETES_SERVICE_PORT");
        Assert.False(KubeClientConfig.IsInCluster(_dir, env.GetValueOrDefault));
        Assert.Contains("KUBERNETES_SERVICE_PORT", Assert.Throws<KubeConfigException>(() => KubeClientConfig.InCluster(_dir, env.GetValueOrDefault)).Message);
    }

    private sealed class ManualTime : TimeProvider
    {
        private long _ticks = 1;
        public override long TimestampFrequency => TimeSpan.TicksPerSecond;
        public override long GetTimestamp() => _ticks;
        public void Advance(TimeSpan by) => _ticks += by.Ticks;
    }

    [Fact]
    public void GetToken_TokenFileRotated_ReReadAfterRefreshInterval()
    {
        var file = Path.Combine(_dir, "token");
        File.WriteAllText(file, "first\n");
        var time = new ManualTime();
        var source = new BearerTokenSource(null, file, TimeSpan.FromMinutes(1), time);
        Assert.Equal("first", source.GetToken());

        // The kubelet rotates a projected token by swapping the ..data symlink; any new content counts.
        File.WriteAllText(file + ".new", "second");
        File.Move(file + ".new", file, overwrite: true);
        Assert.Equal("first", source.GetToken());
        time.Advance(TimeSpan.FromSeconds(61));
        Assert.Equal("second", source.GetToken());

        // A failed read keeps the last good token.
        File.Delete(file);
        time.Advance(TimeSpan.FromSeconds(61));
        Assert.Equal("second", source.GetToken());
    }
}
