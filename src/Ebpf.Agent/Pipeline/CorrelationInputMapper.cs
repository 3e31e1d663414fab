using System.Net;
using Ebpf.Core.Correlation;
using Ebpf.Core.Identity;
using Ebpf.Core.Processes;
using Ebpf.Events;
using CoreAudit = Ebpf.Core.Audit;

namespace Ebpf.Agent.Pipeline;

/// <summary>
/// Turns decoded kernel events (plus the process table's knowledge of parents) and parsed audit events into
/// the correlator's inputs. Kernel exec/fork records carry only the parent's pid; the parent's key and
/// whether it sits outside the container come from the process table.
/// </summary>
public static class CorrelationInputMapper
{
    /// <param name="actor">The process that made a connect or open (unused for exec/fork/exit, whose records name their process).</param>
    /// <param name="parent">For exec and fork: the parent as the process table knows it.</param>
    /// <param name="parentIdentity">The parent's workload, to tell whether it is outside the child's container.</param>
    public static NodeRecord? FromNodeEvent(NodeEvent e, WorkloadIdentity identity, ProcessInfo? actor, ProcessInfo? parent, WorkloadIdentity? parentIdentity, ulong sequence)
    {
        switch (e)
        {
            case ExecEvent x:
                return new ProcessExecRecord
                {
                    Key = ProcessKey.FromBootTimeNs(x.Tgid, x.StartBootTimeNs),
                    Time = x.Time,
                    BootTimeNs = x.BootTimeNs,
                    Sequence = sequence,
                    ParentKey = parent?.Key,
                    Pid = x.Tgid,
                    Workload = identity,
                    Argv = x.Argv,
                    ArgvTruncated = x.ArgvTruncated,
                    Filename = x.Filename,
                    PreviousImageWasRuntime = x.PreviousImageWasRuntime,
                    ParentOutsideContainer = IsOutside(identity, parentIdentity),
                };
            case ForkEvent f when !f.IsThread:
                return new ProcessForkRecord
                {
                    Key = ProcessKey.FromBootTimeNs(f.ChildTgid, f.ChildStartBootTimeNs),
                    Time = f.Time,
                    BootTimeNs = f.BootTimeNs,
                    Sequence = sequence,
                    ParentKey = parent?.Key ?? new ProcessKey(f.ParentTgid, 0),
                    Pid = f.ChildTgid,
                    Workload = identity,
                };
            case ExitEvent x:
                return new ProcessExitRecord
                {
                    Key = ProcessKey.FromBootTimeNs(x.Tgid, x.StartBootTimeNs),
                    Time = x.Time,
                    BootTimeNs = x.BootTimeNs,
                    Sequence = sequence,
                    ExitCode = x.ExitCode,
                    Signal = x.TermSignal,
                };
            case ConnectEvent c when actor is not null:
                return new ConnectRecord
                {
                    Key = actor.Key,
                    Time = c.Time,
                    BootTimeNs = c.BootTimeNs,
                    Sequence = sequence,
                    Workload = identity,
                    Family = c.Family,
                    Address = c.Address,
                    Port = c.Port,
                    UnixPath = c.UnixPath,
                    Result = c.Result,
                };
            case FileOpenEvent o when actor is not null:
                return new FileOpenRecord
                {
                    Key = actor.Key,
                    Time = o.Time,
                    BootTimeNs = o.BootTimeNs,
                    Sequence = sequence,
                    Path = o.Path,
                    Flags = o.Flags,
                    Result = o.Result,
                };
            default:
                return null;
        }
    }

    /// <summary>A process found in /proc at start-up, so a container's existing processes are not mistaken for new execs.</summary>
    public static ExistingProcessRecord FromExisting(ProcessInfo p, WorkloadIdentity identity, DateTimeOffset now) => new()
    {
        Key = p.Key,
        Time = p.StartTime ?? now,
        ParentKey = p.ParentKey,
        Pid = p.Tgid,
        Workload = identity,
        Argv = p.Argv,
    };

    private static bool IsOutside(WorkloadIdentity child, WorkloadIdentity? parent)
    {
        if (parent is null)
            return true;
        return child.Container?.ContainerId != parent.Container?.ContainerId || child.Container?.PodUid != parent.Container?.PodUid;
    }

    /// <summary>The correlator's view of one audit event; null when the event lacks what every join needs.</summary>
    public static AuditRequest? FromAuditEvent(CoreAudit.AuditEvent a)
    {
        var d = a.Derived;
        if (a.AuditId is null || d.RequestReceivedTime is not { } received || d.StageTime is not { } stageTime)
            return null;
        var stage = a.Stage switch
        {
            CoreAudit.AuditStages.RequestReceived => AuditStage.RequestReceived,
            CoreAudit.AuditStages.ResponseStarted => AuditStage.ResponseStarted,
            CoreAudit.AuditStages.ResponseComplete => AuditStage.ResponseComplete,
            CoreAudit.AuditStages.Panic => AuditStage.Panic,
            _ => (AuditStage?)null,
        };
        if (stage is null)
            return null;
        var s = d.Streaming;
        var token = d.BoundToken is { PodName: { } podName, PodUid: { } podUid } t
            ? new PodBoundToken(podName, podUid, t.NodeName, t.CredentialId)
            : null;
        return new AuditRequest
        {
            AuditId = a.AuditId,
            Stage = stage.Value,
            Verb = a.Verb ?? "",
            User = d.AttributedUser?.Username ?? "",
            Groups = d.AttributedUser?.Groups ?? [],
            SourceIps = a.SourceIps ?? [],
            UserAgent = a.UserAgent ?? "",
            Namespace = s?.PodNamespace ?? a.ObjectRef?.Namespace,
            Resource = a.ObjectRef?.Resource,
            Name = s?.PodName ?? a.ObjectRef?.Name,
            Subresource = a.ObjectRef?.Subresource,
            Container = s?.Container,
            Command = s?.Command ?? [],
            Tty = s?.Tty ?? false,
            Stdin = s?.Stdin ?? false,
            Ports = s?.Ports ?? [],
            RequestReceived = received,
            StageTimestamp = stageTime,
            ResponseCode = a.ResponseStatus?.Code,
            Token = token,
        };
    }
}

/// <summary>The correlator's pod lookups, answered from the pod watch's cache.</summary>
public sealed class PodSpecLookup(Func<string, string, PodMetadata?> byName, Func<string, PodMetadata?> byUid) : IPodSpecLookup
{
    public PodSpecInfo? FindPod(string @namespace, string name) => ToSpec(byName(@namespace, name));

    public PodSpecInfo? FindPodByUid(string uid) => ToSpec(byUid(uid));

    internal static PodSpecInfo? ToSpec(PodMetadata? pod)
    {
        if (pod is null)
            return null;
        var containers = new List<PodContainerSpec>(pod.Containers.Count);
        // Regular containers first, in spec order: kubectl's default container is the first regular one.
        foreach (var c in pod.Containers.OrderBy(c => c.Kind == PodContainerKind.Regular ? 0 : 1))
        {
            containers.Add(new PodContainerSpec
            {
                Name = c.Name,
                ContainerId = string.IsNullOrEmpty(c.ContainerId) ? null : c.ContainerId,
                IsEphemeral = c.Kind == PodContainerKind.Ephemeral,
                ExecCommands = c.KubeletExecs.Select(k => k.Command).ToList(),
            });
        }
        return new PodSpecInfo
        {
            Uid = pod.Uid,
            Namespace = pod.Namespace,
            Name = pod.Name,
            NodeName = pod.NodeName,
            Containers = containers,
            DefaultContainerAnnotation = pod.Annotations.TryGetValue("kubectl.kubernetes.io/default-container", out var annotated) ? annotated : null,
            PodIps = pod.PodIPs.Select(ip => IPAddress.TryParse(ip, out var parsed) ? parsed : null).OfType<IPAddress>().ToList(),
        };
    }
}
