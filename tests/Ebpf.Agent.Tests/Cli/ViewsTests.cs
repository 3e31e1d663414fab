using Ebpf.Api.V1;
using Ebpf.Cli.Output;
using Google.Protobuf.WellKnownTypes;

namespace Ebpf.Agent.Tests.Cli;

public sealed class ViewsTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 22, 10, 0, 0, TimeSpan.Zero);

    private static SessionDetail ShWithCatAndWget()
    {
        var session = new Session
        {
            Id = "s-0123456789abcdef", Kind = SessionKind.Exec, Confidence = Confidence.Certain, Reason = "argv, container and time match one audit event",
            User = "alice@example.com", Groups = { "system:authenticated", "dev" }, SourceIps = { "10.1.2.3" }, UserAgent = "kubectl/v1.31.0",
            Verb = "create", Namespace = "shop", Pod = "web-1", Container = "app", Command = { "sh", "-c", "cat /etc/hostname; wget -q -O- http://127.0.0.1:8080/" },
            AuditId = "a1b2", RequestReceived = Timestamp.FromDateTimeOffset(T0), ResponseComplete = Timestamp.FromDateTimeOffset(T0.AddSeconds(2.5)),
            Workload = new Workload { Node = "node-1", PodUid = "uid-1", Namespace = "shop", Pod = "web-1", ContainerName = "app", ContainerId = "4f3a9c0d1e2f3a4b5c6d", Runtime = "containerd", MetadataAvailable = true },
        };
        return new SessionDetail
        {
            Session = session,
            Processes =
            {
                new ProcessNode { ProcessKey = "100@1", ParentProcessKey = "90@1", Pid = 100, Argv = { "sh", "-c", "cat /etc/hostname; wget -q -O- http://127.0.0.1:8080/" }, ExitCode = 0, End = Timestamp.FromDateTimeOffset(T0.AddSeconds(2)) },
                new ProcessNode { ProcessKey = "101@1", ParentProcessKey = "100@1", Pid = 101, Argv = { "cat", "/etc/hostname" }, ExitCode = 0, Files = { new FileOpenDetails { Path = "/etc/hostname", Result = 3 } } },
                new ProcessNode { ProcessKey = "102@1", ParentProcessKey = "100@1", Pid = 102, Argv = { "wget", "-q", "-O-", "http://127.0.0.1:8080/" }, Signal = 9,
                    Connects = { new ConnectDetails { Family = "inet", Address = "127.0.0.1", Port = 8080, Result = 0 } } },
            },
        };
    }

    private static string Render(Action<Spectre.Console.IAnsiConsole> render)
    {
        var writer = new StringWriter();
        render(CliConsole.Create(writer, interactive: false));
        return writer.ToString();
    }

    [Fact]
    public void Session_ShWithChildren_TreeShowsWhoAndWhat()
    {
        string text = Render(c => Views.Session(c, ShWithCatAndWget()));

        Assert.Contains("confidence: certain", text, StringComparison.Ordinal);
        Assert.Contains("who:     alice@example.com (groups: system:authenticated, dev)", text, StringComparison.Ordinal);
        Assert.Contains("from:    10.1.2.3 via kubectl/v1.31.0", text, StringComparison.Ordinal);
        Assert.Contains("pod shop/web-1, container app (containerd 4f3a9c0d1e2f), node node-1", text, StringComparison.Ordinal);
        Assert.Contains("(2.5 s)", text, StringComparison.Ordinal);
        var lines = text.Split('\n');
        int sh = Array.FindIndex(lines, l => l.Contains("sh -c \"cat /etc/hostname; wget", StringComparison.Ordinal) && l.Contains("[pid 100, exit 0]", StringComparison.Ordinal));
        int cat = Array.FindIndex(lines, l => l.Contains("cat /etc/hostname  [pid 101, exit 0]", StringComparison.Ordinal));
        int open = Array.FindIndex(lines, l => l.Contains("open /etc/hostname (r) → fd 3", StringComparison.Ordinal));
        int wget = Array.FindIndex(lines, l => l.Contains("wget -q -O- http://127.0.0.1:8080/  [pid 102, killed by signal 9]", StringComparison.Ordinal));
        int connect = Array.FindIndex(lines, l => l.Contains("connect 127.0.0.1:8080 → ok", StringComparison.Ordinal));
        Assert.True(sh >= 0 && cat > sh && open > cat && wget > open && connect > wget, text);
        // Children are indented below their parent.
        Assert.True(lines[cat].IndexOf("cat", StringComparison.Ordinal) > lines[sh].IndexOf("sh -c", StringComparison.Ordinal), text);
    }

    [Fact]
    public void Sessions_Ambiguous_ShownPlainly()
    {
        var s = ShWithCatAndWget().Session;
        s.Confidence = Confidence.Ambiguous;
        string text = Render(c => Views.Sessions(c, [s], wide: true));

        Assert.Contains("AMBIGUOUS", text, StringComparison.Ordinal);
        Assert.Contains("shop/web-1", text, StringComparison.Ordinal);
        Assert.Contains("10.1.2.3", text, StringComparison.Ordinal);
    }

    [Fact]
    public void ProcessText_ExecedTwiceAndForkOnly_ReadPlainly()
    {
        var shell = new ProcessNode { Pid = 7, Argv = { "wget", "u" }, ExitCode = 0 };
        shell.Images.Add(new ExecImage { Argv = { "sh", "-c", "cat f; wget u" } });
        shell.Images.Add(new ExecImage { Argv = { "wget", "u" } });

        Assert.Equal("sh -c \"cat f; wget u\" → wget u  [pid 7, exit 0]", Ebpf.Api.RecordText.ProcessText(shell));
        Assert.Equal("(forked, no exec: runs its parent's program)  [pid 8, running]", Ebpf.Api.RecordText.ProcessText(new ProcessNode { Pid = 8 }));
    }

    [Fact]
    public void Sessions_None_SaysSo() =>
        Assert.Contains("No sessions found.", Render(c => Views.Sessions(c, [], wide: false)), StringComparison.Ordinal);

    [Fact]
    public void RecordLine_Dropped_Explicit()
    {
        var line = Ebpf.Api.RecordText.Line(new Ebpf.Api.V1.Record { Sequence = 42, Dropped = new Dropped { Count = 7, Total = 9 } });
        Assert.Equal("#42 !! 7 records dropped (this subscriber was too slow; 9 in total)", line);
    }

    [Fact]
    public void Serialized_JsonAndYaml_SameFields()
    {
        var s = ShWithCatAndWget().Session;
        string json = Serialized.Json(s);
        string yaml = Serialized.Yaml(json);

        Assert.Contains("\"user\":\"alice@example.com\"", json.Replace(" ", "", StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.Contains("user: alice@example.com", yaml, StringComparison.Ordinal);
        Assert.Contains("confidence: CONFIDENCE_CERTAIN", yaml, StringComparison.Ordinal);
    }
}
