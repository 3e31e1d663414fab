using System.Globalization;
using Ebpf.Api.V1;
using Google.Protobuf.WellKnownTypes;
using Spectre.Console;
using static Ebpf.Api.RecordText;

namespace Ebpf.Cli.Output;

/// <summary>How each answer of the agent reads in a terminal. Pure rendering: no I/O but the console.</summary>
public static class Views
{
    /// <param name="nodeColumn">Answers merged from several agents: name each row's node (wide always does).</param>
    public static void Sessions(IAnsiConsole console, IReadOnlyList<Session> sessions, bool wide, bool nodeColumn = false)
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
        else if (nodeColumn)
            table.AddColumn("NODE");
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
            else if (nodeColumn)
                row.Add(s.Workload?.Node ?? "");
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

    /// <param name="nodeColumn">Answers merged from several agents: name each row's node.</param>
    public static void Findings(IAnsiConsole console, IReadOnlyList<Finding> findings, bool nodeColumn = false)
    {
        if (findings.Count == 0)
        {
            console.WriteLine("No findings.");
            return;
        }
        var table = new Table().Border(TableBorder.Simple);
        table.AddColumns("TIME", "SEVERITY", "KIND", "NAMESPACE/POD", "USER", "SUMMARY");
        if (nodeColumn)
            table.AddColumn("NODE");
        foreach (var f in findings)
        {
            var row = new List<string> { TimeText(f.Time), SeverityText(f.Severity), f.Kind, PodText(f.Namespace, f.Pod, null), f.User, f.Summary };
            if (nodeColumn)
                row.Add(f.Node);
            table.AddRow(row.Select(Markup.Escape).ToArray());
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
}
