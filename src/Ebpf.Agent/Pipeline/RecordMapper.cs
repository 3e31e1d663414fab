using Ebpf.Api.V1;
using Ebpf.Core.Correlation;
using Ebpf.Core.Identity;
using Ebpf.Core.Processes;
using Ebpf.Events;
using Google.Protobuf.WellKnownTypes;
using CoreAudit = Ebpf.Core.Audit;
using ProtoSessionKind = Ebpf.Api.V1.SessionKind;

namespace Ebpf.Agent.Pipeline;

/// <summary>
/// The one place where the agent's in-memory model becomes API records (ebpf.v1): what is streamed,
/// stored and looked up is exactly what this produces.
/// </summary>
public static class RecordMapper
{
    public static Workload ToWorkload(WorkloadIdentity identity, string node)
    {
        var w = new Workload
        {
            Node = node,
            CgroupId = identity.CgroupId,
            CgroupPath = identity.CgroupPath,
            MetadataAvailable = identity.MetadataAvailable,
        };
        if (identity.Container is { } c)
        {
            w.PodUid = c.PodUid;
            w.ContainerId = c.ContainerId;
            w.QosClass = c.Qos switch
            {
                QosClass.Guaranteed => "guaranteed",
                QosClass.Burstable => "burstable",
                QosClass.BestEffort => "besteffort",
                _ => "",
            };
            w.Runtime = c.Runtime switch
            {
                ContainerRuntime.Containerd => "containerd",
                ContainerRuntime.CriO => "cri-o",
                ContainerRuntime.Docker => "docker",
                _ => "unknown",
            };
        }
        w.Namespace = identity.Namespace ?? "";
        w.Pod = identity.PodName ?? "";
        w.ContainerName = identity.ContainerName ?? "";
        return w;
    }

    /// <summary>A kernel record as an API record. <paramref name="process"/> is the process table's view after applying it.</summary>
    public static Record FromNodeEvent(Events.NodeEvent e, WorkloadIdentity identity, string node, ProcessInfo? process, ProcessInfo? parent, string? sessionId)
    {
        var ne = new Api.V1.NodeEvent
        {
            BootTimeNs = e.BootTimeNs,
            Time = Timestamp.FromDateTimeOffset(e.Time),
            Pid = e.Tgid,
            Tid = e.Tid,
            ProcessKey = process?.Key.ToString() ?? "",
            Workload = ToWorkload(identity, node),
            SessionId = sessionId ?? "",
        };
        switch (e)
        {
            case ExecEvent x:
                ne.ProcessKey = ProcessKey.FromBootTimeNs(x.Tgid, x.StartBootTimeNs).ToString();
                ne.Exec = new ExecDetails
                {
                    ParentPid = x.ParentTgid,
                    ParentProcessKey = parent?.Key.ToString() ?? "",
                    Uid = x.Uid,
                    Gid = x.Gid,
                    LoginUid = x.LoginUid,
                    Filename = x.Filename,
                    ArgvTruncated = x.ArgvTruncated,
                    Cwd = x.Cwd,
                    Comm = x.Comm,
                    PreviousComm = x.PreviousComm,
                    PreviousImageWasRuntime = x.PreviousImageWasRuntime,
                    ExecId = process?.ExecId ?? "",
                };
                ne.Exec.Argv.AddRange(x.Argv);
                break;
            case ForkEvent f:
                var childKey = ProcessKey.FromBootTimeNs(f.ChildTgid, f.ChildStartBootTimeNs).ToString();
                ne.ProcessKey = childKey;
                ne.Pid = f.ChildTgid;
                ne.Fork = new ForkDetails
                {
                    ParentPid = f.ParentTgid,
                    ParentProcessKey = parent?.Key.ToString() ?? "",
                    ChildPid = f.ChildTgid,
                    ChildProcessKey = childKey,
                };
                break;
            case ExitEvent x:
                ne.ProcessKey = ProcessKey.FromBootTimeNs(x.Tgid, x.StartBootTimeNs).ToString();
                ne.Exit = new ExitDetails { WaitStatus = x.WaitStatus };
                if (x.ExitCode is int code) ne.Exit.ExitCode = code;
                if (x.TermSignal is int signal) ne.Exit.Signal = signal;
                break;
            case ConnectEvent c:
                ne.Connect = new ConnectDetails
                {
                    Family = c.Family switch { SocketFamily.Inet => "inet", SocketFamily.Inet6 => "inet6", SocketFamily.Unix => "unix", _ => "other" },
                    Address = c.Family == SocketFamily.Unix ? c.UnixPath : c.Address?.ToString() ?? "",
                    Port = c.Port,
                    Fd = c.Fd,
                    Result = c.Result,
                };
                break;
            case FileOpenEvent o:
                ne.FileOpen = new FileOpenDetails
                {
                    Path = o.Path,
                    PathTruncated = o.PathTruncated,
                    DirFd = o.DirFd,
                    Flags = o.Flags,
                    Mode = o.Mode,
                    Result = o.Result,
                };
                break;
        }
        return new Record { Time = ne.Time, NodeEvent = ne };
    }

    public static Record FromAuditEvent(CoreAudit.AuditEvent a)
    {
        var d = a.Derived;
        var ae = new Api.V1.AuditEvent
        {
            AuditId = a.AuditId ?? "",
            Stage = a.Stage ?? "",
            Level = a.Level ?? "",
            Verb = a.Verb ?? "",
            RequestUri = a.RequestUri ?? "",
            User = ToUser(a.User),
            AttributedUser = d.AttributedUser?.Username ?? "",
            UserAgent = a.UserAgent ?? "",
            Resource = a.ObjectRef?.Resource ?? "",
            Subresource = a.ObjectRef?.Subresource ?? "",
            Namespace = a.ObjectRef?.Namespace ?? "",
            Name = a.ObjectRef?.Name ?? "",
            ApiGroup = a.ObjectRef?.ApiGroup ?? "",
            ResponseCode = a.ResponseStatus?.Code ?? 0,
        };
        if (a.ImpersonatedUser is not null)
            ae.ImpersonatedUser = ToUser(a.ImpersonatedUser);
        if (a.SourceIps is not null)
            ae.SourceIps.AddRange(a.SourceIps);
        if (d.RequestReceivedTime is { } received)
            ae.RequestReceived = Timestamp.FromDateTimeOffset(received);
        if (d.StageTime is { } stageTime)
            ae.StageTimestamp = Timestamp.FromDateTimeOffset(stageTime);
        if (d.Streaming is { } s)
        {
            ae.Container = s.Container ?? "";
            ae.Command.AddRange(s.Command);
            ae.Tty = s.Tty;
            ae.Stdin = s.Stdin;
        }
        return new Record { Time = ae.StageTimestamp ?? ae.RequestReceived, AuditEvent = ae };
    }

    private static UserInfo ToUser(CoreAudit.AuditUserInfo? u)
    {
        var user = new UserInfo { Username = u?.Username ?? "", Uid = u?.Uid ?? "" };
        if (u?.Groups is not null)
            user.Groups.AddRange(u.Groups);
        return user;
    }

    public static Record FromSession(ExecSession s, string node, DateTimeOffset now)
    {
        var session = new Session
        {
            Id = s.Id,
            // Core and proto enums share their numeric values by design (see docs/correlation.md).
            Kind = (ProtoSessionKind)(int)s.Kind,
            Confidence = (Confidence)(int)s.Confidence,
            Reason = s.Reason,
            AuditId = s.AuditId ?? "",
            User = s.User ?? "",
            UserAgent = s.UserAgent ?? "",
            Verb = s.Verb ?? "",
            Namespace = s.Namespace ?? "",
            Pod = s.Pod ?? "",
            Container = s.Container ?? "",
            Tty = s.Tty,
            Stdin = s.Stdin,
            RootProcessKey = s.RootProcessKey?.ToString() ?? "",
            RootPid = s.RootPid ?? 0,
            ProcessCount = (uint)Math.Max(0, s.ProcessCount),
            ConnectCount = (uint)Math.Max(0, s.ConnectCount),
            FileCount = (uint)Math.Max(0, s.FileCount),
        };
        session.Groups.AddRange(s.Groups);
        session.SourceIps.AddRange(s.SourceIps);
        session.Command.AddRange(s.Command);
        session.Alternatives.AddRange(s.Alternatives);
        if (s.RequestReceived is { } rr) session.RequestReceived = Timestamp.FromDateTimeOffset(rr);
        if (s.ResponseStarted is { } rs) session.ResponseStarted = Timestamp.FromDateTimeOffset(rs);
        if (s.ResponseComplete is { } rc) session.ResponseComplete = Timestamp.FromDateTimeOffset(rc);
        if (s.NodeStart is { } ns) session.NodeStart = Timestamp.FromDateTimeOffset(ns);
        if (s.NodeEnd is { } ne) session.NodeEnd = Timestamp.FromDateTimeOffset(ne);
        if (s.Workload is { } w)
            session.Workload = ToWorkload(w, node);
        else if (s.PodUid is not null)
            session.Workload = new Workload { Node = node, PodUid = s.PodUid, Namespace = s.Namespace ?? "", Pod = s.Pod ?? "" };
        return new Record { Time = Timestamp.FromDateTimeOffset(now), Session = session };
    }

    public static Record FromAttribution(AttributionUpdated a, DateTimeOffset now)
    {
        var update = new AttributionUpdate { SessionId = a.SessionId, Confidence = (Confidence)(int)a.Confidence };
        foreach (var key in a.ProcessKeys)
            update.ProcessKeys.Add(key.ToString());
        update.Sequences.AddRange(a.Sequences);
        return new Record { Time = Timestamp.FromDateTimeOffset(now), Attribution = update };
    }

    public static Record FromFinding(CorrelationFinding f, string node)
    {
        var finding = new Finding
        {
            Id = f.Id,
            Kind = f.Kind,
            Severity = (Severity)(int)f.Severity,
            Summary = f.Summary,
            Time = Timestamp.FromDateTimeOffset(f.Time),
            Namespace = f.Namespace ?? "",
            Pod = f.Pod ?? "",
            User = f.User ?? "",
            SessionId = f.SessionId ?? "",
            Node = node,
        };
        foreach (var (key, value) in f.Evidence)
            finding.Evidence[key] = value;
        return new Record { Time = finding.Time, Finding = finding };
    }
}
