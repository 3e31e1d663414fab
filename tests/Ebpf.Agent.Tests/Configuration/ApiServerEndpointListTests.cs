using System.Net;
using Ebpf.Agent.Configuration;

namespace Ebpf.Agent.Tests.Configuration;

public sealed class ApiServerEndpointListTests
{
    private static Func<string, string?> Env(string? host = null, string? port = null) => name => name switch
    {
        "KUBERNETES_SERVICE_HOST" => host,
        "KUBERNETES_SERVICE_PORT" => port,
        _ => null,
    };

    [Fact]
    public void Resolve_KubeconfigServerIpLiteral_ServerHostAndPort()
    {
        var endpoints = ApiServerEndpointList.Resolve([], new Uri("https://192.168.49.2:8443"), Env());
        Assert.Equal([new IPEndPoint(IPAddress.Parse("192.168.49.2"), 8443)], endpoints);
    }

    [Fact]
    public void Resolve_ServerWithoutPort_SchemeDefaultPort()
    {
        Assert.Equal([new IPEndPoint(IPAddress.Parse("10.0.0.1"), 443)], ApiServerEndpointList.Resolve([], new Uri("https://10.0.0.1"), Env()));
        Assert.Equal([new IPEndPoint(IPAddress.Loopback, 80)], ApiServerEndpointList.Resolve([], new Uri("http://127.0.0.1/"), Env()));
    }

    [Fact]
    public void Resolve_ServerIpv6Literal_AddressWithoutBrackets()
    {
        var endpoints = ApiServerEndpointList.Resolve([], new Uri("https://[fd00::1]:6443"), Env());
        Assert.Equal([new IPEndPoint(IPAddress.Parse("fd00::1"), 6443)], endpoints);
    }

    [Fact]
    public void Resolve_ServerHostName_NotResolvedAndLeftOut()
    {
        Assert.Empty(ApiServerEndpointList.Resolve([], new Uri("https://api.cluster.example:6443"), Env()));
    }

    [Fact]
    public void Resolve_InClusterServiceEnvironment_ServiceEndpointAddedOnce()
    {
        // In a pod the in-cluster server URL is built from the same variables: one endpoint, not two.
        var endpoints = ApiServerEndpointList.Resolve([], new Uri("https://10.96.0.1:443"), Env("10.96.0.1", "443"));
        Assert.Equal([new IPEndPoint(IPAddress.Parse("10.96.0.1"), 443)], endpoints);
    }

    [Fact]
    public void Resolve_KubeconfigServerAndServiceEnvironment_Both()
    {
        var endpoints = ApiServerEndpointList.Resolve([], new Uri("https://172.18.0.2:6443"), Env("10.96.0.1", "443"));
        Assert.Equal([new IPEndPoint(IPAddress.Parse("172.18.0.2"), 6443), new IPEndPoint(IPAddress.Parse("10.96.0.1"), 443)], endpoints);
    }

    [Fact]
    public void Resolve_ServiceEnvironmentBadPort_Ignored()
    {
        Assert.Empty(ApiServerEndpointList.Resolve([], null, Env("10.96.0.1", "https")));
        Assert.Empty(ApiServerEndpointList.Resolve([], null, Env("kubernetes.default", "443")));
    }

    [Fact]
    public void Resolve_Configured_OnlyConfiguredNothingDerived()
    {
        var endpoints = ApiServerEndpointList.Resolve(["10.96.0.1:443", "[fd00::1]:6443", "10.96.0.1:443"],
            new Uri("https://192.168.49.2:8443"), Env("10.96.0.2", "443"));
        Assert.Equal([new IPEndPoint(IPAddress.Parse("10.96.0.1"), 443), new IPEndPoint(IPAddress.Parse("fd00::1"), 6443)], endpoints);
    }

    [Theory]
    [InlineData("10.96.0.1")]
    [InlineData("10.96.0.1:0")]
    [InlineData("10.96.0.1:70000")]
    [InlineData("kubernetes.default:443")]
    [InlineData("fd00::1:443")]
    [InlineData(":443")]
    public void TryParse_Invalid_ErrorNamesValue(string text)
    {
        Assert.False(ApiServerEndpointList.TryParse(text, out var endpoint, out string? error));
        Assert.Null(endpoint);
        Assert.Contains(text, error);
    }

    [Theory]
    [InlineData("10.96.0.1", "'10.96.0.1' is not ip:port")]
    [InlineData(":443", "':443' is not ip:port")]
    [InlineData("10.96.0.1:", "'10.96.0.1:' is not ip:port")]
    [InlineData("fd00::1:443", "'fd00::1:443': an IPv6 address needs brackets ([addr]:port)")]
    [InlineData("[fd00::1]", "'[fd00::1]': an IPv6 address needs brackets ([addr]:port)")]
    [InlineData("kubernetes.default:443", "'kubernetes.default:443': 'kubernetes.default' is not an IP address (connects are matched by address, not by name)")]
    [InlineData("[]:443", "'[]:443': '' is not an IP address (connects are matched by address, not by name)")]
    [InlineData("10.96.0.1:0", "'10.96.0.1:0': port must be 1-65535")]
    [InlineData("10.96.0.1:65536", "'10.96.0.1:65536': port must be 1-65535")]
    [InlineData("10.96.0.1:+443", "'10.96.0.1:+443': port must be 1-65535")]
    public void TryParse_Invalid_ExactMessage(string text, string message)
    {
        Assert.False(ApiServerEndpointList.TryParse(text, out var endpoint, out string? error));
        Assert.Null(endpoint);
        Assert.Equal(message, error);
    }

    [Theory]
    [InlineData("10.96.0.1:443", "10.96.0.1", 443)]
    [InlineData("[fd00::1]:6443", "fd00::1", 6443)]
    [InlineData("10.96.0.1:1", "10.96.0.1", 1)]
    [InlineData("10.96.0.1:65535", "10.96.0.1", 65535)]
    public void TryParse_Valid_Endpoint(string text, string address, int port)
    {
        Assert.True(ApiServerEndpointList.TryParse(text, out var endpoint, out string? error));
        Assert.Null(error);
        Assert.Equal(new IPEndPoint(IPAddress.Parse(address), port), endpoint);
    }

    [Fact]
    public void Validate_BadApiServerEndpoint_Named()
    {
        var options = new AgentOptions { NodeName = "n" };
        options.Correlation.ApiServerEndpoints.Add("api.example:443");
        var errors = AgentOptionsValidator.Validate(options);
        Assert.Contains(errors, e => e.StartsWith("correlation.apiServerEndpoints:", StringComparison.Ordinal) && e.Contains("api.example", StringComparison.Ordinal));
    }

    [Fact]
    public void Load_ApiServerEndpointsList_Bound()
    {
        var options = AgentConfiguration.Load(null, new Dictionary<string, string?>
        {
            ["Correlation:ApiServerEndpoints:0"] = "10.96.0.1:443",
        }, new Dictionary<string, string?> { ["NODE_NAME"] = "n" });
        Assert.Equal(["10.96.0.1:443"], options.Correlation.ApiServerEndpoints);
        Assert.Empty(AgentOptionsValidator.Validate(options));
    }
}
