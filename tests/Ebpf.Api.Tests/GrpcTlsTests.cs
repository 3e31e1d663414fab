using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Ebpf.Api.ExecTrace;
using Ebpf.Api.Grpc;
using Ebpf.Api.V1;

namespace Ebpf.Api.Tests;

/// <summary>TLS through <see cref="GrpcKestrelExtensions.ListenGrpc"/> with certificates minted per test run.</summary>
public sealed class GrpcTlsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ebpf-grpc-tls-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Tls_ClientTrustsCaFile_CallSucceeds()
    {
        var (ca, caKey) = CreateCa("ebpf-test-ca");
        var (certPath, keyPath) = Issue(ca, caKey, "server", server: true);
        var caPath = WritePem("ca.pem", ca);
        await using var server = await GrpcTestServer.StartAsync(listen: new GrpcListenOptions { CertificatePath = certPath, CertificateKeyPath = keyPath });
        using var client = new ExecTraceClient(new GrpcClientOptions { Address = server.Address, CertificateAuthorityPath = caPath });

        Assert.Equal("https", server.Address.Scheme);
        Assert.Equal("node-a", (await client.GetStatusAsync(new GetStatusRequest())).Node);
    }

    [Fact]
    public async Task Tls_ClientWithoutTrust_Unavailable()
    {
        var (ca, caKey) = CreateCa("ebpf-test-ca");
        var (certPath, keyPath) = Issue(ca, caKey, "server", server: true);
        await using var server = await GrpcTestServer.StartAsync(listen: new GrpcListenOptions { CertificatePath = certPath, CertificateKeyPath = keyPath });
        using var client = new ExecTraceClient(new GrpcClientOptions { Address = server.Address });

        var ex = await Assert.ThrowsAsync<GrpcStatusException>(() => client.GetStatusAsync(new GetStatusRequest()));
        Assert.Equal(StatusCode.Unavailable, ex.StatusCode);
    }

    [Fact]
    public async Task Tls_ClientCertificateRequired_OnlyCertifiedClientSucceeds()
    {
        var (ca, caKey) = CreateCa("ebpf-test-ca");
        var (certPath, keyPath) = Issue(ca, caKey, "server", server: true);
        var (clientCert, clientKey) = Issue(ca, caKey, "kubectl-exectrace", server: false);
        var caPath = WritePem("ca.pem", ca);
        await using var server = await GrpcTestServer.StartAsync(listen: new GrpcListenOptions
        {
            CertificatePath = certPath, CertificateKeyPath = keyPath, RequireClientCertificate = true, ClientCertificateAuthorityPath = caPath,
        });

        using var certified = new ExecTraceClient(new GrpcClientOptions
        {
            Address = server.Address, CertificateAuthorityPath = caPath, ClientCertificatePath = clientCert, ClientCertificateKeyPath = clientKey,
        });
        Assert.Equal("node-a", (await certified.GetStatusAsync(new GetStatusRequest())).Node);

        using var anonymous = new ExecTraceClient(new GrpcClientOptions { Address = server.Address, CertificateAuthorityPath = caPath });
        var ex = await Assert.ThrowsAsync<GrpcStatusException>(() => anonymous.GetStatusAsync(new GetStatusRequest()));
        Assert.Equal(StatusCode.Unavailable, ex.StatusCode);
    }

    [Fact]
    public void ListenGrpc_MissingCertificateFile_ClearError()
    {
        var options = new Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions();
        var ex = Assert.Throws<InvalidOperationException>(() => options.ListenGrpc(new GrpcListenOptions { CertificatePath = Path.Combine(_dir, "missing.pem") }));
        Assert.Contains("missing.pem", ex.Message, StringComparison.Ordinal);
    }

    private static (X509Certificate2 Cert, ECDsa Key) CreateCa(string name)
    {
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        return (cert, key);
    }

    private (string CertPath, string KeyPath) Issue(X509Certificate2 ca, ECDsa caKey, string name, bool server)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [server ? new Oid("1.3.6.1.5.5.7.3.1") : new Oid("1.3.6.1.5.5.7.3.2")], false));
        if (server)
        {
            var san = new SubjectAlternativeNameBuilder();
            san.AddIpAddress(IPAddress.Loopback);
            san.AddDnsName("localhost");
            request.CertificateExtensions.Add(san.Build());
        }

        var serial = RandomNumberGenerator.GetBytes(8);
        using var cert = request.Create(ca.SubjectName, X509SignatureGenerator.CreateForECDsa(caKey),
            DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1), serial);
        var certPath = WritePem(name + ".pem", cert);
        var keyPath = Path.Combine(_dir, name + ".key");
        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
        return (certPath, keyPath);
    }

    private string WritePem(string name, X509Certificate2 cert)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, cert.ExportCertificatePem());
        return path;
    }
}
