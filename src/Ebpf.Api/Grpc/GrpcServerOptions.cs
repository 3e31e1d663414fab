namespace Ebpf.Api.Grpc;

/// <summary>Server-side limits and authentication for the gRPC endpoints.</summary>
public sealed class GrpcServerOptions
{
    /// <summary>Largest request message accepted (after decompression). Defaults to 4 MiB.</summary>
    public int MaxReceiveMessageSize { get; set; } = GrpcProtocol.DefaultMaxReceiveMessageSize;

    /// <summary>
    /// When set, every call must carry <c>authorization: Bearer &lt;token&gt;</c>; others end with UNAUTHENTICATED.
    /// Defaults to null (no token required).
    /// </summary>
    public string? BearerToken { get; set; }

    /// <summary>Clock for deadlines. Defaults to <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    internal void Validate()
    {
        if (MaxReceiveMessageSize <= 0)
        {
            throw new InvalidOperationException($"{nameof(MaxReceiveMessageSize)} must be positive (was {MaxReceiveMessageSize}).");
        }

        if (BearerToken is { Length: 0 })
        {
            throw new InvalidOperationException($"{nameof(BearerToken)} must be null or non-empty.");
        }
    }
}
