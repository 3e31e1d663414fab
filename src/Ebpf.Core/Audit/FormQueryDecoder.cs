using System.Text;

namespace Ebpf.Core.Audit;

/// <summary>
/// application/x-www-form-urlencoded query decoding with Go's net/url.ParseQuery rules, which is what the API server
/// used to read these parameters: '&amp;' separates pairs, ';' is rejected (Go 1.17+), '+' is a space, %XX is a byte,
/// a malformed escape is an error. Decoded bytes must be valid UTF-8 (we store and display them as text).
/// </summary>
public static class FormQueryDecoder
{
    /// <summary>Longest query accepted. Longer than any real argv the API server would accept in a URL.</summary>
    public const int MaxQueryLength = 64 * 1024;

    /// <summary>Most parameters accepted.</summary>
    public const int MaxParameters = 4096;

    /// <summary>Decodes <paramref name="query"/> (no leading '?') into <paramref name="into"/>; returns an error message or null.</summary>
    public static string? TryDecode(ReadOnlySpan<char> query, List<KeyValuePair<string, string>> into)
    {
        if (query.Length > MaxQueryLength)
        {
            return $"query longer than {MaxQueryLength} characters";
        }

        var buffer = new byte[query.Length];
        var position = 0;
        while (position <= query.Length)
        {
            var rest = query[position..];
            var amp = rest.IndexOf('&');
            var pair = amp < 0 ? rest : rest[..amp];
            var pairStart = position;
            position += pair.Length + 1;
            if (pair.IsEmpty)
            {
                if (amp < 0)
                {
                    break;
                }

                continue;
            }

            if (pair.Contains(';'))
            {
                return $"';' in query at offset {pairStart} (rejected by the API server's parser)";
            }

            if (into.Count >= MaxParameters)
            {
                return $"more than {MaxParameters} query parameters";
            }

            var eq = pair.IndexOf('=');
            var rawKey = eq < 0 ? pair : pair[..eq];
            var rawValue = eq < 0 ? ReadOnlySpan<char>.Empty : pair[(eq + 1)..];
            var key = Unescape(rawKey, buffer, pairStart, out var error);
            if (error is not null)
            {
                return error;
            }

            var value = Unescape(rawValue, buffer, pairStart + (eq < 0 ? 0 : eq + 1), out error);
            if (error is not null)
            {
                return error;
            }

            into.Add(new KeyValuePair<string, string>(key!, value!));
            if (amp < 0)
            {
                break;
            }
        }

        return null;
    }

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private static string? Unescape(ReadOnlySpan<char> s, byte[] buffer, int offset, out string? error)
    {
        error = null;
        var n = 0;
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            if (c == '%')
            {
                if (i + 2 >= s.Length)
                {
                    error = $"truncated %-escape at offset {offset + i}";
                    return null;
                }

                var hi = HexValue(s[i + 1]);
                var lo = HexValue(s[i + 2]);
                if (hi < 0 || lo < 0)
                {
                    error = $"invalid %-escape '{AuditStreamingRequest.Truncate(s.Slice(i, 3))}' at offset {offset + i}";
                    return null;
                }

                buffer[n++] = (byte)((hi << 4) | lo);
                i += 2;
            }
            else if (c == '+')
            {
                buffer[n++] = (byte)' ';
            }
            else if (c < 0x80)
            {
                buffer[n++] = (byte)c;
            }
            else
            {
                // A raw non-ASCII character cannot appear in a requestURI the API server logged (it logs the escaped form).
                error = $"unescaped non-ASCII character at offset {offset + i}";
                return null;
            }
        }

        try
        {
            return StrictUtf8.GetString(buffer, 0, n);
        }
        catch (DecoderFallbackException)
        {
            error = $"escaped bytes are not valid UTF-8 near offset {offset}";
            return null;
        }
    }

    private static int HexValue(char c) => c switch
    {
        >= '0' and <= '9' => c - '0',
        >= 'a' and <= 'f' => c - 'a' + 10,
        >= 'A' and <= 'F' => c - 'A' + 10,
        _ => -1,
    };
}
