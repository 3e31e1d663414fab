using System.Text.Json;
using Ebpf.Cli;

namespace Ebpf.Cli.Tests.Policy;

/// <summary>Runs `kubectl-exectrace policy ...` in-process through the real System.CommandLine parser.</summary>
public sealed class PolicyCommandTests : IDisposable
{
    private static readonly string RepoRoot = LocateRepoRoot();
    private static readonly string Fixtures = Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared", "fixtures", "audit"));
    private static readonly string DeployPolicy = Path.Combine(RepoRoot, "deploy", "audit", "policy.yaml");
    private static string FixturePolicy(string name) => Path.Combine(Fixtures, "policies", name);
    private static string Falco(string name) => Path.Combine(Fixtures, "falcosecurity-falco/test/trace_files/k8s_audit", name);

    private readonly string _temp = Directory.CreateTempSubdirectory("exectrace-policy-cli-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    private static string LocateRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Ebpf.sln")))
                return dir.FullName;
        }
        throw new DirectoryNotFoundException("Ebpf.sln not found above " + AppContext.BaseDirectory);
    }

    private static (int Exit, string Out, string Err) Run(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exit = CliRoot.Run(args, output, error);
        return (exit, output.ToString(), error.ToString());
    }

    [Fact]
    public void Eval_FlagsExecRequest_PrintsLevelAndDecidingRule()
    {
        var (exit, output, _) = Run("policy", "eval", "--policy", FixturePolicy("kubernetes-docs-example-audit-policy.yaml"),
            "--user", "alice", "--group", "system:authenticated", "--verb", "create", "--resource", "pods", "--subresource", "exec", "--namespace", "default", "--name", "web-0");
        Assert.Equal(0, exit);
        Assert.Contains("level: Request", output, StringComparison.Ordinal);
        Assert.Contains("rule 7 (line 58)", output, StringComparison.Ordinal);
        Assert.Contains("omitStages: RequestReceived", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Eval_ResourceWithSlashAndJson_SameDecision()
    {
        var (exit, output, _) = Run("policy", "eval", "--policy", DeployPolicy, "--user", "alice", "--verb", "get", "--resource", "pods/exec", "-n", "prod", "-o", "json");
        Assert.Equal(0, exit);
        using var doc = JsonDocument.Parse(output);
        Assert.Equal("Metadata", doc.RootElement.GetProperty("level").GetString());
        Assert.Equal(0, doc.RootElement.GetProperty("ruleIndex").GetInt32());
        Assert.Equal("RequestReceived", doc.RootElement.GetProperty("omitStages")[0].GetString());
    }

    [Fact]
    public void Eval_NonResourcePathNoMatch_ExplainsDefault()
    {
        var (exit, output, _) = Run("policy", "eval", "--policy", FixturePolicy("audit2rbac-demo-policy.yaml"), "--user", "carol", "--verb", "get", "--path", "/healthz");
        Assert.Equal(0, exit);
        Assert.Contains("level: None", output, StringComparison.Ordinal);
        Assert.Contains("no rule matched", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Eval_EventFile_EvaluatesRecordedEvent()
    {
        var (exit, output, _) = Run("policy", "eval", "--policy", FixturePolicy("gce-configure-helper-audit-policy.yaml"), "--event", Falco("exec_pod.json"), "-o", "json");
        Assert.Equal(0, exit);
        using var doc = JsonDocument.Parse(output);
        var result = Assert.Single(doc.RootElement.EnumerateArray());
        Assert.Equal("RequestResponse", result.GetProperty("level").GetString());
        Assert.Equal(15, result.GetProperty("ruleIndex").GetInt32());
        Assert.Contains("pods/exec", result.GetProperty("request").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Eval_V1Beta1Policy_ExitTwoWithApiServerMessage()
    {
        var (exit, _, error) = Run("policy", "eval", "--policy", FixturePolicy("eks-audit-policy.yaml"), "--verb", "get", "--resource", "pods");
        Assert.Equal(2, exit);
        Assert.Contains("no kind \"Policy\" is registered for version \"audit.k8s.io/v1beta1\"", error, StringComparison.Ordinal);
        Assert.Contains("change apiVersion to audit.k8s.io/v1", error, StringComparison.Ordinal);
        Assert.Contains("line 1, column 13", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("policy", "eval", "--policy", "POLICY")]                                        // no request
    [InlineData("policy", "eval", "--policy", "POLICY", "--verb", "get")]                       // no resource or path
    [InlineData("policy", "eval", "--policy", "POLICY", "--verb", "get", "--resource", "pods", "-o", "yaml")]
    [InlineData("policy", "eval", "--policy", "POLICY", "--event", "MISSING")]
    [InlineData("policy", "eval", "--policy", "MISSING", "--verb", "get", "--resource", "pods")]
    [InlineData("policy", "eval", "--verb", "get", "--resource", "pods")]                       // --policy is required
    [InlineData("policy", "eval", "--policy", "POLICY", "--verb", "get", "--resource", "pods/exec", "--subresource", "attach")]
    [InlineData("policy", "lint")]
    [InlineData("policy", "lint", "MISSING")]
    [InlineData("policy", "simulate", "--policy", "POLICY")]
    [InlineData("policy", "simulate", "--policy", "POLICY", "--log", "MISSING")]
    [InlineData("policy", "frobnicate")]
    public void Policy_BadFlagsOrFiles_ExitTwoWithMessage(params string[] args)
    {
        var resolved = args.Select(a => a switch
        {
            "POLICY" => DeployPolicy,
            "MISSING" => Path.Combine(_temp, "missing.yaml"),
            _ => a,
        }).ToArray();
        var (exit, _, error) = Run(resolved);
        Assert.Equal(2, exit);
        Assert.StartsWith("error: ", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("policy", "eval", "--policy", "MISSING", "--verb", "get", "--resource", "pods", "-o", "yaml")]
    [InlineData("policy", "lint", "MISSING", "-o", "yaml")]
    [InlineData("policy", "simulate", "--policy", "MISSING", "--log", "MISSING", "-o", "yaml")]
    public void Policy_BadFormatAndMissingPolicy_OnlyTheFormatReported(params string[] args)
    {
        var missing = Path.Combine(_temp, "missing.yaml");
        var (exit, output, error) = Run(args.Select(a => a == "MISSING" ? missing : a).ToArray());
        Assert.Equal(2, exit);
        Assert.Equal("error: unknown output format 'yaml': use table or json" + Environment.NewLine, error);
        Assert.Empty(output);
    }

    [Theory]
    [InlineData("policy", "eval", "--policy", "MISSING", "--verb", "get", "--resource", "pods")]
    [InlineData("policy", "lint", "MISSING", "-o", "json")]
    [InlineData("policy", "simulate", "--policy", "MISSING", "--log", "MISSING")]
    public void Policy_MissingPolicy_ExitTwoNamingThePolicyFile(params string[] args)
    {
        var missing = Path.Combine(_temp, "missing.yaml");
        var (exit, output, error) = Run(args.Select(a => a == "MISSING" ? missing : a).ToArray());
        Assert.Equal(2, exit);
        Assert.StartsWith($"error: invalid audit policy {missing}:", error, StringComparison.Ordinal);
        Assert.Empty(output);
    }

    [Fact]
    public void Eval_EventFileNotAnEvent_ExitTwo()
    {
        var (exit, _, error) = Run("policy", "eval", "--policy", DeployPolicy, "--event", Falco("fal_01_003.json"));
        Assert.Equal(2, exit);
        Assert.Contains("no audit event could be read", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Lint_DeployPolicy_ExitZeroNoFindings()
    {
        var (exit, output, _) = Run("policy", "lint", DeployPolicy);
        Assert.Equal(0, exit);
        Assert.Contains("no findings", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Lint_FalcoPolicy_ExitOneWithFindingsAndFixes()
    {
        var (exit, output, _) = Run("policy", "lint", FixturePolicy("falco-k8saudit-audit-policy.yaml"));
        Assert.Equal(1, exit);
        Assert.Contains("secret-payload", output, StringComparison.Ordinal);
        Assert.Contains("fix: \"deployments\" is served by group \"apps\"", output, StringComparison.Ordinal);
        Assert.Contains("2 error(s), 1 warning(s)", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Lint_Json_FindingsWithSeverityRuleAndFix()
    {
        var (exit, output, _) = Run("policy", "lint", FixturePolicy("kubernetes-docs-example-audit-policy.yaml"), "-o", "json");
        Assert.Equal(1, exit);
        using var doc = JsonDocument.Parse(output);
        Assert.Equal(1, doc.RootElement.GetProperty("errors").GetInt32());
        var finding = Assert.Single(doc.RootElement.GetProperty("findings").EnumerateArray());
        Assert.Equal("Error", finding.GetProperty("severity").GetString());
        Assert.Equal(5, finding.GetProperty("ruleIndex").GetInt32());
        Assert.Equal("secret-payload", finding.GetProperty("code").GetString());
        Assert.False(string.IsNullOrEmpty(finding.GetProperty("fix").GetString()));
    }

    [Fact]
    public void Lint_InvalidYaml_ExitTwoWithPosition()
    {
        var path = Path.Combine(_temp, "bad.yaml");
        File.WriteAllText(path, "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  verbz: [get]\n");
        var (exit, _, error) = Run("policy", "lint", path);
        Assert.Equal(2, exit);
        Assert.Contains("line 5, column 3: rules[0].verbz: unknown field \"verbz\"", error, StringComparison.Ordinal);
        Assert.Contains("did you mean 'verbs'?", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Simulate_DemoLog_TableWithTotals()
    {
        var (exit, output, _) = Run("policy", "simulate", "--policy", FixturePolicy("audit2rbac-demo-policy.yaml"),
            "--log", Path.Combine(Fixtures, "liggitt-audit2rbac/testdata/demo.log"));
        Assert.Equal(0, exit);
        Assert.Contains("events read: 37  kept: 37  dropped: 0  unparseable: 0", output, StringComparison.Ordinal);
        Assert.Contains("RequestReceived,ResponseStarted,Panic", output, StringComparison.Ordinal);
        Assert.Contains("│ Metadata        │ 37     │ 37", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Simulate_FalcoFilesJson_NumbersPerRuleAndStage()
    {
        var logs = Directory.EnumerateFiles(Falco(""), "*.json").Order(StringComparer.Ordinal).ToArray();
        var (exit, output, _) = Run(["policy", "simulate", "--policy", DeployPolicy, "--log", .. logs, "-o", "json"]);
        Assert.Equal(0, exit);
        using var doc = JsonDocument.Parse(output);
        var root = doc.RootElement;
        Assert.Equal(52, root.GetProperty("eventsRead").GetInt64());
        Assert.Equal(1, root.GetProperty("eventsRejected").GetInt64());
        // Deploy policy: exec_pod + attach_pod by rule 0 (their ResponseStarted stage is kept).
        var rule0 = root.GetProperty("byRule").EnumerateArray().Single(r => r.TryGetProperty("ruleIndex", out var i) && i.GetInt32() == 0);
        Assert.Equal(2, rule0.GetProperty("eventsKept").GetInt64());
        // Everything is Metadata under this policy, so kept bytes are strictly below the recorded bytes.
        Assert.True(root.GetProperty("bytesKept").GetInt64() < root.GetProperty("bytesIn").GetInt64());
        var levels = root.GetProperty("byLevel").EnumerateArray().ToDictionary(l => l.GetProperty("level").GetString()!, l => l.GetProperty("eventsKept").GetInt64());
        Assert.Equal(0, levels["Request"] + levels["RequestResponse"]);
    }
}
