using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.IO.Compression;
using System.Text;

namespace Ebpf.Api.Grpc;

/// <summary>
/// The wire rules of gRPC over HTTP/2 (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md),
/// shared by the server and the client.
/// </summary>
public static class GrpcProtocol
{
    public const string ContentType = "application/grpc";
    public const string StatusHeader = "grpc-status";
    public const string MessageHeader = "grpc-message";
    public const string TimeoutHeader = "grpc-timeout";
    public const string EncodingHeader = "grpc-encoding";
    public const string AcceptEncodingHeader = "grpc-accept-encoding";
    public const string SupportedEncodings = "identity,gzip";

    /// <summary>1-byte compressed flag + 4-byte big-endian length.</summary>
    public const int FrameHeaderSize = 5;

    /// <summary>Defaults to 4 MiB, the limit every gRPC implementation uses for received messages.</summary>
    public const int DefaultMaxReceiveMessageSize = 4 * 1024 * 1024;

    /// <summary>
    /// True for <c>application/grpc</c> and <c>application/grpc+proto</c> (with optional parameters). Other
    /// sub-types (<c>+json</c>) are a different codec, which we do not speak.
    /// </summary>
    public static bool IsGrpcContentType(string? contentType)
    {
        if (string.IsNullOrEmpty(contentType) || !contentType.StartsWith(ContentType, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        var rest = contentType.AsSpan(ContentType.Length);
        var semicolon = rest.IndexOf(';');
        if (semicolon >= 0)
        {
            rest = rest[..semicolon];
        }

        rest = rest.Trim();
        return rest.IsEmpty || rest.Equals("+proto", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>
    /// Parses a <c>grpc-timeout</c> value: at most 8 ASCII digits and a unit (H M S m u n). Returns false for anything else.
    /// </summary>
    public static bool TryParseTimeout(string? value, out TimeSpan timeout)
    {
        timeout = default;
        if (string.IsNullOrEmpty(value) || value.Length < 2 || value.Length > 9)
        {
            return false;
        }

        var digits = value.AsSpan(0, value.Length - 1);
        foreach (var c in digits)
        {
            if (c is < '0' or > '9')
            {
                return false;
            }
        }

        var amount = long.Parse(digits, NumberStyles.None, CultureInfo.InvariantCulture);
        long ticks;
        switch (value[^1])
        {
            case 'H': ticks = amount * TimeSpan.TicksPerHour; break;
            case 'M': ticks = amount * TimeSpan.TicksPerMinute; break;
            case 'S': ticks = amount * TimeSpan.TicksPerSecond; break;
            case 'm': ticks = amount * TimeSpan.TicksPerMillisecond; break;
            case 'u': ticks = amount * TimeSpan.TicksPerMicrosecond; break;
            // One tick is 100 ns; a non-zero nanosecond timeout must not round down to "no time at all".
            case 'n': ticks = amount == 0 ? 0 : Math.Max(1, amount / 100); break;
            default: return false;
        }

        timeout = TimeSpan.FromTicks(ticks);
        return true;
    }

    /// <summary>Formats a timeout with the finest unit that keeps the value within the 8 digits the protocol allows.</summary>
    public static string FormatTimeout(TimeSpan timeout)
    {
        if (timeout <= TimeSpan.Zero)
        {
            return "1n";
        }

        const long MaxDigits = 99_999_999;
        var ticks = timeout.Ticks;
        if (ticks <= MaxDigits / 100) { return (ticks * 100).ToString(CultureInfo.InvariantCulture) + "n"; }
        if (ticks / TimeSpan.TicksPerMicrosecond <= MaxDigits) { return Ceiling(ticks, TimeSpan.TicksPerMicrosecond) + "u"; }
        if (ticks / TimeSpan.TicksPerMillisecond <= MaxDigits) { return Ceiling(ticks, TimeSpan.TicksPerMillisecond) + "m"; }
        if (ticks / TimeSpan.TicksPerSecond <= MaxDigits) { return Ceiling(ticks, TimeSpan.TicksPerSecond) + "S"; }
        if (ticks / TimeSpan.TicksPerMinute <= MaxDigits) { return Ceiling(ticks, TimeSpan.TicksPerMinute) + "M"; }
        return Math.Min(MaxDigits, (ticks + TimeSpan.TicksPerHour - 1) / TimeSpan.TicksPerHour).ToString(CultureInfo.InvariantCulture) + "H";

        static string Ceiling(long ticks, long unit) => ((ticks + unit - 1) / unit).ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Percent-encodes a status message: the protocol allows only printable ASCII except '%' unencoded; everything
    /// else is UTF-8 then %XX.
    /// </summary>
    public static string EncodeMessage(string message)
    {
        var needs = false;
        foreach (var c in message)
        {
            if (c is < ' ' or > '~' or '%')
            {
                needs = true;
                break;
            }
        }

        if (!needs)
        {
            return message;
        }

        var bytes = Encoding.UTF8.GetBytes(message);
        var builder = new StringBuilder(bytes.Length * 3);
        foreach (var b in bytes)
        {
            if (b is < 0x20 or > 0x7E or (byte)'%')
            {
                builder.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
            else
            {
                builder.Append((char)b);
            }
        }

        return builder.ToString();
    }

    /// <summary>Reverses <see cref="EncodeMessage"/>; malformed escapes are kept literally, as the protocol asks.</summary>
    public static string DecodeMessage(string? encoded)
    {
        if (string.IsNullOrEmpty(encoded) || !encoded.Contains('%', StringComparison.Ordinal))
        {
            return encoded ?? string.Empty;
        }

        var bytes = new List<byte>(encoded.Length);
        for (var i = 0; i < encoded.Length; i++)
        {
            var c = encoded[i];
            if (c == '%' && i + 2 < encoded.Length &&
                byte.TryParse(encoded.AsSpan(i + 1, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var b))
            {
                bytes.Add(b);
                i += 2;
            }
            else
            {
                bytes.AddRange(Encoding.UTF8.GetBytes(c.ToString()));
            }
        }

        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    /// <summary>Writes a 5-byte frame header for an uncompressed message of <paramref name="length"/> bytes.</summary>
    public static void WriteFrameHeader(Span<byte> destination, int length, bool compressed = false)
    {
        destination[0] = compressed ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteUInt32BigEndian(destination[1..], (uint)length);
    }

    /// <summary>Reads at most <paramref name="maxSize"/> bytes of gzip-decompressed payload.</summary>
    internal static byte[] Gunzip(ReadOnlySequence<byte> compressed, int maxSize)
    {
        using var input = new MemoryStream(compressed.ToArray(), writable: false);
        using var gzip = new GZipStream(input, CompressionMode.Decompress);
        using var output = new MemoryStream();
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            int read;
            while ((read = gzip.Read(buffer, 0, buffer.Length)) > 0)
            {
                if (output.Length + read > maxSize)
                {
                    throw new GrpcStatusException(StatusCode.ResourceExhausted,
                        $"Received message larger than max ({maxSize} bytes) after decompression.");
                }

                output.Write(buffer, 0, read);
            }
        }
        catch (InvalidDataException ex)
        {
            throw new GrpcStatusException(StatusCode.Internal, "Could not decompress the gzip message.", ex);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        return output.ToArray();
    }
}
