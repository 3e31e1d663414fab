using Ebpf.Cli.Commands;

namespace Ebpf.Cli.Tests.Commands;

public sealed class TimeArgumentTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 22, 12, 0, 0, TimeSpan.Zero);

    [Theory]
    [InlineData("90s", 90)]
    [InlineData("30m", 1800)]
    [InlineData("1h", 3600)]
    [InlineData("2d", 172800)]
    [InlineData("1h30m", 5400)]
    [InlineData(" 10s ", 10)]
    [InlineData("0s", 0)]
    public void TryParseDuration_Units_Seconds(string text, int seconds)
    {
        Assert.True(TimeArgument.TryParseDuration(text, out var duration));
        Assert.Equal(TimeSpan.FromSeconds(seconds), duration);
    }

    [Theory]
    [InlineData("")]
    [InlineData(null)]
    [InlineData("1")]
    [InlineData("h")]
    [InlineData("1w")]
    [InlineData("-1h")]
    [InlineData("1.5h")]
    [InlineData("1h 30m")]
    [InlineData("99999999999h")]
    [InlineData("40000d")]
    public void TryParseDuration_Malformed_False(string? text)
    {
        Assert.False(TimeArgument.TryParseDuration(text, out _));
    }

    [Fact]
    public void TryParsePoint_Duration_CountsBackFromNow()
    {
        Assert.True(TimeArgument.TryParsePoint("1h", Now, out var point, out _));
        Assert.Equal(Now.AddHours(-1), point);
    }

    [Theory]
    [InlineData("2026-11-20T09:00:00Z", "2026-11-20T09:00:00+00:00")]
    [InlineData("2026-11-20T09:00:00.250Z", "2026-11-20T09:00:00.250+00:00")]
    [InlineData("2026-11-20T10:00:00+01:00", "2026-11-20T09:00:00+00:00")]
    [InlineData("2026-11-20t09:00:00z", "2026-11-20T09:00:00+00:00")]
    public void TryParsePoint_Rfc3339_ExactInstant(string text, string expected)
    {
        Assert.True(TimeArgument.TryParsePoint(text, Now, out var point, out _));
        Assert.Equal(DateTimeOffset.Parse(expected, System.Globalization.CultureInfo.InvariantCulture), point);
    }

    [Theory]
    [InlineData("2026-11-20T09:00:00")]      // no offset: whose local time?
    [InlineData("2026-11-20")]
    [InlineData("yesterday")]
    [InlineData("2026-13-40T09:00:00Z")]
    public void TryParsePoint_NotDurationNorRfc3339_FalseWithMessage(string text)
    {
        Assert.False(TimeArgument.TryParsePoint(text, Now, out _, out string error));
        Assert.Contains("RFC 3339", error);
    }
}
