using System.Globalization;
using Ebpf.Api.V1;
using Google.Protobuf.WellKnownTypes;

namespace Ebpf.Api;

/// <summary>
/// Plain-text renderings of API records, shared by `kubectl exectrace` and `ebpf-agent run --print`: one
/// wording for a record wherever a person reads it.
/// </summary>
public static class RecordText
{
    /// <summary>One line per streamed record, for `watch`.</summary>
    public static string Line(Record r)
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
        // A process that exec'd more than once (sh replacing itself with its last command) shows each image.
        string program = p.Images.Count > 1
            ? string.Join(" → ", p.Images.Select(i => ArgvText(i.Argv, i.Filename)))
            : p.Argv.Count > 0 || p.Filename.Length > 0 ? ArgvText(p.Argv, p.Filename) : "(forked, no exec: runs its parent's program)";
        string text = $"{program}  [pid {p.Pid}";
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

    public static string OpenFlagsText(int flags)
    {
        string access = (flags & 3) switch { 0 => "r", 1 => "w", _ => "rw" };
        if ((flags & 0x40) != 0) access += ",create";
        if ((flags & 0x200) != 0) access += ",trunc";
        if ((flags & 0x400) != 0) access += ",append";
        return $"({access})";
    }

    public static string ResultText(int result, string success) => result switch
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

    public static string ExitText(int? code, int? signal) =>
        signal is int s ? $"killed by signal {s}" : code is int c ? $"exit {c}" : "exited";

    public static string ArgvText(IEnumerable<string> argv, string filename)
    {
        var parts = argv.Select(QuoteArg).ToList();
        return parts.Count > 0 ? string.Join(' ', parts) : filename;
    }

    public static string QuoteArg(string a) =>
        a.Length > 0 && a.All(c => char.IsAsciiLetterOrDigit(c) || "-_./:=@%+,".Contains(c, StringComparison.Ordinal))
            ? a : "\"" + a.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";

    public static string CommandText(Session s) =>
        s.Command.Count > 0 ? string.Join(' ', s.Command.Select(QuoteArg)) : s.Kind switch
        {
            SessionKind.Attach => "(attach)",
            SessionKind.PortForward => "(port-forward)",
            _ => "",
        };

    public static string WhereText(Session s)
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

    public static string WhenText(Session s)
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

    public static Timestamp? StartOf(Session s) => s.RequestReceived ?? s.NodeStart;

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

    public static string SeverityText(Severity s) => s switch
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

    public static string Or(params string?[] values) => values.FirstOrDefault(v => !string.IsNullOrEmpty(v)) ?? "";

    public static string Truncate(string text, int max) => text.Length <= max ? text : text[..(max - 1)] + "…";

    public static string FormatBytes(ulong bytes) => bytes switch
    {
        < 1024 => $"{bytes} B",
        < 1024 * 1024 => $"{bytes / 1024.0:0.0} KiB",
        < 1024UL * 1024 * 1024 => $"{bytes / 1024.0 / 1024:0.0} MiB",
        _ => $"{bytes / 1024.0 / 1024 / 1024:0.00} GiB",
    };
}
