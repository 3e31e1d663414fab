using System.Net;
using Ebpf.Api.V1;
using Ebpf.Core.Correlation;
using Ebpf.Core.Identity;
using Ebpf.Core.Processes;
using Ebpf.Events;
using NodeEvent = Ebpf.Api.V1.NodeEvent;

namespace Ebpf.Agent.Pipeline;

/// <summary>
/// Turns stored ebpf.v1 records back into the correlator's inputs, so that after a restart the correlator knows the
/// execs still waiting for their audit event (webhook batches arrive 30 s and more late) and the requests still
/// waiting for their process. What the journal does not keep is not rebuilt: port-forward ports and pod-bound
/// token claims of audit events.
/// </summary>
public static class StoredRecordMapper
{
    /// <param name="workload">The record's workload as the identity resolver knows it now; null when it no longer resolves.</param>
    /// <param name="parentInSameContainer">Whether the parent is a process of the same container (the capture only sees container processes, so a parent it never reported is outside).</param>
    public static NodeRecord? FromStored(Record record, WorkloadIdentity? workload, bool parentInSameContainer)
    {
        if (record.BodyCase != Record.BodyOneofCase.NodeEvent)
            return null;
        var e = record.NodeEvent;
        var time = (e.Time ?? record.Time)?.ToDateTimeOffset() ?? DateTimeOffset.MinValue;
        switch (e.DetailsCase)
        {
            case NodeEvent.DetailsOneofCase.Exec when workload is not null && ProcessKey.TryParse(e.ProcessKey, out var key):
                ProcessKey.TryParse(e.Exec.ParentProcessKey, out var parentKey);
                return new ProcessExecRecord
                {
                    Key = key.Value,
                    Time = time,
                    BootTimeNs = e.BootTimeNs,
                    Sequence = record.Sequence,
                    ParentKey = parentKey,
                    Pid = e.Pid,
                    Workload = workload,
                    Argv = e.Exec.Argv.ToList(),
                    ArgvTruncated = e.Exec.ArgvTruncated,
                    Filename = e.Exec.Filename,
                    PreviousImageWasRuntime = e.Exec.PreviousImageWasRuntime,
                    ParentOutsideContainer = !parentInSameContainer,
                };
            case NodeEvent.DetailsOneofCase.Fork when ProcessKey.TryParse(e.Fork.ChildProcessKey, out var child)
                && ProcessKey.TryParse(e.Fork.ParentProcessKey, out var parent):
                return new ProcessForkRecord
                {
                    Key = child.Value,
                    Time = time,
                    BootTimeNs = e.BootTimeNs,
                    Sequence = record.Sequence,
                    ParentKey = parent.Value,
                    Pid = e.Fork.ChildPid,
                    Workload = workload,
                };
            case NodeEvent.DetailsOneofCase.Exit when ProcessKey.TryParse(e.ProcessKey, out var key):
                return new ProcessExitRecord
                {
                    Key = key.Value,
                    Time = time,
                    BootTimeNs = e.BootTimeNs,
                    Sequence = record.Sequence,
                    ExitCode = e.Exit.HasExitCode ? e.Exit.ExitCode : null,
                    Signal = e.Exit.HasSignal ? e.Exit.Signal : null,
                };
            case NodeEvent.DetailsOneofCase.Connect when ProcessKey.TryParse(e.ProcessKey, out var key):
                var c = e.Connect;
                var family = c.Family switch { "inet" => SocketFamily.Inet, "inet6" => SocketFamily.Inet6, "unix" => SocketFamily.Unix, _ => (SocketFamily?)null };
                if (family is null)
                    return null;
                return new ConnectRecord
                {
                    Key = key.Value,
                    Time = time,
                    BootTimeNs = e.BootTimeNs,
                    Sequence = record.Sequence,
                    Workload = workload,
                    Family = family.Value,
                    Address = family == SocketFamily.Unix ? null : IPAddress.TryParse(c.Address, out var address) ? address : null,
                    Port = (int)c.Port,
                    UnixPath = family == SocketFamily.Unix ? c.Address : "",
                    Result = c.Result,
                };
            case NodeEvent.DetailsOneofCase.FileOpen when ProcessKey.TryParse(e.ProcessKey, out var key):
                return new FileOpenRecord
                {
                    Key = key.Value,
                    Time = time,
                    BootTimeNs = e.BootTimeNs,
                    Sequence = record.Sequence,
                    Path = e.FileOpen.Path,
                    Flags = e.FileOpen.Flags,
                    Result = e.FileOpen.Result,
                };
            default:
                return null;
        }
    }

    /// <summary>A stored audit event as the correlator's request stage; null when it lacks what every join needs.</summary>
    public static AuditRequest? FromStored(AuditEvent a)
    {
        var stage = a.Stage switch
        {
            "RequestReceived" => AuditStage.RequestReceived,
            "ResponseStarted" => AuditStage.ResponseStarted,
            "ResponseComplete" => AuditStage.ResponseComplete,
            "Panic" => AuditStage.Panic,
            _ => (AuditStage?)null,
        };
        if (stage is null || a.AuditId.Length == 0 || a.RequestReceived is null || a.StageTimestamp is null)
            return null;
        // The attributed user is the impersonated one when there is one, as when the event was first parsed.
        var user = a.ImpersonatedUser is { Username.Length: > 0 } impersonated ? impersonated : a.User;
        return new AuditRequest
        {
            AuditId = a.AuditId,
            Stage = stage.Value,
            Verb = a.Verb,
            User = a.AttributedUser.Length > 0 ? a.AttributedUser : user?.Username ?? "",
            Groups = user?.Groups.ToList() ?? [],
            SourceIps = a.SourceIps.ToList(),
            UserAgent = a.UserAgent,
            Namespace = NullIfEmpty(a.Namespace),
            Resource = NullIfEmpty(a.Resource),
            Name = NullIfEmpty(a.Name),
            Subresource = NullIfEmpty(a.Subresource),
            Container = NullIfEmpty(a.Container),
            Command = a.Command.ToList(),
            Tty = a.Tty,
            Stdin = a.Stdin,
            RequestReceived = a.RequestReceived.ToDateTimeOffset(),
            StageTimestamp = a.StageTimestamp.ToDateTimeOffset(),
            ResponseCode = a.ResponseCode == 0 ? null : a.ResponseCode,
        };
    }

    private static string? NullIfEmpty(string s) => s.Length == 0 ? null : s;
}
