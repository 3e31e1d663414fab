using System.Diagnostics;
using System.Globalization;
using Ebpf.Events;
using Ebpf.Interop;

// Kernel capture cost under an exec storm and an open storm, three ways:
//   none      the workload alone
//   libbpf    libbpf-tools execsnoop / opensnoop (C, perf buffer, printing one line per event)
//   capture   our KernelCapture (ring buffer, decode, channel; the consumer only counts)
// "cpu ms/1k" divides the tracer's user+sys CPU by the storm's events it delivered; "all events" is everything the
// tracer handled in the window (execsnoop: exec lines; opensnoop: open lines; capture: every kind, fork/exit too).
// The workload runs on the host, so both tracers trace every task (FilterMode.All); numbers include the
// background activity of the machine. Usage: ebpf-bench-capture [execs=2000] [opens=50000]
var execs = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 2000;
var opens = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 50_000;
if (KernelPreflight.Run() is { Count: > 0 } problems)
{
    Console.Error.WriteLine(string.Join(Environment.NewLine, problems.Select(p => p.Message)));
    return 2;
}

var marker = "bench" + Guid.NewGuid().ToString("N")[..8];
var openTarget = Path.Combine(Path.GetTempPath(), marker);
await File.WriteAllTextAsync(openTarget, "x\n");
var results = new List<Result>();
try
{
    foreach (var storm in new[] { Storm.Exec, Storm.Open })
    {
        var count = storm == Storm.Exec ? execs : opens;
        var script = storm == Storm.Exec
            ? $"i=0; while [ $i -lt {count} ]; do /bin/true {marker} $i; i=$((i+1)); done"
            : $"i=0; while [ $i -lt {count} ]; do read l < {openTarget}; i=$((i+1)); done";
        // Warm-up: page cache and busybox hot for the baseline, and our decode path JIT-compiled before measuring.
        await RunCaptureAsync(storm, 200, script.Replace($"-lt {count}", "-lt 200", StringComparison.Ordinal), marker, openTarget);
        // The baseline runs first and last (mean of both) because the shared machine's load drifts.
        var first = await RunNoneAsync(storm, count, script);
        var tool = await RunLibbpfToolAsync(storm, count, script, marker, openTarget);
        var ours = await RunCaptureAsync(storm, count, script, marker, openTarget);
        var last = await RunNoneAsync(storm, count, script);
        results.Add(first with { Workload = new Workload((first.Workload.WallSeconds + last.Workload.WallSeconds) / 2, (first.Workload.CpuSeconds + last.Workload.CpuSeconds) / 2) });
        results.Add(tool);
        results.Add(ours);
    }
}
finally
{
    File.Delete(openTarget);
}

Console.WriteLine();
Console.WriteLine($"{"storm",-6} {"tracer",-10} {"generated",10} {"delivered",10} {"drops",8} {"wall s",7} {"cpu s",6} {"slowdown",9} {"cpu ms/1k",10} {"all events",11} {"cpu ms/1k all",14}");
foreach (var group in results.GroupBy(r => r.Storm))
{
    var baseline = group.First(r => r.Tracer == "none").Workload.CpuSeconds;
    foreach (var r in group)
    {
        var slowdown = r.Tracer == "none" ? "-" : ((r.Workload.CpuSeconds / baseline - 1) * 100).ToString("+0.0;-0.0", CultureInfo.InvariantCulture) + "%";
        var cpu = r.Delivered > 0 ? (r.ConsumerCpuMs / (r.Delivered / 1000.0)).ToString("0.00", CultureInfo.InvariantCulture) : "-";
        var delivered = r.Tracer == "none" ? "-" : r.Delivered.ToString(CultureInfo.InvariantCulture);
        var drops = r.Tracer == "none" ? "-" : r.Drops;
        var all = r.Tracer == "none" ? 0 : r.AllEvents;
        var cpuAll = all > 0 ? (r.ConsumerCpuMs / (all / 1000.0)).ToString("0.00", CultureInfo.InvariantCulture) : "-";
        Console.WriteLine($"{r.Storm,-6} {r.Tracer,-10} {r.Generated,10} {delivered,10} {drops,8} {r.Workload.WallSeconds,7:0.00} {r.Workload.CpuSeconds,6:0.00} {slowdown,9} {cpu,10} {(all > 0 ? all.ToString(CultureInfo.InvariantCulture) : "-"),11} {cpuAll,14}");
    }
}
return 0;

static async Task<Result> RunNoneAsync(Storm storm, int count, string script)
{
    var workload = await RunWorkloadAsync(script);
    return new Result(storm, "none", count, 0, "0", workload, 0, 0);
}

static async Task<Result> RunLibbpfToolAsync(Storm storm, int count, string script, string marker, string openTarget)
{
    var tool = storm == Storm.Exec ? "/usr/sbin/execsnoop" : "/usr/sbin/opensnoop";
    if (!File.Exists(tool))
        return new Result(storm, "libbpf", count, 0, "n/a", new Workload(double.NaN, double.NaN), 0, 0);
    // Line-buffered as on a terminal: a pipe would make stdio hold the header (our readiness signal) in its buffer.
    var psi = new ProcessStartInfo("stdbuf", ["-oL", tool]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
    using var process = Process.Start(psi)!;
    long delivered = 0, lines = 0;
    var lost = 0L;
    var header = new TaskCompletionSource();
    var needle = storm == Storm.Exec ? $"/bin/true {marker}" : openTarget;
    var stdout = Task.Run(async () =>
    {
        while (await process.StandardOutput.ReadLineAsync() is { } line)
        {
            header.TrySetResult();
            lines++;
            if (line.Contains(needle, StringComparison.Ordinal))
                delivered++;
        }
    });
    var stderr = Task.Run(async () =>
    {
        // libbpf-tools report perf-buffer loss as "lost N events on CPU #c".
        while (await process.StandardError.ReadLineAsync() is { } line)
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length > 1 && parts[0].Equals("lost", StringComparison.OrdinalIgnoreCase) && long.TryParse(parts[1], out var n))
                Interlocked.Add(ref lost, n);
        }
    });
    await header.Task.WaitAsync(TimeSpan.FromSeconds(15));
    var cpuBefore = ProcessCpuMs(process.Id);
    var workload = await RunWorkloadAsync(script);
    await Task.Delay(1000);
    var cpuMs = ProcessCpuMs(process.Id) - cpuBefore;
    Kill(process.Id, 2);
    if (!process.WaitForExit(5000))
        process.Kill();
    await Task.WhenAll(stdout, stderr);
    return new Result(storm, "libbpf", count, delivered, lost.ToString(CultureInfo.InvariantCulture), workload, cpuMs, lines - 1);
}

static async Task<Result> RunCaptureAsync(Storm storm, int count, string script, string marker, string openTarget)
{
    using var capture = KernelCapture.Start(new KernelCaptureOptions { FilterMode = CaptureFilterMode.All });
    long delivered = 0;
    var consumer = Task.Run(async () =>
    {
        await foreach (var ev in capture.Events.ReadAllAsync())
        {
            if (storm == Storm.Exec ? ev is ExecEvent x && x.Argv.Count > 1 && x.Argv[1] == marker
                                    : ev is FileOpenEvent o && o.Path == openTarget)
                delivered++;
        }
    });
    await Task.Delay(300);
    var before = capture.Snapshot();
    var cpuBefore = ProcessCpuMs(Environment.ProcessId);
    var workload = await RunWorkloadAsync(script);
    await Task.Delay(1000);
    var cpuMs = ProcessCpuMs(Environment.ProcessId) - cpuBefore;
    var kind = storm == Storm.Exec ? EventKind.Exec : EventKind.FileOpen;
    var after = capture.Snapshot();
    var drops = after.DropsOf(kind) - before.DropsOf(kind);
    capture.Dispose();
    await consumer;
    return new Result(storm, "capture", count, delivered, drops.ToString(CultureInfo.InvariantCulture), workload, cpuMs, (long)(after.Events - before.Events));
}

// The workload's wall time and its user+sys CPU including its children (busybox time: wait4 rusage). In-kernel
// tracing cost (the BPF programs at each tracepoint) is charged to the workload's sys time, and CPU time is far less
// sensitive than wall time to the other tenants of this shared machine.
static async Task<Workload> RunWorkloadAsync(string script)
{
    var psi = new ProcessStartInfo("/bin/busybox", ["time", "-f", "%e %U %S", "/bin/busybox", "sh", "-c", script])
    {
        UseShellExecute = false,
        RedirectStandardError = true,
    };
    using var process = Process.Start(psi)!;
    var stderr = await process.StandardError.ReadToEndAsync();
    await process.WaitForExitAsync();
    if (process.ExitCode != 0)
        throw new InvalidOperationException($"workload exited with {process.ExitCode}: {stderr}");
    var f = stderr.Trim().Split('\n')[^1].Split(' ').Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray();
    return new Workload(f[0], f[1] + f[2]);
}

// utime + stime of a process from /proc/<pid>/stat (fields 14 and 15, in clock ticks; USER_HZ is 100 on Linux).
static double ProcessCpuMs(int pid)
{
    var stat = File.ReadAllText($"/proc/{pid}/stat");
    var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
    var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
    return ticks * 10.0;
}

static void Kill(int pid, int signal)
{
    using var kill = Process.Start(new ProcessStartInfo("kill", [$"-{signal}", pid.ToString(CultureInfo.InvariantCulture)]) { UseShellExecute = false });
    kill?.WaitForExit();
}

internal enum Storm
{
    Exec,
    Open,
}

internal sealed record Workload(double WallSeconds, double CpuSeconds);

internal sealed record Result(Storm Storm, string Tracer, int Generated, long Delivered, string Drops, Workload Workload, double ConsumerCpuMs, long AllEvents);
