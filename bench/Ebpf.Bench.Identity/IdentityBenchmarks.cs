using BenchmarkDotNet.Attributes;
using Ebpf.Core.Identity;
using Ebpf.Core.Processes;
using Ebpf.Events;

namespace Ebpf.Bench.Identity;

/// <summary>Hot-path costs of the identity layer: cgroup id → identity on a cache hit, and process-table updates.</summary>
[MemoryDiagnoser]
[ShortRunJob]
public class IdentityBenchmarks
{
    private PodIdentityResolver _resolver = null!;
    private ulong[] _cgroupIds = null!;
    private ProcessTable _table = null!;
    private ForkEvent[] _forks = null!;
    private ExecEvent[] _execs = null!;
    private ExitEvent[] _exits = null!;
    private int _next;

    [GlobalSetup]
    public void Setup()
    {
        var world = SyntheticNode.Build(pods: 1_000, containersPerPod: 2, liveProcesses: 10_000);
        _resolver = world.Resolver;
        _cgroupIds = world.ContainerCgroupIds;
        foreach (var id in _cgroupIds) _resolver.Resolve(id); // warm the cache: the benchmark measures hits
        _table = world.Table;

        const int n = 4096;
        _forks = new ForkEvent[n];
        _execs = new ExecEvent[n];
        _exits = new ExitEvent[n];
        for (int i = 0; i < n; i++)
        {
            int pid = 1_000_000 + i;
            ulong startNs = (ulong)(i + 1) * ProcessKey.NanosecondsPerTick * 7;
            ulong cgroup = _cgroupIds[i % _cgroupIds.Length];
            _forks[i] = new ForkEvent { Tgid = 100, Tid = 100, ParentTgid = 100, ParentPid = 100, ChildTgid = pid, ChildPid = pid, ChildStartBootTimeNs = startNs, ChildCgroupId = cgroup, CgroupId = cgroup };
            _execs[i] = new ExecEvent { Tgid = pid, Tid = pid, ParentTgid = 100, StartBootTimeNs = startNs, Filename = "/usr/bin/curl", Argv = ["curl", "-s", "http://example"], CgroupId = cgroup };
            _exits[i] = new ExitEvent { Tgid = pid, Tid = pid, StartBootTimeNs = startNs, GroupDead = true };
        }
    }

    private const string SystemdContainerPath =
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod8a6c3e2f_5b1d_4c2e_9f3a_1d2e3f4a5b6c.slice/cri-containerd-4c01db0b339c8c2f1a7c3e6a1f5e9d2b7a3c5e8f0a1b2c3d4e5f60718293a4b5.scope";

    /// <summary>A cache miss's parsing step: allocates only the result (record + uid + id strings).</summary>
    [Benchmark(Description = "Parse kubelet cgroup path (systemd)")]
    public KubeletCgroupKind ParseSystemdPath() => KubeletCgroupPath.Parse(SystemdContainerPath, out _);

    [Benchmark(Description = "Resolve cgroup id (cache hit)")]
    public WorkloadIdentity ResolveCacheHit()
    {
        var ids = _cgroupIds;
        return _resolver.Resolve(ids[_next++ % ids.Length]);
    }

    /// <summary>One short-lived process: fork + exec + exit applied to a table holding 10k live processes.</summary>
    [Benchmark(Description = "ProcessTable fork+exec+exit")]
    public ProcessInfo? ForkExecExit()
    {
        int i = _next++ % _forks.Length;
        _table.ApplyFork(_forks[i]);
        _table.ApplyExec(_execs[i]);
        return _table.ApplyExit(_exits[i]);
    }
}
