using Ebpf.Api.Grpc;

namespace Ebpf.Api.Tests;

public sealed class GrpcProtocolTests
{
    [Theory]
    [InlineData("2H", 2 * 3600 * 1000.0)]
    [InlineData("3M", 3 * 60 * 1000.0)]
    [InlineData("10S", 10_000.0)]
    [InlineData("250m", 250.0)]
    [InlineData("1500u", 1.5)]
    [InlineData("2000000n", 2.0)]
    [InlineData("99999999m", 99_999_999.0)]
    public void TryParseTimeout_EveryUnit_ParsesDuration(string value, double expectedMs)
    {
        Assert.True(GrpcProtocol.TryParseTimeout(value, out var timeout));
        Assert.Equal(expectedMs, timeout.TotalMilliseconds, 6);
    }

    [Theory]
    [InlineData("")]
    [InlineData("5")]
    [InlineData("S")]
    [InlineData("5s")]
    [InlineData("5 S")]
    [InlineData("-5S")]
    [InlineData("123456789S")]
    public void TryParseTimeout_Malformed_ReturnsFalse(string value) => Assert.False(GrpcProtocol.TryParseTimeout(value, out _));

    [Fact]
    public void TryParseTimeout_OneNanosecond_IsNotZero()
    {
        Assert.True(GrpcProtocol.TryParseTimeout("1n", out var timeout));
        Assert.True(timeout > TimeSpan.Zero);
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(200)]
    [InlineData(90_000)]
    [InlineData(86_400_000.0 * 400)]
    public void FormatTimeout_RoundTrip_NeverShorterAndAtMostEightDigits(double ms)
    {
        var timeout = TimeSpan.FromMilliseconds(ms);
        var text = GrpcProtocol.FormatTimeout(timeout);
        Assert.True(text.Length <= 9, text);
        Assert.True(GrpcProtocol.TryParseTimeout(text, out var parsed), text);
        Assert.True(parsed >= timeout, $"{text} = {parsed} < {timeout}");
    }

    [Theory]
    [InlineData("plain message", "plain message")]
    [InlineData("100%", "100%25")]
    [InlineData("tab\there", "tab%09here")]
    [InlineData("session “x”", "session %E2%80%9Cx%E2%80%9D")]
    public void EncodeMessage_NonPrintableAndPercent_PercentEncodedUtf8(string message, string encoded)
    {
        Assert.Equal(encoded, GrpcProtocol.EncodeMessage(message));
        Assert.Equal(message, GrpcProtocol.DecodeMessage(encoded));
    }

    [Fact]
    public void DecodeMessage_MalformedEscape_KeptLiterally() => Assert.Equal("50%zz %", GrpcProtocol.DecodeMessage("50%zz %"));

    [Theory]
    [InlineData("application/grpc", true)]
    [InlineData("application/grpc+proto", true)]
    [InlineData("application/grpc; charset=utf-8", true)]
    [InlineData("APPLICATION/GRPC", true)]
    [InlineData("application/grpc+json", false)]
    [InlineData("application/grpc-web", false)]
    [InlineData("application/json", false)]
    [InlineData(null, false)]
    public void IsGrpcContentType_Variants_AcceptsOnlyProtoCodec(string? contentType, bool expected) =>
        Assert.Equal(expected, GrpcProtocol.IsGrpcContentType(contentType));
}
