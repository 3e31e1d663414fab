using System.Globalization;

namespace Ebpf.Cli.Commands;

/// <summary>
/// --since / --until / --timeout values: a relative duration ("90s", "30m", "1h", "2d", "1h30m") or, for points in
/// time, an RFC 3339 timestamp ("2026-11-20T09:00:00Z"). Durations count back from now.
/// </summary>
public static class TimeArgument
{
    /// <summary>Parses a duration made of number+unit pairs (s, m, h, d); the whole text must be consumed.</summary>
    public static bool TryParseDuration(string? text, out TimeSpan duration)
    {
        duration = TimeSpan.Zero;
        if (string.IsNullOrWhiteSpace(text)) return false;
        var span = text.AsSpan().Trim();
        long totalSeconds = 0;
        while (span.Length > 0)
        {
            int digits = 0;
            while (digits < span.Length && char.IsAsciiDigit(span[digits])) digits++;
            if (digits == 0 || digits == span.Length || digits > 9) return false;
            long number = long.Parse(span[..digits], NumberStyles.None, CultureInfo.InvariantCulture);
            long unit = span[digits] switch { 's' => 1, 'm' => 60, 'h' => 3600, 'd' => 86400, _ => 0 };
            if (unit == 0) return false;
            totalSeconds += number * unit;
            // Beyond ~100 years nothing is stored anyway; refusing keeps TimeSpan and timestamps in range.
            if (totalSeconds > 100L * 365 * 86400) return false;
            span = span[(digits + 1)..];
        }
        duration = TimeSpan.FromSeconds(totalSeconds);
        return true;
    }

    /// <summary>A point in time: <paramref name="now"/> minus a duration, or an RFC 3339 timestamp with an offset or Z.</summary>
    public static bool TryParsePoint(string? text, DateTimeOffset now, out DateTimeOffset point, out string error)
    {
        point = default;
        error = "";
        if (TryParseDuration(text, out var ago))
        {
            point = now - ago;
            return true;
        }
        // RFC 3339 requires the offset: a timestamp without one is ambiguous between the laptop's and the node's zone.
        string[] formats = ["yyyy-MM-dd'T'HH:mm:ssK", "yyyy-MM-dd'T'HH:mm:ss.FFFFFFFK"];
        if (text is not null && (text.EndsWith('Z') || text.EndsWith("z", StringComparison.Ordinal) || HasOffset(text))
            && DateTimeOffset.TryParseExact(text.ToUpperInvariant(), formats, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out point))
        {
            return true;
        }
        error = $"'{text}' is neither a duration (90s, 30m, 1h, 2d, 1h30m) nor an RFC 3339 time (2026-11-20T09:00:00Z)";
        return false;
    }

    private static bool HasOffset(string text) =>
        text.Length > 6 && (text[^6] is '+' or '-') && text[^3] == ':';
}
