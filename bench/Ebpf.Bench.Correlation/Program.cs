// Correlation benchmark: join throughput with 1k concurrent exec sessions over 10k processes, and the latency
// of the attribution update when an audit event arrives after its process (the usual order: webhook batching).
// Usage: dotnet run -c Release --project bench/Ebpf.Bench.Correlation [-- --events N --latency-samples N]
using System.Diagnostics;
using System.Globalization;
using System.Net;
using Ebpf.Core.Correlation;
using Ebpf.Core.Identity;
using Ebpf.Core.Processes;
using Ebpf.Events;

int events = ArgOr("--events", 3_000_000);
int latencySamples = ArgOr("--latency-samples", 20_000);
const int Pods = 500;
const int Sessions = 1_000;
const int ProcessesPerSession = 10;

var bench = new Bench(Pods);
var setup = Stopwatch.StartNew();
bench.StartSessions(Sessions, ProcessesPerSession);
setup.Stop();
var counters = bench.Correlator.Counters;
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"setup: {Sessions} sessions, {counters.TrackedProcesses} tracked processes, {counters.SessionsCertain} certain, in {setup.Elapsed.TotalMilliseconds:F0} ms"));

// Warm-up then measure.
bench.RunNodeEvents(200_000);
long allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
var sw = Stopwatch.StartNew();
int attributed = bench.RunNodeEvents(events);
sw.Stop();
var cpu = Process.GetCurrentProcess().TotalProcessorTime - cpuBefore;
long allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
counters = bench.Correlator.Counters;
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"join throughput: {events / sw.Elapsed.TotalSeconds:N0} node events/s wall, {events / cpu.TotalSeconds:N0} per CPU-second ({events:N0} events in {sw.Elapsed.TotalMilliseconds:F0} ms; {attributed * 100.0 / events:F1}% carried a session id; {allocated / (double)events:F0} B allocated/event; tracked processes {counters.TrackedProcesses:N0})"));

var latencies = bench.MeasureAttributionLatency(latencySamples);
Array.Sort(latencies);
double P(double q) => latencies[Math.Min(latencies.Length - 1, (int)(q * latencies.Length))];
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"attribution latency after audit arrival (node-first, {latencies.Length:N0} samples, {bench.Correlator.Counters.PendingRoots} pending roots): p50 {P(0.50):F1} µs, p99 {P(0.99):F1} µs, max {latencies[^1]:F1} µs"));
counters = bench.Correlator.Counters;
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"state: sessions certain {counters.SessionsCertain}, probable {counters.SessionsProbable}, ambiguous {counters.SessionsAmbiguous}, unattributed {counters.SessionsUnattributed}; pending roots {counters.PendingRoots}; expired sessions {counters.SessionsExpired}, processes {counters.ProcessesExpired}"));
if (counters.SessionsAmbiguous != 0 || counters.SessionsUnattributed != 0)
{
    Console.Error.WriteLine("FAILED: the synthetic load has exactly one request per process; nothing may be ambiguous or unattributed");
    return 1;
}
return 0;

static int ArgOr(string name, int fallback)
{
    var args = Environment.GetCommandLineArgs();
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
}

internal sealed class Bench
{
    private readonly PodLookup _pods = new();
    private readonly List<PodSpecInfo> _podList = [];
    private readonly List<ProcessKey> _sessionProcesses = [];
    private readonly Dictionary<ProcessKey, string> _containerOf = [];
    private readonly Random _random = new(12345);
    private readonly IPAddress _remote = IPAddress.Parse("93.184.215.14");
    private DateTimeOffset _now = new(2026, 11, 22, 10, 0, 0, TimeSpan.Zero);
    private int _nextPid = 10_000;
    private ulong _sequence;
    private int _auditSerial;

    public ExecSessionCorrelator Correlator { get; }

    public Bench(int pods)
    {
        Correlator = new ExecSessionCorrelator(new CorrelationOptions { NodeName = "node-1" }, _pods, TimeProvider.System);
        for (int i = 0; i < pods; i++)
        {
            string uid = $"00000000-0000-4000-8000-{i:D12}";
            string containerId = $"{i:D8}".PadRight(64, 'c');
            var pod = new PodSpecInfo
            {
                Uid = uid, Namespace = "load", Name = $"worker-{i}", NodeName = "node-1",
                Containers = [new PodContainerSpec { Name = "app", ContainerId = containerId, ExecCommands = [["cat", "/tmp/healthy"]] }],
            };
            _pods.Add(pod);
            _podList.Add(pod);
            Correlator.OnNodeEvent(new ExistingProcessRecord
            {
                Key = new ProcessKey(_nextPid, 1), Pid = _nextPid++, Time = _now.AddHours(-1), Workload = Workload(pod), Argv = ["/app/server"],
            });
        }
    }

    private static WorkloadIdentity Workload(PodSpecInfo pod) => new()
    {
        CgroupId = 1,
        Container = new ContainerCgroup(pod.Uid, pod.Containers[0].ContainerId!, QosClass.BestEffort, ContainerRuntime.Containerd),
    };

    private ProcessKey NewKey() => new(_nextPid++, (ulong)(_now - DateTimeOffset.UnixEpoch).Ticks / 100_000);

    private AuditRequest Audit(PodSpecInfo pod, string[] argv, AuditStage stage) => new()
    {
        AuditId = $"bench-{_auditSerial++}", Stage = stage, Verb = "create", User = "load@example.com", Namespace = pod.Namespace,
        Resource = "pods", Name = pod.Name, Subresource = "exec", Container = "app", Command = argv,
        RequestReceived = _now, StageTimestamp = _now.AddMilliseconds(30), ResponseCode = 101,
    };

    /// <summary>Audit first, then a root and its descendants: long-running shells that the load below keeps busy.</summary>
    public void StartSessions(int sessions, int processesPerSession)
    {
        for (int i = 0; i < sessions; i++)
        {
            var pod = _podList[i % _podList.Count];
            string[] argv = ["sh", "-c", $"job-{i}"];
            Correlator.OnAuditEvent(Audit(pod, argv, AuditStage.ResponseStarted));
            _now = _now.AddMilliseconds(1);
            var root = NewKey();
            var r = Correlator.OnNodeEvent(new ProcessExecRecord
            {
                Key = root, Pid = root.Tgid, Time = _now, Workload = Workload(pod), Argv = argv,
                PreviousImageWasRuntime = true, ParentOutsideContainer = true, Sequence = ++_sequence,
            });
            if (r.SessionId is null) throw new InvalidOperationException("setup session did not join");
            _sessionProcesses.Add(root);
            _containerOf[root] = pod.Containers[0].ContainerId!;
            for (int c = 1; c < processesPerSession; c++)
            {
                var child = NewKey();
                Correlator.OnNodeEvent(new ProcessForkRecord { Key = child, ParentKey = root, Pid = child.Tgid, Time = _now, Workload = Workload(pod), Sequence = ++_sequence });
                _sessionProcesses.Add(child);
                _containerOf[child] = pod.Containers[0].ContainerId!;
            }
        }
    }

    /// <summary>
    /// A steady mix over the session processes: 50% file opens, 20% connects, 30% short-lived children
    /// (fork + exec + exit, a third each). Time moves 1 ms per event (a busy node: 1,000 events/s of simulated time); Tick runs every 10,000 events.
    /// </summary>
    public int RunNodeEvents(int count)
    {
        int attributed = 0;
        var pendingChildren = new Queue<ProcessKey>();
        var workload = new Dictionary<string, WorkloadIdentity>();
        foreach (var pod in _podList) workload[pod.Containers[0].ContainerId!] = Workload(pod);
        for (int i = 0; i < count; i++)
        {
            _now = _now.AddTicks(10_000);
            var key = _sessionProcesses[_random.Next(_sessionProcesses.Count)];
            int roll = i % 10;
            NodeRecord record;
            if (roll < 5) record = new FileOpenRecord { Key = key, Time = _now, Path = "/etc/hostname", Result = 3, Sequence = ++_sequence };
            else if (roll < 7) record = new ConnectRecord { Key = key, Time = _now, Family = SocketFamily.Inet, Address = _remote, Port = 443, Sequence = ++_sequence };
            else if (roll == 7)
            {
                var child = NewKey();
                pendingChildren.Enqueue(child);
                record = new ProcessForkRecord { Key = child, ParentKey = key, Pid = child.Tgid, Time = _now, Workload = workload[_containerOf[key]], Sequence = ++_sequence };
            }
            else if (roll == 8 && pendingChildren.TryPeek(out var forked))
                record = new ProcessExecRecord { Key = forked, ParentKey = key, Pid = forked.Tgid, Time = _now, Workload = workload[_containerOf[key]], Argv = ["cat", "/etc/hostname"], Sequence = ++_sequence };
            else if (pendingChildren.TryDequeue(out var done))
                record = new ProcessExitRecord { Key = done, Time = _now, ExitCode = 0, Sequence = ++_sequence };
            else
                record = new FileOpenRecord { Key = key, Time = _now, Path = "/etc/hosts", Result = 3, Sequence = ++_sequence };
            if (Correlator.OnNodeEvent(record).SessionId is not null) attributed++;
            if (i % 10_000 == 9_999) Correlator.Tick(_now);
        }
        return attributed;
    }

    /// <summary>Node-first: a root appears, then its audit event; measures the OnAuditEvent call that emits the AttributionUpdated.</summary>
    public double[] MeasureAttributionLatency(int samples)
    {
        var result = new double[samples];
        for (int i = 0; i < samples; i++)
        {
            var pod = _podList[_random.Next(_podList.Count)];
            string[] argv = ["sh", "-c", $"latency-{i}"];
            var audit = Audit(pod, argv, AuditStage.ResponseStarted);
            _now = _now.AddMilliseconds(50);
            var root = NewKey();
            Correlator.OnNodeEvent(new ProcessExecRecord
            {
                Key = root, Pid = root.Tgid, Time = _now, Workload = Workload(pod), Argv = argv,
                PreviousImageWasRuntime = true, ParentOutsideContainer = true, Sequence = ++_sequence,
            });
            Correlator.OnNodeEvent(new ProcessExitRecord { Key = root, Time = _now.AddMilliseconds(1), Sequence = ++_sequence });
            long start = Stopwatch.GetTimestamp();
            var outputs = Correlator.OnAuditEvent(audit);
            long end = Stopwatch.GetTimestamp();
            if (!outputs.Any(o => o is AttributionUpdated)) throw new InvalidOperationException("audit did not attribute its process");
            result[i] = (end - start) * 1_000_000.0 / Stopwatch.Frequency;
            if (i % 1_000 == 999) Correlator.Tick(_now);
        }
        return result;
    }
}

internal sealed class PodLookup : IPodSpecLookup
{
    private readonly Dictionary<string, PodSpecInfo> _byUid = [];
    private readonly Dictionary<(string, string), PodSpecInfo> _byName = [];

    public void Add(PodSpecInfo pod)
    {
        _byUid[pod.Uid] = pod;
        _byName[(pod.Namespace, pod.Name)] = pod;
    }

    public PodSpecInfo? FindPod(string @namespace, string name) => _byName.GetValueOrDefault((@namespace, name));
    public PodSpecInfo? FindPodByUid(string uid) => _byUid.GetValueOrDefault(uid);
}
