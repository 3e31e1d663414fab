using System.Diagnostics;
using System.Text;
using Ebpf.Core.Audit;
using Ebpf.Core.Policy;

// Audit policy evaluation throughput, single thread. Prints evaluations/s for evaluation alone and for
// parse + evaluate of real audit events. Usage: dotnet run -c Release --project bench/Ebpf.Bench.Policy [seconds-per-case]
// Exit code 1 if a case fails (e.g. fixtures missing), like the OpenTelemetry benchmarks.

var seconds = args.Length > 0 && double.TryParse(args[0], out var s) ? s : 3.0;
var repo = FindRepoRoot();
var fixtures = Path.GetFullPath(Path.Combine(repo, "..", "shared", "fixtures", "audit"));

// Real events: the falco traces (JSON lines of single events) and the audit2rbac demo log.
var lines = new List<byte[]>();
foreach (var file in Directory.EnumerateFiles(Path.Combine(fixtures, "falcosecurity-falco/test/trace_files/k8s_audit"), "*.json").Order(StringComparer.Ordinal))
{
    foreach (var line in File.ReadAllLines(file))
    {
        if (line.Trim().Length > 0 && !line.Contains("\"kind\": 0", StringComparison.Ordinal))
            lines.Add(Encoding.UTF8.GetBytes(line.Trim()));
    }
}
lines.AddRange(File.ReadAllLines(Path.Combine(fixtures, "liggitt-audit2rbac/testdata/demo.log")).Where(l => l.Length > 0).Select(Encoding.UTF8.GetBytes));
var parser = new AuditEventParser();
var requests = lines.Select(l => PolicyRequest.FromAuditEvent(parser.ParseEvent(l).Event ?? throw new InvalidOperationException("fixture event did not parse"))).ToArray();
var averageBytes = lines.Average(l => l.Length);

Console.WriteLine($"Audit policy evaluation, {Environment.ProcessorCount} cores visible, single thread, {seconds:0.#} s per case");
Console.WriteLine($"input: {requests.Length} real audit events (falco traces + audit2rbac demo.log), mean {averageBytes:0} bytes");
Console.WriteLine();
Console.WriteLine($"{"case",-59} {"ops/s wall",12} {"ops/CPU-s",12} {"ns/op (CPU)",12} {"alloc B/op",11}");

var failed = false;
Measure("parse only (AuditEventParser.ParseEvent, for reference)", seconds, () =>
{
    var sum = 0;
    foreach (var line in lines)
        sum += parser.ParseEvent(line).Event!.Verb!.Length;
    return (lines.Count, sum);
});
foreach (var (name, file) in new[]
{
    ("deploy/audit/policy.yaml (10 rules)", Path.Combine(repo, "deploy/audit/policy.yaml")),
    ("gce-configure-helper (17 rules)", Path.Combine(fixtures, "policies/gce-configure-helper-audit-policy.yaml")),
    ("kubernetes docs example (9 rules)", Path.Combine(fixtures, "policies/kubernetes-docs-example-audit-policy.yaml")),
})
{
    try
    {
        var evaluator = new AuditPolicyEvaluator(AuditPolicyLoader.LoadFile(file));
        Measure($"evaluate   {name}", seconds, () =>
        {
            var sum = 0;
            foreach (ref readonly var r in requests.AsSpan())
                sum += evaluator.Evaluate(r).RuleIndex;
            return (requests.Length, sum);
        });
        // What ingestion does per event: parse, derive (identity, exec details, dedupe key: correlation and the
        // store read them), evaluate.
        Measure($"parse+derive+eval {name}", seconds, () =>
        {
            var sum = 0;
            foreach (var line in lines)
            {
                var ev = parser.ParseEvent(line).Event!;
                sum += ev.Derived.DedupeKey.Stage.Length;
                sum += evaluator.Evaluate(PolicyRequest.FromAuditEvent(ev)).RuleIndex;
            }
            return (lines.Count, sum);
        });
    }
    catch (Exception ex)
    {
        Console.WriteLine($"FAILED {name}: {ex.Message}");
        failed = true;
    }
}
return failed ? 1 : 0;

static void Measure(string name, double seconds, Func<(int Ops, int Checksum)> batch)
{
    // Warm up (tiered JIT + PGO), then time whole batches until the budget is spent.
    var warm = Stopwatch.StartNew();
    while (warm.Elapsed.TotalSeconds < Math.Max(2.0, seconds / 2))
        batch();
    long ops = 0;
    var allocBefore = GC.GetAllocatedBytesForCurrentThread();
    // CPU time of this process: on a shared, overloaded machine wall time includes waiting for a core.
    var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
    var sw = Stopwatch.StartNew();
    while (sw.Elapsed.TotalSeconds < seconds)
        ops += batch().Ops;
    sw.Stop();
    var cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpuBefore).TotalSeconds;
    var alloc = GC.GetAllocatedBytesForCurrentThread() - allocBefore;
    var perSecond = ops / sw.Elapsed.TotalSeconds;
    var perCpuSecond = ops / cpu;
    Console.WriteLine($"{name,-59} {perSecond,12:N0} {perCpuSecond,12:N0} {1e9 / perCpuSecond,12:N0} {(double)alloc / ops,11:N0}");
}

static string FindRepoRoot()
{
    for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
    {
        if (File.Exists(Path.Combine(dir.FullName, "Ebpf.sln")))
            return dir.FullName;
    }
    throw new DirectoryNotFoundException("Ebpf.sln not found above " + AppContext.BaseDirectory);
}
