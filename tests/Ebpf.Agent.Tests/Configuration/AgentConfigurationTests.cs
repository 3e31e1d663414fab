using Ebpf.Agent.Configuration;

namespace Ebpf.Agent.Tests.Configuration;

public sealed class AgentConfigurationTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ebpf-config-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, string text)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void Load_NoSources_DefaultsAndNodeNameFromEnvironment()
    {
        var options = AgentConfiguration.Load(null, new Dictionary<string, string?>(),
            new Dictionary<string, string?> { ["NODE_NAME"] = "node-a" });

        Assert.Equal("node-a", options.NodeName);
        Assert.Equal("/var/lib/ebpf-agent", options.DataDirectory);
        Assert.Equal("127.0.0.1:50051", options.Grpc.Listen);
        Assert.Equal("containers", options.Capture.Filter);
        Assert.Equal(TimeSpan.FromSeconds(2), options.Correlation.ClockSkew);
        Assert.Empty(AgentOptionsValidator.Validate(options));
    }

    [Fact]
    public void Load_FileEnvironmentFlags_LaterSourcesWin()
    {
        string file = Write("agent.yaml", """
            dataDirectory: /from/file
            nodeName: file-node
            grpc:
              listen: "*:6000"
            capture:
              filter: all
              filePrefixes: [/etc, /var/run/secrets]
            """);
        var env = new Dictionary<string, string?> { ["EBPF_Grpc__Listen"] = "127.0.0.1:7000", ["NODE_NAME"] = "ignored" };
        var flags = new Dictionary<string, string?> { ["DataDirectory"] = "/from/flag" };

        var options = AgentConfiguration.Load(file, flags, env);

        Assert.Equal("/from/flag", options.DataDirectory);
        Assert.Equal("127.0.0.1:7000", options.Grpc.Listen);
        Assert.Equal("file-node", options.NodeName);
        Assert.Equal("all", options.Capture.Filter);
        Assert.Equal(["/etc", "/var/run/secrets"], options.Capture.FilePrefixes);
    }

    [Fact]
    public void Load_UnknownKey_ClearError()
    {
        string file = Write("agent.yaml", "grpc:\n  lisen: \"*:1\"\n");

        var e = Assert.Throws<ConfigurationException>(() => AgentConfiguration.Load(file, new Dictionary<string, string?>(), new Dictionary<string, string?>()));

        Assert.Contains("lisen", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("grpc: [unclosed", "line")]
    [InlineData("- just\n- a list\n", "mapping")]
    public void Load_MalformedYaml_ClearError(string yaml, string expected)
    {
        string file = Write("bad.yaml", yaml);

        var e = Assert.Throws<ConfigurationException>(() => AgentConfiguration.Load(file, new Dictionary<string, string?>(), new Dictionary<string, string?>()));

        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_MissingFile_SaysWhich()
    {
        var e = Assert.Throws<ConfigurationException>(() => AgentConfiguration.Load("/nonexistent/agent.yaml", new Dictionary<string, string?>(), new Dictionary<string, string?>()));
        Assert.Contains("/nonexistent/agent.yaml", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_BadValues_EveryProblemNamed()
    {
        var options = new AgentOptions
        {
            NodeName = "n",
            Grpc = { Listen = "nonsense" },
            Webhook = { CertificatePath = "/nope.crt" },
            Capture = { Filter = "some", RingBufferBytes = 5000 },
            Retention = { MaxAge = TimeSpan.Zero },
        };

        var errors = AgentOptionsValidator.Validate(options);

        Assert.Contains(errors, e => e.StartsWith("grpc.listen", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("certificatePath and keyPath go together", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("/nope.crt", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("capture.filter", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("capture.ringBufferBytes", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("retention.maxAge", StringComparison.Ordinal));
    }

    [Fact]
    public void Load_AuditForwardingFromFileAndEnvironment_Bound()
    {
        string token = Write("forward-token", "t0ken\n");
        string file = Write("agent.yaml", $"""
            audit:
              forwarding:
                tokenFile: {token}
                agentLabelSelector: app=agent,tier=node
                peerPort: 9443
            """);
        var env = new Dictionary<string, string?> { ["EBPF_Audit__Forwarding__Enabled"] = "true", ["EBPF_Audit__Forwarding__Namespace"] = "monitoring", ["NODE_NAME"] = "n" };

        var options = AgentConfiguration.Load(file, new Dictionary<string, string?>(), env);

        var f = options.Audit.Forwarding;
        Assert.True(f.Enabled);
        Assert.Equal(token, f.TokenFile);
        Assert.Equal("monitoring", f.Namespace);
        Assert.Equal("app=agent,tier=node", f.AgentLabelSelector);
        Assert.Equal(9443, f.PeerPort);
        Assert.Equal("/audit/forwarded", f.Path);
        Assert.Empty(AgentOptionsValidator.Validate(options));
    }

    [Fact]
    public void Load_AuditForwardingDefaults_UnsetMeansAutomatic()
    {
        var options = AgentConfiguration.Load(null, new Dictionary<string, string?>(), new Dictionary<string, string?> { ["NODE_NAME"] = "n" });

        Assert.Null(options.Audit.Forwarding.Enabled);
        Assert.Null(options.Audit.Forwarding.TokenFile);
        Assert.Equal("app.kubernetes.io/name=ebpf-agent", options.Audit.Forwarding.AgentLabelSelector);
        Assert.Equal(4096, options.Audit.Forwarding.QueueCapacity);
        Assert.Empty(AgentOptionsValidator.Validate(options));
    }

    [Fact]
    public void Validate_ForwardingEnabledButUnusable_EveryProblemNamed()
    {
        var options = new AgentOptions
        {
            NodeName = "n",
            Standalone = true,
            Webhook = { Listen = "" },
            Audit = { Forwarding = { Enabled = true, Path = "/audit/webhook", AgentLabelSelector = " ", PeerPort = 70000, QueueCapacity = 0, MaxAttempts = 0 } },
        };

        var errors = AgentOptionsValidator.Validate(options);

        Assert.Contains(errors, e => e.StartsWith("audit.forwarding.enabled is true but audit.forwarding.tokenFile is not set", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("needs the API server", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("needs webhook.listen", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("audit.forwarding.path must differ from webhook.path", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("audit.forwarding.agentLabelSelector", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("audit.forwarding.peerPort", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("audit.forwarding.queueCapacity", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("audit.forwarding.maxAttempts", StringComparison.Ordinal));
    }

    [Fact]
    public void Validate_ForwardingEnabledTokenFileMissing_SaysWhich()
    {
        var options = new AgentOptions { NodeName = "n", Audit = { Forwarding = { Enabled = true, TokenFile = "/nonexistent/forward-token" } } };

        var errors = AgentOptionsValidator.Validate(options);

        Assert.Contains("audit.forwarding.tokenFile: file '/nonexistent/forward-token' does not exist", errors);
    }

    [Theory]
    [InlineData("127.0.0.1:50051", "127.0.0.1", 50051)]
    [InlineData("*:9090", "0.0.0.0", 9090)]
    [InlineData("[::1]:8443", "::1", 8443)]
    [InlineData("localhost:1", "127.0.0.1", 1)]
    public void ListenAddress_Valid_Parsed(string text, string address, int port)
    {
        Assert.True(ListenAddress.TryParse(text, out var endpoint, out _));
        Assert.Equal(address, endpoint!.Address.ToString());
        Assert.Equal(port, endpoint.Port);
    }

    [Theory]
    [InlineData("50051")]
    [InlineData("host:")]
    [InlineData("example.com:80")]
    [InlineData("127.0.0.1:99999")]
    public void ListenAddress_Invalid_Error(string text)
    {
        Assert.False(ListenAddress.TryParse(text, out _, out string? error));
        Assert.NotNull(error);
    }

    [Theory]
    [InlineData("127.0.0.1:0", "127.0.0.1", 0)]       // port 0: the kernel picks one
    [InlineData("[::]:50051", "::", 50051)]
    [InlineData("0.0.0.0:80", "0.0.0.0", 80)]
    [InlineData("::1:8443", "::1", 8443)]             // brackets are optional here: the last colon separates the port
    [InlineData("127.0.0.1:65535", "127.0.0.1", 65535)]
    [InlineData("[::1:8443", "::1", 8443)]            // stray brackets are trimmed, not rejected
    [InlineData("[[::1]]:8443", "::1", 8443)]
    public void ListenAddress_EdgeOfValid_Parsed(string text, string address, int port)
    {
        Assert.True(ListenAddress.TryParse(text, out var endpoint, out string? error));
        Assert.Null(error);
        Assert.Equal(address, endpoint!.Address.ToString());
        Assert.Equal(port, endpoint.Port);
    }

    [Theory]
    [InlineData("50051", "'50051' is not host:port")]
    [InlineData("host:", "'host:' is not host:port")]
    [InlineData(":80", "':80' is not host:port")]
    [InlineData("127.0.0.1:65536", "'127.0.0.1:65536': port must be 0-65535")]
    [InlineData("127.0.0.1:http", "'127.0.0.1:http': port must be 0-65535")]
    [InlineData("[::1]", "'[::1]': port must be 0-65535")]
    [InlineData("example.com:80", "'example.com:80': host must be an IP address, localhost or *")]
    [InlineData("[]:80", "'[]:80': host must be an IP address, localhost or *")]
    public void ListenAddress_Invalid_ExactMessage(string text, string message)
    {
        Assert.False(ListenAddress.TryParse(text, out var endpoint, out string? error));
        Assert.Null(endpoint);
        Assert.Equal(message, error);
    }
}
