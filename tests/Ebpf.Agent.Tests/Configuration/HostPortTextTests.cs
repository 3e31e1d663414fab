using Ebpf.Agent.Configuration;

namespace Ebpf.Agent.Tests.Configuration;

public sealed class HostPortTextTests
{
    [Theory]
    [InlineData("10.96.0.1:443", "10.96.0.1", false, "443")]
    [InlineData("[::1]:8443", "::1", true, "8443")]
    [InlineData("[fd00::1]:6443", "fd00::1", true, "6443")]
    [InlineData("fd00::1:443", "fd00::1", false, "443")]        // unbracketed IPv6: the last colon wins, the caller decides
    [InlineData("*:9090", "*", false, "9090")]
    [InlineData("localhost:0", "localhost", false, "0")]        // port range is the caller's rule (listen: 0 allowed)
    [InlineData("10.0.0.1:65536", "10.0.0.1", false, "65536")]
    [InlineData("[]:80", "", true, "80")]                       // empty host inside brackets: split, rejected by the host rule
    [InlineData("[::1]", "[:", false, "1]")]                    // bracketed host, no port: splits inside the brackets
    [InlineData("example.com:http", "example.com", false, "http")]
    [InlineData("[[::1]]:80", "[::1]", true, "80")]             // one pair of brackets is removed
    [InlineData("[::1:80", "[::1", false, "80")]
    public void TrySplit_HostAndPort_SplitAtLastColon(string text, string host, bool bracketed, string port)
    {
        Assert.True(HostPortText.TrySplit(text, out var parts));
        Assert.Equal(new HostPortText(host, bracketed, port), parts);
    }

    [Theory]
    [InlineData("")]
    [InlineData("10.96.0.1")]                                   // no port
    [InlineData("10.96.0.1:")]                                  // empty port
    [InlineData("[::1]:")]
    [InlineData(":443")]                                        // empty host
    [InlineData(":")]
    [InlineData("::")]
    [InlineData("garbage")]
    public void TrySplit_NoHostOrNoPort_False(string text)
    {
        Assert.False(HostPortText.TrySplit(text, out var parts));
        Assert.Equal(default, parts);
    }
}
