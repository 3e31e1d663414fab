using System.Globalization;
using Ebpf.Api.V1;
using Google.Protobuf.WellKnownTypes;
using Spectre.Console;

namespace Ebpf.Cli.Output;

/// <summary>How each answer of the agent reads in a terminal. Pure rendering: no I/O but the console.</summary>
public static class Views
{
    public static void Sessions(IAnsiConsole console, IReadOnlyList<Session> sessions, bool wide)
    {
        if (sessions.Count == 0)
        {
            console.WriteLine("No sessions found.");
            return;
        }
        var table = new Table().Border(TableBorder.Simple);
        table.AddColumns("SESSION", "KIND", "CONFIDENCE", "USER", "NAMESPACE/POD", "CONTAINER", "COMMAND", "STARTED");
        if (wide)
            table.AddColumns("SOURCE IP", "PROCS", "CONNS", "FILES", "NODE");
        foreach (var s in sessions)
        {
            var row = new List<string>
            {
                ShortId(s.Id), KindText(s.Kind), ConfidenceText(s.Confidence), Or(s.User, "<unknown>"),
                PodText(s.Namespace, s.Pod, s.Workload), Or(s.Container, s.Workload?.ContainerName, ShortId(s.Workload?.ContainerId ?? "")),
                Truncate(CommandText(s), wide ? 80 : 40), TimeText(StartOf(s)),
            };
            if (wide)
                row.AddRange([string.Join(",", s.SourceIps), s.ProcessCount.ToString(CultureInfo.InvariantCulture),
                    s.ConnectCount.ToString(CultureInfo.InvariantCulture), s.FileCount.ToString(CultureInfo.InvariantCulture), s.Workload?.Node ?? ""]);
            table.AddRow(row.Select(Markup.Escape).ToArray());
        }
        console.Write(table);
    }

    public static void Session(IAnsiConsole console, SessionDetail detail)
    {
        var s = detail.Session;
        console.MarkupLine($"[bold]Session[/] {Markup.Escape(s.Id)}  [bold]{Markup.Escape(KindText(s.Kind))}[/]  confidence: [bold]{Markup.Escape(ConfidenceText(s.Confidence))}[/]");
        if (!string.IsNullOrEmpty(s.Reason))
            console.WriteLine($"  why:     {s.Reason}");
        if (s.Alternatives.Count > 0)
            console.WriteLine($"  could also be: {string.Join(", ", s.Alternatives.Select(ShortId))}");
        string who = string.IsNullOrEmpty(s.User) ? "<no audit event: unknown user>" : s.User;
        if (s.Groups.Count > 0)
            who += $" (groups: {string.Join(", ", s.Groups)})";
        console.WriteLine($"  who:     {who}");
        if (s.SourceIps.Count > 0 || !string.IsNullOrEmpty(s.UserAgent))
            console.WriteLine($"  from:    {string.Join(", ", s.SourceIps)}{(string.IsNullOrEmpty(s.UserAgent) ? "" : $" via {s.UserAgent}")}");
        if (s.Command.Count > 0 || s.Kind == SessionKind.Exec)
            console.WriteLine($"  command: {CommandText(s)}{(s.Tty ? " (tty)" : "")}{(s.Stdin ? " (stdin)" : "")}");
        console.WriteLine($"  where:   {WhereText(s)}");
        console.WriteLine($"  when:    {WhenText(s)}");
        if (!string.IsNullOrEmpty(s.AuditId))
            console.WriteLine($"  audit:   {s.AuditId} ({s.Verb})");

        if (detail.Processes.Count == 0)
        {
            console.WriteLine("  (no processes recorded on this node)");
            return;
        }
        var tree = new Tree("[bold]processes[/]");
        var nodes = new Dictionary<string, TreeNode>(StringComparer.Ordinal);
        foreach (var p in detail.Processes)
        {
            // Parents come before children; a process whose parent is outside the session hangs off the root.
            TreeNode node = nodes.TryGetValue(p.ParentProcessKey, out var parent)
                ? parent.AddNode(Markup.Escape(ProcessText(p)))
                : tree.AddNode(Markup.Escape(ProcessText(p)));
            nodes[p.ProcessKey] = node;
            foreach (var c in p.Connects)
                node.AddNode(Markup.Escape(ConnectText(c)));
            foreach (var f in p.Files)
                node.AddNode(Markup.Escape(FileText(f)));
        }
        console.Write(tree);
    }

    public static void WhoTouched(IAnsiConsole console, string ns, string pod, WhoTouchedResponse response)
    {
        console.MarkupLine($"[bold]Pod[/] {Markup.Escape(ns)}/{Markup.Escape(pod)}");
        if (response.AuditEvents.Count == 0 && response.Sessions.Count == 0)
        {
            console.WriteLine("Nobody touched this pod in the stored window.");
            return;
        }
        if (response.AuditEvents.Count > 0)
        {
            var table = new Table().Border(TableBorder.Simple).Title("API requests");
            table.AddColumns("TIME", "USER", "VERB", "RESOURCE", "CODE", "SOURCE IP", "AUDIT ID");
            foreach (var a in response.AuditEvents)
            {
                table.AddRow(new[]
                {
                    TimeText(a.RequestReceived), Or(a.AttributedUser, a.User?.Username, ""), a.Verb,
                    string.IsNullOrEmpty(a.Subresource) ? a.Resource : $"{a.Resource}/{a.Subresource}",
                    a.ResponseCode == 0 ? "" : a.ResponseCode.ToString(CultureInfo.InvariantCulture),
                    string.Join(",", a.SourceIps), a.AuditId,
                }.Select(Markup.Escape).ToArray());
            }
            console.Write(table);
        }
        if (response.Sessions.Count > 0)
        {
            console.WriteLine("Sessions:");
            Sessions(console, response.Sessions, wide: false);
        }
    }

    public static void Findings(IAnsiConsole console, IReadOnlyList<Finding> findings)
    {
        if (findings.Count == 0)
        {
            console.WriteLine("No findings.");
            return;
        }
        var table = new Table().Border(TableBorder.Simple);
        table.AddColumns("TIME", "SEVERITY", "KIND", "NAMESPACE/POD", "USER", "SUMMARY");
        foreach (var f in findings)
        {
            table.AddRow(new[]
            {
                TimeText(f.Time), SeverityText(f.Severity), f.Kind, PodText(f.Namespace, f.Pod, null), f.User, f.Summary,
            }.Select(Markup.Escape).ToArray());
        }
        console.Write(table);
    }

    public static void Status(IAnsiConsole console, AgentStatus status)
    {
        console.MarkupLine($"[bold]ebpf-agent[/] {Markup.Escape(status.Version)} on node {Markup.Escape(status.Node)}, up since {Markup.Escape(TimeText(status.Started))}");
        console.WriteLine($"  pod watch:        {status.PodWatchState}");
        console.WriteLine($"  probes attached:  {(status.Probes.Count == 0 ? "none" : string.Join(", ", status.Probes))}");
        console.WriteLine($"  ring buffer fill: {status.RingBufferFill:P1}");
        console.WriteLine($"  last sequence:    {status.LastSequence}");
        console.WriteLine($"  store size:       {FormatBytes(status.StoreBytes)}");
        if (status.Counters.Count > 0)
        {
            var table = new Table().Border(TableBorder.Simple);
            table.AddColumns("COUNTER", "VALUE");
            foreach (var kv in status.Counters.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                table.AddRow(Markup.Escape(kv.Key), kv.Value.ToString(CultureInfo.InvariantCulture));
            console.Write(table);
        }
    }

    /// <summary>One line per streamed record, for `watch`.</summary>
    public static string RecordLine(Record r)
    {
        string seq = r.Sequence.ToString(CultureInfo.InvariantCulture);
        return r.BodyCase switch
        {
            Record.BodyOneofCase.NodeEvent => $"#{seq} {TimeText(r.NodeEvent.Time)} {PodText(r.NodeEvent.Workload?.Namespace ?? "", r.NodeEvent.Workload?.Pod ?? "", r.NodeEvent.Workload)} pid {r.NodeEvent.Pid} {NodeEventText(r.NodeEvent)}{(string.IsNullOrEmpty(r.NodeEvent.SessionId) ? "" : $" [session {ShortId(r.NodeEvent.SessionId)}]")}",
            Record.BodyOneofCase.AuditEvent => $"#{seq} {TimeText(r.AuditEvent.StageTimestamp)} audit {r.AuditEvent.Stage} {r.AuditEvent.AttributedUser} {r.AuditEvent.Verb} {r.AuditEvent.RequestUri} {(r.AuditEvent.ResponseCode == 0 ? "" : r.AuditEvent.ResponseCode.ToString(CultureInfo.InvariantCulture))}".TrimEnd(),
            Record.BodyOneofCase.Session => $"#{seq} session {ShortId(r.Session.Id)} {KindText(r.Session.Kind)} {ConfidenceText(r.Session.Confidence)} {Or(r.Session.User, "<unknown>")} {PodText(r.Session.Namespace, r.Session.Pod, r.Session.Workload)} {CommandText(r.Session)}",
            Record.BodyOneofCase.Attribution => $"#{seq} attribution session {ShortId(r.Attribution.SessionId)} {ConfidenceText(r.Attribution.Confidence)} processes {string.Join(",", r.Attribution.ProcessKeys)}",
            Record.BodyOneofCase.Finding => $"#{seq} FINDING {SeverityText(r.Finding.Severity)} {r.Finding.Kind}: {r.Finding.Summary}",
            Record.BodyOneofCase.Dropped => $"#{seq} !! {r.Dropped.Count} records dropped (this subscriber was too slow; {r.Dropped.Total} in total)",
            _ => $"#{seq} (record of an unknown kind)",
        };
    }

    public static string NodeEventText(NodeEvent e) => e.DetailsCase switch
    {
        NodeEvent.DetailsOneofCase.Exec => $"exec {ArgvText(e.Exec.Argv, e.Exec.Filename)}{(e.Exec.ArgvTruncated ? " …(truncated)" : "")}",
        NodeEvent.DetailsOneofCase.Fork => $"fork child pid {e.Fork.ChildPid}",
        NodeEvent.DetailsOneofCase.Exit => $"exit {ExitText(e.Exit.HasExitCode ? e.Exit.ExitCode : null, e.Exit.HasSignal ? e.Exit.Signal : null)}",
        NodeEvent.DetailsOneofCase.Connect => ConnectText(e.Connect),
        NodeEvent.DetailsOneofCase.FileOpen => FileText(e.FileOpen),
        _ => "event",
    };

    public static string ProcessText(ProcessNode p)
    {
        string text = $"{ArgvText(p.Argv, p.Filename)}  [pid {p.Pid}";
        if (p.HasExitCode || p.HasSignal)
            text += ", " + ExitText(p.HasExitCode ? p.ExitCode : null, p.HasSignal ? p.Signal : null);
        else if (p.End is null)
            text += ", running";
        return text + "]";
    }

    public static string ConnectText(ConnectDetails c)
    {
        string target = c.Family switch
        {
            "unix" => $"unix:{c.Address}",
            "inet6" => $"[{c.Address}]:{c.Port}",
            _ => $"{c.Address}:{c.Port}",
        };
        return $"connect {target} → {ResultText(c.Result, success: "ok")}";
    }

    public static string FileText(FileOpenDetails f) =>
        $"open {f.Path}{(f.PathTruncated ? "…" : "")} {OpenFlagsText(f.Flags)} → {(f.Result >= 0 ? $"fd {f.Result}" : ResultText(f.Result, "ok"))}";

    private static string OpenFlagsText(int flags)
    {
        string access = (flags & 3) switch { 0 => "r", 1 => "w", _ => "rw" };
        if ((flags & 0x40) != 0) access += ",create";
        if ((flags & 0x200) != 0) access += ",trunc";
        if ((flags & 0x400) != 0) access += ",append";
        return $"({access})";
    }

    private static string ResultText(int result, string success) => result switch
    {
        >= 0 => success,
        -2 => "ENOENT",
        -13 => "EACCES",
        -111 => "ECONNREFUSED",
        -115 => "EINPROGRESS",
        -110 => "ETIMEDOUT",
        -101 => "ENETUNREACH",
        -113 => "EHOSTUNREACH",
        -1 => "EPERM",
        _ => $"errno {-result}",
    };

    private static string ExitText(int? code, int? signal) =>
        signal is int s ? $"killed by signal {s}" : code is int c ? $"exit {c}" : "exited";

    public static string ArgvText(IEnumerable<string> argv, string filename)
    {
        var parts = argv.Select(QuoteArg).ToList();
        return parts.Count > 0 ? string.Join(' ', parts) : filename;
    }

    private static string QuoteArg(string a) =>
        a.Length > 0 && a.All(c => char.IsAsciiLetterOrDigit(c) || "-_./:=@%+,".Contains(c, StringComparison.Ordinal))
            ? a : "\"" + a.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";

    private static string CommandText(Session s) =>
        s.Command.Count > 0 ? string.Join(' ', s.Command.Select(QuoteArg)) : s.Kind switch
        {
            SessionKind.Attach => "(attach)",
            SessionKind.PortForward => "(port-forward)",
            _ => "",
        };

    private static string WhereText(Session s)
    {
        var w = s.Workload;
        string pod = PodText(s.Namespace, s.Pod, w);
        string container = Or(s.Container, w?.ContainerName, "");
        string text = $"pod {pod}";
        if (container.Length > 0) text += $", container {container}";
        if (w is not null && w.ContainerId.Length > 0) text += $" ({(w.Runtime.Length > 0 ? w.Runtime + " " : "")}{ShortId(w.ContainerId)})";
        if (w is not null && w.Node.Length > 0) text += $", node {w.Node}";
        if (w is not null && !w.MetadataAvailable && w.PodUid.Length > 0) text += " [pod metadata unavailable]";
        return text;
    }

    private static string WhenText(Session s)
    {
        var start = StartOf(s);
        var end = s.ResponseComplete ?? s.NodeEnd;
        string text = TimeText(start);
        if (end is not null)
        {
            var duration = end.ToDateTimeOffset() - start!.ToDateTimeOffset();
            text += $" → {TimeText(end)} ({duration.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)} s)";
        }
        else
        {
            text += " → (still open)";
        }
        return text;
    }

    private static Timestamp? StartOf(Session s) => s.RequestReceived ?? s.NodeStart;

    public static string PodText(string ns, string pod, Workload? w)
    {
        if (!string.IsNullOrEmpty(pod))
            return $"{ns}/{pod}";
        if (w is not null && w.PodUid.Length > 0)
            return $"pod-uid:{w.PodUid}";
        return "<host>";
    }

    public static string KindText(SessionKind kind) => kind switch
    {
        SessionKind.Exec => "exec",
        SessionKind.Attach => "attach",
        SessionKind.Debug => "debug",
        SessionKind.PortForward => "port-forward",
        SessionKind.UnattributedExec => "unattributed-exec",
        SessionKind.Probe => "probe",
        SessionKind.AuditOnly => "audit-only",
        _ => "unknown",
    };

    public static string ConfidenceText(Confidence c) => c switch
    {
        Confidence.Certain => "certain",
        Confidence.Probable => "probable",
        Confidence.Ambiguous => "AMBIGUOUS",
        Confidence.Unattributed => "UNATTRIBUTED",
        _ => "unknown",
    };

    private static string SeverityText(Severity s) => s switch
    {
        Severity.Info => "info",
        Severity.Low => "low",
        Severity.Medium => "medium",
        Severity.High => "HIGH",
        _ => "unknown",
    };

    public static string TimeText(Timestamp? t) =>
        t is null ? "" : t.ToDateTimeOffset().ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    public static string ShortId(string id) => id.Length > 12 ? id[..12] : id;

    private static string Or(params string?[] values) => values.FirstOrDefault(v => !string.IsNullOrEmpty(v)) ?? "";

    private static string Truncate(string text, int max) => text.Length <= max ? text : text[..(max - 1)] + "…";

    private static string FormatBytes(ulong bytes) => bytes switch
    {
        < 1024 => $"{bytes} B",
        < 1024 * 1024 => $"{bytes / 1024.0:0.0} KiB",
        < 1024UL * 1024 * 1024 => $"{bytes / 1024.0 / 1024:0.0} MiB",
        _ => $"{bytes / 1024.0 / 1024 / 1024:0.00} GiB",
    };
}
