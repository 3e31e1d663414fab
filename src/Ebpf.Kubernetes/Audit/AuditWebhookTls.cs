using Microsoft.AspNetCore.Hosting;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace Ebpf.Kubernetes.Audit;

/// <summary>HTTPS for the audit webhook: our server certificate, client certificates validated against a CA file.</summary>
public static class AuditWebhookTls
{
    /// <summary>
    /// Serves HTTPS on <paramref name="listenOptions"/> with <paramref name="serverCertificate"/>. Client certificates are
    /// validated against the CA certificates in <paramref name="clientCaPemFile"/> only (not the system store), must be
    /// within their validity period and, when they carry an EKU, allow client authentication.
    /// <paramref name="mode"/> RequireCertificate refuses the TLS handshake without one; AllowCertificate lets bearer-token
    /// clients in too.
    /// </summary>
    public static ListenOptions UseAuditWebhookHttps(this ListenOptions listenOptions, X509Certificate2 serverCertificate, string clientCaPemFile, ClientCertificateMode mode = ClientCertificateMode.RequireCertificate)
    {
        var authorities = new X509Certificate2Collection();
        authorities.ImportFromPemFile(clientCaPemFile);
        if (authorities.Count == 0)
        {
            throw new ArgumentException($"No CA certificate found in {clientCaPemFile}.", nameof(clientCaPemFile));
        }

        return listenOptions.UseAuditWebhookHttps(serverCertificate, authorities, mode);
    }

    /// <summary>As above, with the CA certificates given directly.</summary>
    public static ListenOptions UseAuditWebhookHttps(this ListenOptions listenOptions, X509Certificate2 serverCertificate, X509Certificate2Collection clientAuthorities, ClientCertificateMode mode = ClientCertificateMode.RequireCertificate)
    {
        return listenOptions.UseHttps(new HttpsConnectionAdapterOptions
        {
            ServerCertificate = serverCertificate,
            ClientCertificateMode = mode,
            CheckCertificateRevocation = false,
            ClientCertificateValidation = (certificate, _, _) => IsTrustedClient(certificate, clientAuthorities),
        });
    }

    /// <summary>True when <paramref name="certificate"/> chains to one of <paramref name="authorities"/> and may authenticate clients.</summary>
    public static bool IsTrustedClient(X509Certificate2 certificate, X509Certificate2Collection authorities)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(authorities);
        // Cluster CAs publish no CRL/OCSP endpoints; revocation is handled by rotating the CA or short lifetimes.
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.ApplicationPolicy.Add(new System.Security.Cryptography.Oid("1.3.6.1.5.5.7.3.2"));
        return chain.Build(certificate);
    }
}
