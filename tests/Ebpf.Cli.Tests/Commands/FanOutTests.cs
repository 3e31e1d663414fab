using System.Text.Json;
using Ebpf.Api.V1;
using Ebpf.Cli.Commands;

using Record = Ebpf.Api.V1.Record;

namespace Ebpf.Cli.Tests.Commands;

/// <summary>
/// Two agents of the DaemonSet, as a multi-node cluster has them: node-a's agent holds <see cref="Seed"/> (alice at
/// T0+50m, bob at T0+100s), node-b's holds <see cref="NodeBSeed"/> (carol at T0+55m and T0+20m, an audit-only session
/// at T0+30m, dave at T0+10m). Each is the agent's real ExecTraceService on Kestrel over its own SQLite store.
/// </summary>
public sealed class TwoAgentsFixture : IAsyncLifetime
{
    public AgentFixture NodeA { get; } = new();
    public AgentFixture NodeB { get; } = new("node-b", NodeBSeed.Records);

    public async Task InitializeAsync()
    {
        await NodeA.InitializeAsync();
        await NodeB.InitializeAsync();
    }

    public async Task DisposeAsync()
    {
        await NodeA.DisposeAsync();
        await NodeB.DisposeAsync();
    }
}

/// <summary>What node-b's agent recorded: carol's and dave's sessions, an exec whose process was never seen, one finding.</summary>
public static class NodeBSeed
{
    public const string CarolLate = "9b1e0055-cccc-4c1d-9e2f-a0b1c2d3e4f5";
    public const string CarolEarly = "9b1e0020-cccc-4c1d-9e2f-a0b1c2d3e4f5";
    public const string AuditOnly = "9b1e0030-dddd-4c1d-9e2f-a0b1c2d3e4f5";
    /// <summary>Shares the prefix 7f3a9c01 with node-a's bob session: unique on each node, not in the cluster.</summary>
    public const string Dave = "7f3a9c01-eeee-4c1d-9e2f-a0b1c2d3e4f5";

    public static IReadOnlyList<Record> Records() =>
    [
        Session(Dave, 10 * 60, "web-2"),
        Session(CarolEarly, 20 * 60, "web-2"),
        Session(AuditOnly, 30 * 60, "web-3", withProcess: false),
        Session(CarolLate, 55 * 60, "web-2"),
        new Record
        {
            Time = Seed.At(55 * 60 + 5),
            Finding = new Finding
            {
                Id = "f-b1", Kind = "secret-read", Severity = Severity.Medium, Summary = "cat read a service account token in shop/web-2",
                Time = Seed.At(55 * 60 + 5), Namespace = "shop", Pod = "web-2", User = "carol@example.com", SessionId = CarolLate,
            },
        },
    ];

    private static Record Session(string id, double at, string pod, bool withProcess = true) => new()
    {
        Time = Seed.At(at),
        Session = new Session
        {
            Id = id, Kind = withProcess ? SessionKind.Exec : SessionKind.AuditOnly, Confidence = withProcess ? Confidence.Certain : Confidence.Unattributed,
            User = "carol@example.com", Verb = "create", Namespace = "shop", Pod = pod, Container = "web", Command = { "sh" },
            RequestReceived = Seed.At(at - 0.2), SourceIps = { "10.0.0.9" },
            // An audit-only session has no process on the node, so no workload: the CLI names the node from the agent.
            Workload = withProcess ? new Workload { Node = "node-b", Namespace = "shop", Pod = pod, ContainerName = "web" } : null,
            NodeStart = withProcess ? Seed.At(at) : null,
        },
    };
}

/// <summary>
/// `--agent a,b` (and $EBPF_AGENT lists): sessions, findings, show and status ask every agent and merge; agents that
/// cannot be reached are named in warnings and make the exit code <see cref="AgentExit.Partial"/>.
/// </summary>
public sealed class FanOutTests(TwoAgentsFixture agents) : IClassFixture<TwoAgentsFixture>
{
    private const string Unreachable = "127.0.0.1:1";

    private string Both => $"{agents.NodeA.Address},{agents.NodeB.Address}";

    private static async Task<(int Exit, string Out, string Err)> RunAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int exit = await CliRoot.RunAsync(args, output, error, AgentFixture.Environment());
        return (exit, output.ToString(), error.ToString());
    }

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static int Row(string[] lines, string id) => Array.FindIndex(lines, l => l.Contains(id[..12], StringComparison.Ordinal));

    [Fact]
    public async Task Sessions_TwoAgents_MergedNewestFirstEachRowNamingItsNode()
    {
        var (exit, output, error) = await RunAsync("sessions", "--agent", Both);

        Assert.Equal(AgentExit.Ok, exit);
        Assert.Equal("", error);
        var lines = Lines(output);
        Assert.Contains(lines, l => l.StartsWith("SESSION", StringComparison.Ordinal) && l.EndsWith("NODE", StringComparison.Ordinal));
        int[] order = [Row(lines, NodeBSeed.CarolLate), Row(lines, Seed.AliceSession), Row(lines, NodeBSeed.AuditOnly), Row(lines, NodeBSeed.CarolEarly), Row(lines, NodeBSeed.Dave), Row(lines, Seed.BobSession)];
        Assert.True(order.All(i => i >= 0), output);
        Assert.Equal(order.Order(), order);
        Assert.EndsWith("node-b", lines[order[0]]);
        Assert.EndsWith("node-a", lines[order[1]]);
        // No workload in the record: the node comes from the agent that answered.
        Assert.EndsWith("node-b", lines[order[2]]);
        Assert.EndsWith("node-a", lines[order[5]]);
    }

    [Fact]
    public async Task Sessions_TwoAgentsWithLimit_LimitAppliedAfterTheMerge()
    {
        var (exit, output, _) = await RunAsync("sessions", "--limit", "2", "-o", "json", "--agent", Both);

        Assert.Equal(AgentExit.Ok, exit);
        var sessions = JsonDocument.Parse(output).RootElement.EnumerateArray().ToList();
        Assert.Equal([NodeBSeed.CarolLate, Seed.AliceSession], sessions.Select(s => s.GetProperty("id").GetString()));
        Assert.Equal(["node-b", "node-a"], sessions.Select(s => s.GetProperty("workload").GetProperty("node").GetString()));
    }

    [Fact]
    public async Task Sessions_TwoAgentsFilteredYaml_OnlyMatchingRowsFromBoth()
    {
        var (exit, output, _) = await RunAsync("sessions", "--since", "15m", "-o", "yaml", "--agent", Both);

        Assert.Equal(AgentExit.Ok, exit);
        var yaml = new YamlDotNet.Serialization.DeserializerBuilder().Build().Deserialize<List<Dictionary<string, object>>>(output);
        Assert.Equal([NodeBSeed.CarolLate, Seed.AliceSession], yaml.Select(s => (string)s["id"]));
    }

    [Fact]
    public async Task Sessions_TwoAgentsWide_OneNodeColumn()
    {
        var (exit, output, _) = await RunAsync("sessions", "-o", "wide", "--agent", Both);

        Assert.Equal(AgentExit.Ok, exit);
        var header = Assert.Single(Lines(output), l => l.StartsWith("SESSION", StringComparison.Ordinal));
        Assert.Single(header.Split(' ', StringSplitOptions.RemoveEmptyEntries), c => c == "NODE");
        Assert.Contains("SOURCE IP", header);
        Assert.EndsWith("node-b", Lines(output)[Row(Lines(output), NodeBSeed.AuditOnly)]);
    }

    [Fact]
    public async Task Findings_TwoAgents_MergedNewestFirstWithNode()
    {
        var (exit, output, error) = await RunAsync("findings", "--agent", Both);
        Assert.Equal(AgentExit.Ok, exit);
        Assert.Equal("", error);
        var lines = Lines(output);
        Assert.Contains(lines, l => l.StartsWith("TIME", StringComparison.Ordinal) && l.EndsWith("NODE", StringComparison.Ordinal));
        int secret = Array.FindIndex(lines, l => l.Contains("secret-read", StringComparison.Ordinal));
        int download = Array.FindIndex(lines, l => l.Contains("exec-download", StringComparison.Ordinal));
        Assert.True(secret >= 0 && download > secret, output);
        Assert.EndsWith("node-b", lines[secret]);
        Assert.EndsWith("node-a", lines[download]);

        var json = await RunAsync("findings", "-o", "json", "--agent", Both);
        var findings = JsonDocument.Parse(json.Out).RootElement.EnumerateArray().ToList();
        Assert.Equal(["f-b1", "f-1"], findings.Select(f => f.GetProperty("id").GetString()));
        Assert.Equal(["node-b", "node-a"], findings.Select(f => f.GetProperty("node").GetString()));

        var limited = await RunAsync("findings", "--limit", "1", "-o", "json", "--agent", Both);
        Assert.Equal("f-b1", Assert.Single(JsonDocument.Parse(limited.Out).RootElement.EnumerateArray()).GetProperty("id").GetString());
    }

    [Fact]
    public async Task Show_SessionOnlyOnSecondAgent_FoundThere()
    {
        var (exit, output, error) = await RunAsync("show", NodeBSeed.CarolLate, "--agent", Both);

        Assert.Equal(AgentExit.Ok, exit);
        Assert.Equal("", error);
        Assert.Contains(NodeBSeed.CarolLate, output);
        Assert.Contains("who:     carol@example.com", output);
        Assert.Contains("node node-b", output);

        var prefix = await RunAsync("show", "9b1e0055", "-o", "json", "--agent", Both);
        Assert.Equal(AgentExit.Ok, prefix.Exit);
        Assert.Equal(NodeBSeed.CarolLate, JsonDocument.Parse(prefix.Out).RootElement.GetProperty("session").GetProperty("id").GetString());
    }

    [Fact]
    public async Task Show_UnknownOnEveryAgent_NotFoundExit1()
    {
        var (exit, output, error) = await RunAsync("show", "deadbeef", "--agent", Both);

        Assert.Equal(AgentExit.NotFound, exit);
        Assert.Equal("", output);
        Assert.Equal("error: session 'deadbeef' not found", error.Trim());
    }

    [Fact]
    public async Task Show_PrefixAmbiguousOnOneAgent_AgentMessageExit1()
    {
        var (exit, output, error) = await RunAsync("show", "7f3a9c0", "--agent", Both);

        Assert.Equal(AgentExit.NotFound, exit);
        Assert.Equal("", output);
        Assert.Contains("'7f3a9c0' matches 2 sessions", error);
    }

    [Fact]
    public async Task Show_PrefixUniqueOnEachNodeButMatchingOnTwo_AmbiguousExit1()
    {
        var (exit, output, error) = await RunAsync("show", "7f3a9c01", "--agent", Both);

        Assert.Equal(AgentExit.NotFound, exit);
        Assert.Equal("", output);
        Assert.Equal($"error: '7f3a9c01' matches 2 sessions on different nodes: {Seed.BobSession} (node node-a), {NodeBSeed.Dave} (node node-b); give more of the id", error.Trim());
    }

    [Fact]
    public async Task Show_SameAgentUnderTwoAddresses_OneSessionNotAmbiguous()
    {
        var (exit, output, error) = await RunAsync("show", "7f3a9c02", "--agent", $"{agents.NodeA.Address},http://{agents.NodeA.Address}");

        Assert.Equal(AgentExit.Ok, exit);
        Assert.Equal("", error);
        Assert.Contains(Seed.AliceSession, output);
    }

    [Fact]
    public async Task Status_TwoAgents_OneBlockEach()
    {
        var (exit, output, error) = await RunAsync("status", "--agent", Both);

        Assert.Equal(AgentExit.Ok, exit);
        Assert.Equal("", error);
        int a = output.IndexOf("on node node-a", StringComparison.Ordinal), b = output.IndexOf("on node node-b", StringComparison.Ordinal);
        Assert.True(a >= 0 && b > a, output);
        Assert.Equal(2, Lines(output).Count(l => l.StartsWith("pod watch:", StringComparison.Ordinal)));

        var json = await RunAsync("status", "-o", "json", "--agent", Both);
        Assert.Equal(["node-a", "node-b"], JsonDocument.Parse(json.Out).RootElement.EnumerateArray().Select(s => s.GetProperty("node").GetString()));
    }

    [Fact]
    public async Task Sessions_OneAgentUnreachable_WarnsNamingItPrintsTheOthersExit4()
    {
        var (exit, output, error) = await RunAsync("sessions", "--agent", $"{agents.NodeA.Address},{Unreachable}");

        Assert.Equal(AgentExit.Partial, exit);
        var warning = Assert.Single(Lines(error));
        Assert.StartsWith($"warning: cannot reach the agent at {Unreachable}: ", warning);
        Assert.Contains(Seed.AliceSession[..12], output);
        Assert.Contains(Seed.BobSession[..12], output);
        Assert.Contains(Lines(output), l => l.StartsWith("SESSION", StringComparison.Ordinal) && l.EndsWith("NODE", StringComparison.Ordinal));
    }

    [Fact]
    public async Task FindingsStatusShow_OneAgentUnreachable_PartialExit4()
    {
        string list = $"{Unreachable},{agents.NodeB.Address}";

        var findings = await RunAsync("findings", "-o", "json", "--agent", list);
        Assert.Equal(AgentExit.Partial, findings.Exit);
        Assert.Equal("f-b1", Assert.Single(JsonDocument.Parse(findings.Out).RootElement.EnumerateArray()).GetProperty("id").GetString());
        Assert.Contains($"cannot reach the agent at {Unreachable}", findings.Err);

        var status = await RunAsync("status", "--agent", list);
        Assert.Equal(AgentExit.Partial, status.Exit);
        Assert.Contains("on node node-b", status.Out);

        var found = await RunAsync("show", NodeBSeed.CarolEarly, "--agent", list);
        Assert.Equal(AgentExit.Partial, found.Exit);
        Assert.Contains(NodeBSeed.CarolEarly, found.Out);

        // Not on the agents that answered, but maybe on the one that did not: partial, not a plain "not found".
        var missing = await RunAsync("show", "deadbeef", "--agent", list);
        Assert.Equal(AgentExit.Partial, missing.Exit);
        Assert.Contains("error: session 'deadbeef' not found", missing.Err);
        Assert.Contains($"warning: cannot reach the agent at {Unreachable}", missing.Err);
    }

    [Fact]
    public async Task Sessions_AllAgentsUnreachable_UnreachableErrorForEachExit3()
    {
        var (exit, output, error) = await RunAsync("sessions", "--agent", "127.0.0.1:1,127.0.0.1:2");

        Assert.Equal(AgentExit.Unreachable, exit);
        Assert.Equal("", output);
        var lines = Lines(error);
        Assert.Equal(2, lines.Length);
        Assert.StartsWith("error: cannot reach the agent at 127.0.0.1:1: ", lines[0]);
        Assert.StartsWith("error: cannot reach the agent at 127.0.0.1:2: ", lines[1]);
        Assert.All(lines, l => Assert.Contains("Is ebpf-agent running?", l));
    }

    [Fact]
    public async Task Sessions_RequestRejectedByEveryAgent_OneErrorExit1()
    {
        var (exit, output, error) = await RunAsync("sessions", "--since", "1h", "--until", "2h", "--agent", Both);

        Assert.Equal(AgentExit.NotFound, exit);
        Assert.Equal("", output);
        Assert.Equal("error: since is after until", error.Trim());
    }

    [Fact]
    public async Task AgentListFromEnvironment_AsksEveryAgent()
    {
        var output = new StringWriter();
        var env = new CliEnvironment { Variable = n => n == "EBPF_AGENT" ? $" {agents.NodeA.Address} , http://{agents.NodeB.Address}" : null, HomeDirectory = "/nonexistent-home" };

        int exit = await CliRoot.RunAsync(["status"], output, new StringWriter(), env);

        Assert.Equal(AgentExit.Ok, exit);
        Assert.Contains("on node node-a", output.ToString());
        Assert.Contains("on node node-b", output.ToString());
    }

    /// <summary>Polls <paramref name="condition"/> (30 s at most); fails naming what was awaited and what the CLI said.</summary>
    private static async Task UntilAsync(Func<bool> condition, string what, Task<int>? run, StringWriter error)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!condition())
        {
            if (run is not null) Assert.False(run.IsCompleted, $"the command ended (exit {(run.IsCompletedSuccessfully ? run.Result : -1)}) before {what}: {error}");
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}: {error}");
            await Task.Delay(10);
        }
    }

    private static Record Numbered(Record record, ulong sequence)
    {
        var clone = record.Clone();
        clone.Sequence = sequence;
        return clone;
    }

    [Fact]
    public async Task Watch_TwoAgents_RecordsOfBothAsTheyArriveEachNamingItsNode()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        int beforeA = agents.NodeA.Hub.Subscribers, beforeB = agents.NodeB.Hub.Subscribers;
        var run = CliRoot.RunAsync(["watch", "--kind", "session,finding", "--agent", Both], output, error, AgentFixture.Environment(), cancel.Token);
        await UntilAsync(() => agents.NodeA.Hub.Subscribers > beforeA && agents.NodeB.Hub.Subscribers > beforeB, "a subscriber on both agents", run, error);

        var a = Seed.Records();
        var b = NodeBSeed.Records();
        agents.NodeA.Hub.Publish(Numbered(a.First(r => r.BodyCase == Record.BodyOneofCase.Session), 7001));
        await UntilAsync(() => output.ToString().Contains("#7001", StringComparison.Ordinal), "node-a's session", run, error);
        agents.NodeB.Hub.Publish(Numbered(b.First(r => r.BodyCase == Record.BodyOneofCase.NodeEvent || r.BodyCase == Record.BodyOneofCase.Session), 5));
        agents.NodeB.Hub.Publish(Numbered(b.First(r => r.BodyCase == Record.BodyOneofCase.Finding), 6));
        await UntilAsync(() => output.ToString().Contains("#6 ", StringComparison.Ordinal), "node-b's finding", run, error);
        await cancel.CancelAsync();
        int exit = await run;

        Assert.Equal(AgentExit.Ok, exit);
        Assert.Equal("", error.ToString());
        var lines = Lines(output.ToString());
        Assert.Equal(3, lines.Length);
        Assert.StartsWith("[node-a] #7001 session 7f3a9c01-aaa", lines[0]);
        Assert.StartsWith("[node-b] #5 session 7f3a9c01-eee", lines[1]);
        Assert.StartsWith("[node-b] #6 FINDING", lines[2]);
    }

    [Fact]
    public async Task Watch_TwoAgentsJsonWithMaxRecords_EachObjectHasTheNodeThenTheRecord()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int beforeA = agents.NodeA.Hub.Subscribers, beforeB = agents.NodeB.Hub.Subscribers;
        var run = CliRoot.RunAsync(["watch", "-o", "json", "--max-records", "2", "--agent", Both], output, error, AgentFixture.Environment());
        await UntilAsync(() => agents.NodeA.Hub.Subscribers > beforeA && agents.NodeB.Hub.Subscribers > beforeB, "a subscriber on both agents", run, error);

        agents.NodeB.Hub.Publish(Numbered(NodeBSeed.Records()[0], 8001));
        await UntilAsync(() => output.ToString().Contains("8001", StringComparison.Ordinal), "node-b's record", run, error);
        agents.NodeA.Hub.Publish(Numbered(Seed.Records()[0], 8002));
        int exit = await run.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(AgentExit.Ok, exit);
        var objects = Lines(output.ToString()).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(["node-b", "node-a"], objects.Select(o => o.GetProperty("node").GetString()));
        Assert.Equal(["8001", "8002"], objects.Select(o => o.GetProperty("sequence").GetString()));
        Assert.Equal(NodeBSeed.Dave, objects[0].GetProperty("session").GetProperty("id").GetString());
        Assert.Equal("audit-bob", objects[1].GetProperty("auditEvent").GetProperty("auditId").GetString());
        // Both streams were closed when the watch stopped reading.
        await UntilAsync(() => agents.NodeA.Hub.Subscribers == beforeA && agents.NodeB.Hub.Subscribers == beforeB, "both subscriptions closed", null, error);
    }

    [Fact]
    public async Task Watch_OneAgentUnreachable_WarnsNamingItFollowsTheOtherExit4()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        int before = agents.NodeA.Hub.Subscribers;
        var run = CliRoot.RunAsync(["watch", "--agent", $"{agents.NodeA.Address},{Unreachable}"], output, error, AgentFixture.Environment(), cancel.Token);
        await UntilAsync(() => agents.NodeA.Hub.Subscribers > before, "a subscriber on node-a", run, error);
        await UntilAsync(() => error.ToString().Contains("warning:", StringComparison.Ordinal), "the warning", run, error);

        agents.NodeA.Hub.Publish(Numbered(Seed.Records().First(r => r.BodyCase == Record.BodyOneofCase.Finding), 9501));
        await UntilAsync(() => output.ToString().Contains("#9501", StringComparison.Ordinal), "node-a's finding", run, error);
        await cancel.CancelAsync();
        int exit = await run;

        Assert.Equal(AgentExit.Partial, exit);
        var warning = Assert.Single(Lines(error.ToString()));
        Assert.StartsWith($"warning: cannot reach the agent at {Unreachable}: ", warning);
        Assert.StartsWith("[node-a] #9501 FINDING", Assert.Single(Lines(output.ToString())));
    }

    [Fact]
    public async Task Watch_OneAgentStopsMidStream_WarnsNamingItsNodeTheOtherGoesOnExit4()
    {
        var nodeC = new AgentFixture("node-c", () => []);
        await nodeC.InitializeAsync();
        bool disposed = false;
        try
        {
            var output = new StringWriter();
            var error = new StringWriter();
            using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(90));
            int beforeA = agents.NodeA.Hub.Subscribers;
            var run = CliRoot.RunAsync(["watch", "--agent", $"{agents.NodeA.Address},{nodeC.Address}"], output, error, AgentFixture.Environment(), cancel.Token);
            await UntilAsync(() => agents.NodeA.Hub.Subscribers > beforeA && nodeC.Hub.Subscribers > 0, "a subscriber on both agents", run, error);
            nodeC.Hub.Publish(Numbered(Seed.Records()[0], 1));
            await UntilAsync(() => output.ToString().Contains("[node-c] #1 ", StringComparison.Ordinal), "node-c's record", run, error);

            await nodeC.DisposeAsync();
            disposed = true;
            await UntilAsync(() => error.ToString().Contains("node-c", StringComparison.Ordinal), "the warning about node-c", run, error);
            agents.NodeA.Hub.Publish(Numbered(Seed.Records()[0], 9601));
            await UntilAsync(() => output.ToString().Contains("[node-a] #9601 ", StringComparison.Ordinal), "node-a's record after node-c stopped", run, error);
            await cancel.CancelAsync();
            int exit = await run;

            Assert.Equal(AgentExit.Partial, exit);
            var warning = Assert.Single(Lines(error.ToString()));
            // The agent ends its streams with UNAVAILABLE when it shuts down (not after Kestrel's shutdown timeout).
            Assert.Equal($"warning: node node-c ({nodeC.Address}): the stream broke (Unavailable: The server is shutting down.); its records are no longer followed", warning);
        }
        finally
        {
            if (!disposed) await nodeC.DisposeAsync();
        }
    }

    [Fact]
    public async Task Watch_QuietAgentStops_WarnsThatItsStreamBrokeNotThatItIsUnreachable()
    {
        var nodeC = new AgentFixture("node-c", () => []);
        await nodeC.InitializeAsync();
        bool disposed = false;
        try
        {
            var output = new StringWriter();
            var error = new StringWriter();
            using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(90));
            int beforeA = agents.NodeA.Hub.Subscribers;
            var run = CliRoot.RunAsync(["watch", "--agent", $"{agents.NodeA.Address},{nodeC.Address}"], output, error, AgentFixture.Environment(), cancel.Token);
            await UntilAsync(() => agents.NodeA.Hub.Subscribers > beforeA && nodeC.Hub.Subscribers > 0, "a subscriber on both agents", run, error);

            // No record from node-c before it stops: the agent's own UNAVAILABLE still says the stream ended.
            await nodeC.DisposeAsync();
            disposed = true;
            await UntilAsync(() => error.ToString().Contains("node-c", StringComparison.Ordinal), "the warning about node-c", run, error);
            await cancel.CancelAsync();

            Assert.Equal(AgentExit.Partial, await run);
            Assert.Equal($"warning: node node-c ({nodeC.Address}): the stream broke (Unavailable: The server is shutting down.); its records are no longer followed",
                Assert.Single(Lines(error.ToString())));
            Assert.Equal("", output.ToString());
        }
        finally
        {
            if (!disposed) await nodeC.DisposeAsync();
        }
    }

    [Fact]
    public async Task Watch_AllAgentsUnreachable_WarningEachThenErrorExit3()
    {
        var (exit, output, error) = await RunAsync("watch", "--agent", "127.0.0.1:1,127.0.0.1:2");

        Assert.Equal(AgentExit.Unreachable, exit);
        Assert.Equal("", output);
        var lines = Lines(error);
        Assert.Equal(3, lines.Length);
        Assert.Contains(lines, l => l.StartsWith("warning: cannot reach the agent at 127.0.0.1:1: ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("warning: cannot reach the agent at 127.0.0.1:2: ", StringComparison.Ordinal));
        Assert.Equal("error: no agent could be watched", lines[2]);
    }

    [Fact]
    public async Task Watch_SeveralAgentsFromSequence_UsageErrorExit2()
    {
        var (exit, output, error) = await RunAsync("watch", "--from-sequence", "10", "--agent", Both);

        Assert.Equal(AgentExit.Usage, exit);
        Assert.Equal("", output);
        Assert.StartsWith("error: --from-sequence: every agent numbers its own records", error);
    }

    [Theory]
    [InlineData("pod", "web-0", "-n", "shop")]
    public async Task SingleAgentCommand_AgentList_UsageErrorExit2(params string[] args)
    {
        var (exit, output, error) = await RunAsync([.. args, "--agent", Both]);

        Assert.Equal(AgentExit.Usage, exit);
        Assert.Equal("", output);
        Assert.StartsWith("error: agent address ", error);
        Assert.Contains("talks to one agent", error);
    }

    [Fact]
    public async Task Help_DocumentsTheListAndThePartialExitCode()
    {
        var output = new StringWriter();
        Assert.Equal(0, await CliRoot.RunAsync(["--help"], output, new StringWriter(), AgentFixture.Environment()));
        Assert.Contains("4 partial", output.ToString());

        var sessionsHelp = new StringWriter();
        Assert.Equal(0, await CliRoot.RunAsync(["sessions", "--help"], sessionsHelp, new StringWriter(), AgentFixture.Environment()));
        Assert.Contains("comma-separated list", sessionsHelp.ToString());
    }

    [Fact]
    public async Task Sessions_AgentListWithBadAddress_UsageErrorNamingIt()
    {
        var (exit, _, error) = await RunAsync("sessions", "--agent", $"{agents.NodeA.Address},ftp://x:1");

        Assert.Equal(AgentExit.Usage, exit);
        Assert.Equal("error: agent address 'ftp://x:1' is not host:port or http(s)://host:port", error.Trim());
    }
}
