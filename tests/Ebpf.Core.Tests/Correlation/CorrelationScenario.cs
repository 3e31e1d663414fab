using System.Net;
using Ebpf.Core.Correlation;
using Ebpf.Core.Identity;
using Ebpf.Core.Processes;
using Ebpf.Events;

namespace Ebpf.Core.Tests.Correlation;

/// <summary>In-memory pod metadata, as an informer cache would hold it.</summary>
internal sealed class PodTable : IPodSpecLookup
{
    private readonly Dictionary<string, PodSpecInfo> _byUid = [];

    public void Set(PodSpecInfo pod) => _byUid[pod.Uid] = pod;

    public PodSpecInfo? FindPod(string @namespace, string name) =>
        _byUid.Values.FirstOrDefault(p => p.Namespace == @namespace && p.Name == name);

    public PodSpecInfo? FindPodByUid(string uid) => _byUid.GetValueOrDefault(uid);
}

internal sealed class ManualTime(DateTimeOffset now) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = now;
    public override DateTimeOffset GetUtcNow() => Now;
}

/// <summary>
/// A node with one pod (shop/web-7d4b9: containers app, sidecar; app has an exec liveness probe) and the
/// record builders a test needs. Times are offsets in ms from <see cref="T0"/>.
/// </summary>
internal sealed class CorrelationScenario
{
    public static readonly DateTimeOffset T0 = new(2026, 11, 22, 10, 0, 0, TimeSpan.Zero);
    public const string Ns = "shop";
    public const string PodName = "web-7d4b9";
    public const string PodUid = "5f1c2a7e-3b1d-4c1e-9a55-0d6f3c1b2a90";
    public const string AppId = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
    public const string SidecarId = "b1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
    public const string DebuggerId = "d1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
    public static readonly IPAddress PodIp = IPAddress.Parse("10.244.1.17");
    public static readonly IPEndPoint ApiServer = new(IPAddress.Parse("10.96.0.1"), 443);
    public static readonly string[] Probe = ["cat", "/tmp/healthy"];

    public PodTable Pods { get; } = new();
    public ManualTime Time { get; } = new(T0);
    public CorrelationOptions Options { get; } = new() { NodeName = "node-1", ApiServerEndpoints = [ApiServer] };
    public List<CorrelationOutput> Outputs { get; } = [];
    private ExecSessionCorrelator? _correlator;
    private ulong _sequence;

    public CorrelationScenario(string? defaultContainerAnnotation = null)
    {
        Pods.Set(new PodSpecInfo
        {
            Uid = PodUid, Namespace = Ns, Name = PodName, NodeName = "node-1",
            DefaultContainerAnnotation = defaultContainerAnnotation,
            PodIps = [PodIp],
            Containers =
            [
                new PodContainerSpec { Name = "app", ContainerId = AppId, ExecCommands = [Probe] },
                new PodContainerSpec { Name = "sidecar", ContainerId = SidecarId },
            ],
        });
    }

    public ExecSessionCorrelator Correlator => _correlator ??= new ExecSessionCorrelator(Options, Pods, Time);

    public static DateTimeOffset At(double ms) => T0.AddMilliseconds(ms);

    public static ProcessKey Key(int pid, ulong startTicks) => new(pid, startTicks);

    public static WorkloadIdentity Workload(string containerId, string? containerName = null) => new()
    {
        CgroupId = (ulong)containerId.GetHashCode(StringComparison.Ordinal) & 0xffffff,
        CgroupPath = $"/kubepods/besteffort/pod{PodUid}/{containerId}",
        Container = new ContainerCgroup(PodUid, containerId, QosClass.BestEffort, ContainerRuntime.Containerd),
        Namespace = containerName is null ? null : Ns,
        PodName = containerName is null ? null : PodName,
        ContainerName = containerName,
    };

    public static readonly WorkloadIdentity HostWorkload = WorkloadIdentity.Host(1, "/system.slice/containerd.service");

    public string? Node(NodeRecord record) => Feed(record).SessionId;

    public NodeCorrelation Feed(NodeRecord record)
    {
        var result = Correlator.OnNodeEvent(record);
        Outputs.AddRange(result.Outputs);
        return result;
    }

    public IReadOnlyList<CorrelationOutput> Audit(AuditRequest request)
    {
        var result = Correlator.OnAuditEvent(request);
        Outputs.AddRange(result);
        return result;
    }

    public IReadOnlyList<CorrelationOutput> Tick(double ms)
    {
        Time.Now = At(ms);
        var result = Correlator.Tick();
        Outputs.AddRange(result);
        return result;
    }

    /// <summary>The container's init, as /proc shows it when the agent starts.</summary>
    public ProcessKey ContainerInit(string containerId, int pid)
    {
        var key = Key(pid, 100);
        Feed(new ExistingProcessRecord { Key = key, Pid = pid, Time = At(-3_600_000), Workload = Workload(containerId), Argv = ["/app/server"] });
        return key;
    }

    /// <summary>The process runc exec starts: previous image runc:[2:INIT], parent outside the container.</summary>
    public ProcessExecRecord RuntimeExec(int pid, double ms, string containerId, params string[] argv) => new()
    {
        Key = Key(pid, TicksAt(ms)), Pid = pid, Time = At(ms), Workload = Workload(containerId), Argv = argv,
        Filename = argv.Length > 0 ? argv[0] : "", PreviousImageWasRuntime = true, ParentOutsideContainer = true,
        ParentKey = Key(900_000 + pid, TicksAt(ms) - 1), Sequence = ++_sequence,
    };

    public ProcessForkRecord Fork(ProcessKey parent, int childPid, double ms, string containerId) => new()
    {
        Key = Key(childPid, TicksAt(ms)), ParentKey = parent, Pid = childPid, Time = At(ms), Workload = Workload(containerId),
        Sequence = ++_sequence,
    };

    public ProcessExecRecord ChildExec(ProcessKey key, ProcessKey parent, double ms, string containerId, params string[] argv) => new()
    {
        Key = key, Pid = key.Tgid, ParentKey = parent, Time = At(ms), Workload = Workload(containerId), Argv = argv,
        Filename = argv[0], Sequence = ++_sequence,
    };

    public ConnectRecord Connect(ProcessKey key, double ms, IPAddress address, int port, string? networkPodUid = null, WorkloadIdentity? workload = null) => new()
    {
        Key = key, Time = At(ms), Family = SocketFamily.Inet, Address = address, Port = port, Result = 0,
        NetworkPodUid = networkPodUid, Workload = workload, Sequence = ++_sequence,
    };

    public FileOpenRecord Open(ProcessKey key, double ms, string path) => new()
    {
        Key = key, Time = At(ms), Path = path, Result = 3, Sequence = ++_sequence,
    };

    public ProcessExitRecord Exit(ProcessKey key, double ms, int code = 0) => new()
    {
        Key = key, Time = At(ms), ExitCode = code, Sequence = ++_sequence,
    };

    public static ulong TicksAt(double ms) => 1_000_000 + (ulong)(ms / 10);

    public static AuditRequest ExecAudit(string auditId, AuditStage stage, double requestReceivedMs, double stageMs, string[] command,
        string? container = "app", string user = "alice@example.com", string verb = "create", int? code = null, string subresource = "exec") => new()
    {
        AuditId = auditId,
        Stage = stage,
        Verb = verb,
        User = user,
        Groups = ["system:authenticated", "devs"],
        SourceIps = ["192.0.2.10"],
        UserAgent = "kubectl/v1.31.0 (linux/amd64) kubernetes/abcdef0",
        Namespace = Ns,
        Resource = "pods",
        Name = PodName,
        Subresource = subresource,
        Container = container,
        Command = command,
        Tty = true,
        Stdin = true,
        RequestReceived = At(requestReceivedMs),
        StageTimestamp = At(stageMs),
        ResponseCode = code ?? (stage == AuditStage.RequestReceived ? null : 101),
    };

    /// <summary>The stages a default audit policy writes for an exec that lasted until <paramref name="completeMs"/>.</summary>
    public static AuditRequest[] ExecStages(string auditId, double requestReceivedMs, double completeMs, string[] command,
        string? container = "app", string user = "alice@example.com", string verb = "create") =>
    [
        ExecAudit(auditId, AuditStage.RequestReceived, requestReceivedMs, requestReceivedMs, command, container, user, verb),
        ExecAudit(auditId, AuditStage.ResponseStarted, requestReceivedMs, requestReceivedMs + 40, command, container, user, verb),
        ExecAudit(auditId, AuditStage.ResponseComplete, requestReceivedMs, completeMs, command, container, user, verb),
    ];

    public T[] Of<T>() where T : CorrelationOutput => Outputs.OfType<T>().ToArray();

    public ExecSession Session(string id) => Correlator.FindSession(id) ?? throw new InvalidOperationException($"no session {id}");
}
