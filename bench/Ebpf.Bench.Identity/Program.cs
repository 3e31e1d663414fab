using BenchmarkDotNet.Running;
using Ebpf.Bench.Identity;

// `memory`: footprint of a node with 10k live processes and 1k pods (2 containers each), resolver cache warm.
if (args.Length > 0 && args[0] == "memory")
{
    static long Measure() { GC.Collect(); GC.WaitForPendingFinalizers(); GC.Collect(); return GC.GetTotalMemory(true); }
    long before = Measure();
    var node = SyntheticNode.Build(pods: 1_000, containersPerPod: 2, liveProcesses: 10_000);
    foreach (var id in node.ContainerCgroupIds) node.Resolver.Resolve(id);
    long after = Measure();
    Console.WriteLine($"identity footprint: {(after - before) / 1024.0 / 1024.0:F1} MiB for {node.Table.LiveCount} live processes, 1000 pods, {node.Resolver.CachedCount} cached cgroup identities");
    GC.KeepAlive(node);
    return 0;
}

// `cpu`: CPU time per operation (thread CPU time, not wall clock), for machines too loaded for wall-clock timing.
if (args.Length > 0 && args[0] == "cpu")
{
    var b = new IdentityBenchmarks();
    b.Setup();
    const int ops = 500_000;
    for (int round = 0; round < 3; round++)
    {
        var cpu = System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime;
        for (int i = 0; i < ops; i++) b.ForkExecExit();
        var mid = System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime;
        for (int i = 0; i < ops * 10; i++) b.ResolveCacheHit();
        var end = System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime;
        for (int i = 0; i < ops * 4; i++) b.ParseSystemdPath();
        var parsed = System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime;
        Console.WriteLine($"round {round}: fork+exec+exit {(mid - cpu).TotalNanoseconds / ops:F0} CPU-ns/op, resolve (cache hit) {(end - mid).TotalNanoseconds / (ops * 10):F1} CPU-ns/op, parse {(parsed - end).TotalNanoseconds / (ops * 4):F0} CPU-ns/op");
    }
    return 0;
}

var summary = BenchmarkSwitcher.FromAssembly(typeof(IdentityBenchmarks).Assembly).Run(args);
// Fail the run when a benchmark failed (OpenTelemetry's rule): a broken benchmark must not look like a fast one.
return summary.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;
