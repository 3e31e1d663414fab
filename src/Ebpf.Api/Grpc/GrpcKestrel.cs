using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace Ebpf.Api.Grpc;

/// <summary>Where and how the gRPC endpoint listens.</summary>
public sealed class GrpcListenOptions
{
    /// <summary>Address to bind. Defaults to 127.0.0.1: the API is node-local unless deliberately exposed.</summary>
    public IPAddress Address { get; set; } = IPAddress.Loopback;

    /// <summary>TCP port; 0 picks a free one. Defaults to 50051.</summary>
    public int Port { get; set; } = 50051;

    /// <summary>Server certificate (PEM or PKCS#12). Defaults to null: plaintext HTTP/2 (h2c).</summary>
    public string? CertificatePath { get; set; }

    /// <summary>PEM private key for <see cref="CertificatePath"/>; null when the key is inside the certificate file. Defaults to null.</summary>
    public string? CertificateKeyPath { get; set; }

    /// <summary>Password for a PKCS#12 certificate. Defaults to null.</summary>
    public string? CertificatePassword { get; set; }

    /// <summary>Require a client certificate (mutual TLS). Only with TLS. Defaults to false.</summary>
    public bool RequireClientCertificate { get; set; }

    /// <summary>
    /// PEM bundle of CAs that client certificates must chain to. Defaults to null: the system trust store.
    /// </summary>
    public string? ClientCertificateAuthorityPath { get; set; }

    internal void Validate()
    {
        if (Port is < 0 or > 65535)
        {
            throw new InvalidOperationException($"gRPC port {Port} is out of range.");
        }

        if (CertificatePath is null && (RequireClientCertificate || CertificateKeyPath is not null || ClientCertificateAuthorityPath is not null))
        {
            throw new InvalidOperationException("Client certificates and key paths need TLS: set CertificatePath.");
        }

        foreach (var path in new[] { CertificatePath, CertificateKeyPath, ClientCertificateAuthorityPath })
        {
            if (path is not null && !File.Exists(path))
            {
                throw new InvalidOperationException($"gRPC TLS file '{path}' does not exist.");
            }
        }
    }
}

public static class GrpcKestrelExtensions
{
    /// <summary>
    /// Adds a listener that speaks HTTP/2 only: prior-knowledge h2c without a certificate, TLS with ALPN h2 when
    /// <see cref="GrpcListenOptions.CertificatePath"/> is set. Validates the options (clear message on a bad path).
    /// </summary>
    public static void ListenGrpc(this KestrelServerOptions kestrel, GrpcListenOptions options)
    {
        options.Validate();
        var certificate = options.CertificatePath is null ? null : LoadCertificate(options);
        var clientRoots = options.ClientCertificateAuthorityPath is null ? null : LoadBundle(options.ClientCertificateAuthorityPath);
        kestrel.Listen(options.Address, options.Port, listen =>
        {
            listen.Protocols = HttpProtocols.Http2;
            if (certificate is null)
            {
                return;
            }

            listen.UseHttps(https =>
            {
                https.ServerCertificate = certificate;
                if (options.RequireClientCertificate)
                {
                    https.ClientCertificateMode = ClientCertificateMode.RequireCertificate;
                    https.ClientCertificateValidation = (cert, _, errors) => ValidateClient(cert, errors, clientRoots);
                }
            });
        });
    }

    private static bool ValidateClient(X509Certificate2 certificate, SslPolicyErrors errors, X509Certificate2Collection? roots)
    {
        if (roots is null)
        {
            return errors == SslPolicyErrors.None;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(roots);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(certificate);
    }

    internal static X509Certificate2 LoadCertificate(GrpcListenOptions options)
    {
        var path = options.CertificatePath!;
        if (options.CertificateKeyPath is not null || path.EndsWith(".pem", StringComparison.OrdinalIgnoreCase) ||
            path.EndsWith(".crt", StringComparison.OrdinalIgnoreCase))
        {
            return X509Certificate2.CreateFromPemFile(path, options.CertificateKeyPath);
        }

        return X509CertificateLoader.LoadPkcs12FromFile(path, options.CertificatePassword);
    }

    internal static X509Certificate2Collection LoadBundle(string path)
    {
        var collection = new X509Certificate2Collection();
        collection.ImportFromPemFile(path);
        if (collection.Count == 0)
        {
            throw new InvalidOperationException($"'{path}' holds no PEM certificates.");
        }

        return collection;
    }
}
