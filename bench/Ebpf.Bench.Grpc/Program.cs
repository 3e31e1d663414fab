// Stream throughput of the gRPC framing layer: records/s to 1 and to 10 subscribers, read by our client (in the
// server's process and in a process of its own) and by grpc-js, plus the same through RecordHub. Prints a table; exits
// non-zero if any scenario fails.
// Usage: dotnet run -c Release --project bench/Ebpf.Bench.Grpc [-- --records N] [--only TEXT]
//   --records N   records per scenario (split over the subscribers); default 1,000,000
//   --only TEXT   run only the scenarios whose name contains TEXT (e.g. "ours: stream, 1 "), for profiling
//   --warmup N    records streamed before the first measured scenario, so tiered JIT has settled; default 500,000
// (--reader PORT PER STREAMS WARMUP is the child-process mode of the "ours, separate process" scenarios.)
using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Ebpf.Api.ExecTrace;
using Ebpf.Api.Grpc;
using Ebpf.Api.Streaming;
using Ebpf.Api.V1;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

if (args.Length == 5 && args[0] == "--reader")
{
    return await RunReaderProcess(args);
}

var records = 1_000_000;
var warmup = 500_000;
string? only = null;
for (var i = 0; i + 1 < args.Length; i += 2)
{
    switch (args[i])
    {
        case "--records":
            records = int.Parse(args[i + 1], CultureInfo.InvariantCulture);
            break;
        case "--warmup":
            warmup = int.Parse(args[i + 1], CultureInfo.InvariantCulture);
            break;
        case "--only":
            only = args[i + 1];
            break;
        default:
            Console.Error.WriteLine($"unknown argument {args[i]}");
            return 2;
    }
}

var sample = BenchService.Sample(1);
Console.WriteLine($"record: NodeEvent exec, {sample.CalculateSize()} bytes serialized; {records:N0} records per subscriber");
Console.WriteLine($"machine: {Environment.ProcessorCount} cores; server and our clients in one process, except the separate-process scenarios and grpc-js");

// Queue as large as one run, so the hub scenario measures delivery, not how much a tight publish loop outruns it.
var hub = new RecordHub(new RecordHubOptions { SubscriberQueueCapacity = records });
var service = new BenchService(hub);
var builder = WebApplication.CreateSlimBuilder();
builder.Logging.ClearProviders();
builder.WebHost.ConfigureKestrel(k => k.ListenGrpc(new GrpcListenOptions { Port = 0 }));
await using var app = builder.Build();
app.MapExecTraceService(service);
await app.StartAsync();
var port = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()).Port;
var address = new Uri($"http://127.0.0.1:{port}");

var results = new List<(string Name, long Records, double Seconds, string Note)>();
var failed = false;

// The scenario may restart the clock (and the CPU and GC counters) once its set-up is done.
async Task Run(string name, Func<Action, Task<(long Records, string Note)>> scenario)
{
    if (only is not null && !name.Contains(only, StringComparison.Ordinal))
    {
        return;
    }

    try
    {
        var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
        var gcBefore = GC.CollectionCount(0);
        var pauseBefore = GC.GetTotalPauseDuration();
        var watch = Stopwatch.StartNew();
        void StartClock()
        {
            cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
            gcBefore = GC.CollectionCount(0);
            pauseBefore = GC.GetTotalPauseDuration();
            watch.Restart();
        }

        var (count, note) = await scenario(StartClock);
        watch.Stop();
        // The machine is shared: CPU time actually granted to this process says what the code costs, wall time
        // says what it got. records per CPU-second covers server and (for "ours") client work together.
        var cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpuBefore).TotalSeconds;
        results.Add((name, count, watch.Elapsed.TotalSeconds, note));
        var gcs = GC.CollectionCount(0) - gcBefore;
        var pause = (GC.GetTotalPauseDuration() - pauseBefore).TotalMilliseconds;
        Console.WriteLine($"{name,-40} {count,10:N0} rec {watch.Elapsed.TotalSeconds,6:F2} s {count / watch.Elapsed.TotalSeconds,10:N0} rec/s | cpu {cpu,6:F2} s {count / cpu,10:N0} rec/cpu-s | {gcs} GCs, {pause:F0} ms paused  {note}");
    }
    catch (Exception ex)
    {
        failed = true;
        Console.WriteLine($"{name,-44} FAILED: {ex.GetType().Name}: {ex.Message}");
    }
}

using (var warm = new ExecTraceClient(new GrpcClientOptions { Address = address }))
{
    // Tier-1 JIT of the whole path (Kestrel, SocketsHttpHandler, protobuf) takes a few hundred thousand records;
    // without this the first scenario pays for it in both wall and CPU time.
    await ReadCount(warm, warmup);
}

foreach (var subscribers in new[] { 1, 10 })
{
    await Run($"ours: stream, {subscribers} subscriber(s)", async _ =>
    {
        using var client = new ExecTraceClient(new GrpcClientOptions { Address = address });
        var per = records / subscribers;
        var counts = await Task.WhenAll(Enumerable.Range(0, subscribers).Select(_ => Task.Run(() => ReadCount(client, per))));
        return (counts.Sum(), "");
    });
}

foreach (var subscribers in new[] { 1, 10 })
{
    // Built before the clock starts: constructing a million messages costs about as much as streaming them.
    var prebuilt = only is null || $"ours: through RecordHub, {subscribers} subscriber(s)".Contains(only, StringComparison.Ordinal)
        ? Enumerable.Range(1, records / subscribers).Select(i => BenchService.Sample((ulong)i)).ToArray()
        : [];
    await Run($"ours: through RecordHub, {subscribers} subscriber(s)", async _ =>
    {
        using var client = new ExecTraceClient(new GrpcClientOptions { Address = address });
        var per = records / subscribers;
        var before = hub.Dropped;
        using var cts = new CancellationTokenSource();
        var readers = Enumerable.Range(0, subscribers).Select(_ => Task.Run(async () =>
        {
            long seen = 0;
            long dropped = 0;
            await foreach (var record in client.SubscribeAsync(new SubscribeRequest(), new GrpcCallOptions(CancellationToken: cts.Token)))
            {
                if (record.BodyCase == Record.BodyOneofCase.Dropped)
                {
                    dropped += (long)record.Dropped.Count;
                }
                else
                {
                    seen++;
                }

                if (record.Sequence == (ulong)per)
                {
                    break;
                }
            }

            return (seen, dropped);
        })).ToArray();
        while (hub.Subscribers < subscribers)
        {
            await Task.Delay(5);
        }

        // Publisher paced only by the hub: Publish never blocks, so a slow reader shows up as drops, not as stalls.
        foreach (var record in prebuilt)
        {
            hub.Publish(record);
        }

        var done = await Task.WhenAll(readers);
        return (done.Sum(d => d.seen), $"dropped {hub.Dropped - before:N0}");
    });
}

foreach (var subscribers in new[] { 1, 10 })
{
    await Run($"ours, separate process: stream, {subscribers} subscriber(s)", startClock => RunReader(address, records, subscribers, warmup, startClock));
}

// Three grpc-js readers that differ only in what they do with each record (see bench.js): node's decoding, not the
// server or grpc-js's transport, bounds these rates, and the three rows show by how much.
foreach (var mode in new[] { "objects", "messages", "bytes" })
{
    await Run($"grpc-js ({mode}): stream, 1 subscriber", _ => RunNode(address, records, 1, mode));
    await Run($"grpc-js ({mode}): stream, 10 subscribers", _ => RunNode(address, records, 10, mode));
}

await app.StopAsync();
return failed ? 1 : 0;

// Our client in a process of its own, as kubectl-exectrace runs it: server and reader no longer share one GC heap
// and thread pool. The child warms up, says "ready", and reads the measured streams after "go", so the clock and the
// server-side CPU count cover only those.
static async Task<(long, string)> RunReader(Uri address, int records, int subscribers, int warmup, Action startClock)
{
    var start = new ProcessStartInfo("dotnet")
    {
        RedirectStandardInput = true,
        RedirectStandardOutput = true,
        RedirectStandardError = true,
    };
    foreach (var a in new[]
    {
        typeof(BenchService).Assembly.Location, "--reader", address.Port.ToString(CultureInfo.InvariantCulture),
        (records / subscribers).ToString(CultureInfo.InvariantCulture), subscribers.ToString(CultureInfo.InvariantCulture),
        warmup.ToString(CultureInfo.InvariantCulture),
    })
    {
        start.ArgumentList.Add(a);
    }

    using var process = Process.Start(start)!;
    var stderr = process.StandardError.ReadToEndAsync();
    if (await process.StandardOutput.ReadLineAsync() != "ready")
    {
        await process.WaitForExitAsync();
        throw new InvalidOperationException($"reader exited {process.ExitCode}: {await stderr}");
    }

    startClock();
    await process.StandardInput.WriteLineAsync("go");
    await process.StandardInput.FlushAsync();
    var output = await process.StandardOutput.ReadToEndAsync();
    await process.WaitForExitAsync();
    if (process.ExitCode != 0)
    {
        throw new InvalidOperationException($"reader exited {process.ExitCode}: {await stderr}");
    }

    using var json = JsonDocument.Parse(output);
    var received = json.RootElement.GetProperty("received").GetInt64();
    var seconds = json.RootElement.GetProperty("seconds").GetDouble();
    var cpu = json.RootElement.GetProperty("cpu").GetDouble();
    return (received, $"(reader: {received / seconds:N0} rec/s, {received / cpu:N0} rec/cpu-s; cpu column = server side only)");
}

static async Task<int> RunReaderProcess(string[] args)
{
    var port = int.Parse(args[1], CultureInfo.InvariantCulture);
    var per = int.Parse(args[2], CultureInfo.InvariantCulture);
    var streams = int.Parse(args[3], CultureInfo.InvariantCulture);
    var warmup = int.Parse(args[4], CultureInfo.InvariantCulture);
    using var client = new ExecTraceClient(new GrpcClientOptions { Address = new Uri($"http://127.0.0.1:{port}") });
    await ReadCount(client, warmup);
    Console.WriteLine("ready");
    if (await Console.In.ReadLineAsync() != "go")
    {
        return 3;
    }

    var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
    var watch = Stopwatch.StartNew();
    var counts = await Task.WhenAll(Enumerable.Range(0, streams).Select(_ => Task.Run(() => ReadCount(client, per))));
    watch.Stop();
    var cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpuBefore).TotalSeconds;
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"{{\"received\":{counts.Sum()},\"seconds\":{watch.Elapsed.TotalSeconds},\"cpu\":{cpu}}}"));
    return 0;
}

static async Task<long> ReadCount(ExecTraceClient client, int count)
{
    long received = 0;
    var headers = new Dictionary<string, string> { [BenchService.CountHeader] = count.ToString(CultureInfo.InvariantCulture) };
    await foreach (var record in client.SubscribeAsync(new SubscribeRequest(), new GrpcCallOptions(Headers: headers)))
    {
        received++;
    }

    if (received != count)
    {
        throw new InvalidOperationException($"received {received} of {count}");
    }

    return received;
}

static async Task<(long, string)> RunNode(Uri address, int records, int subscribers, string mode)
{
    var nodeDir = Path.Combine(FindRoot(), "tests", "Ebpf.Api.Tests", "node");
    if (!Directory.Exists(Path.Combine(nodeDir, "node_modules", "@grpc", "grpc-js")))
    {
        await Exec("npm", nodeDir, "ci", "--no-audit", "--no-fund");
    }

    var output = await Exec("node", nodeDir, "bench.js", $"127.0.0.1:{address.Port}", Path.Combine(FindRoot(), "src", "Ebpf.Api", "Protos"),
        (records / subscribers).ToString(CultureInfo.InvariantCulture), subscribers.ToString(CultureInfo.InvariantCulture), mode);
    using var json = JsonDocument.Parse(output);
    var received = json.RootElement.GetProperty("received").GetInt64();
    var seconds = json.RootElement.GetProperty("seconds").GetDouble();
    return (received, $"(node-measured {received / seconds:N0} rec/s without node start-up; cpu = server side only)");
}

static async Task<string> Exec(string file, string dir, params string[] arguments)
{
    var start = new ProcessStartInfo(file) { WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true };
    foreach (var a in arguments)
    {
        start.ArgumentList.Add(a);
    }

    using var process = Process.Start(start)!;
    var stdout = process.StandardOutput.ReadToEndAsync();
    var stderr = process.StandardError.ReadToEndAsync();
    await process.WaitForExitAsync();
    if (process.ExitCode != 0)
    {
        throw new InvalidOperationException($"{file} exited {process.ExitCode}: {await stderr}");
    }

    return await stdout;
}

static string FindRoot()
{
    for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
    {
        if (File.Exists(Path.Combine(dir.FullName, "Ebpf.sln")))
        {
            return dir.FullName;
        }
    }

    throw new InvalidOperationException("Ebpf.sln not found");
}

/// <summary>Subscribe streams N prebuilt records (N from a header) or, without the header, the hub's live records.</summary>
internal sealed class BenchService(RecordHub hub) : IExecTraceService
{
    public const string CountHeader = "bench-count";
    private static readonly Record[] Prebuilt = Enumerable.Range(0, 1024).Select(i => Sample((ulong)i)).ToArray();

    public static Record Sample(ulong sequence) => new()
    {
        Sequence = sequence,
        Time = Timestamp.FromDateTimeOffset(new DateTimeOffset(2026, 11, 22, 9, 30, 1, TimeSpan.Zero)),
        NodeEvent = new NodeEvent
        {
            BootTimeNs = 123_456_789_000 + sequence,
            Time = Timestamp.FromDateTimeOffset(new DateTimeOffset(2026, 11, 22, 9, 30, 1, TimeSpan.Zero)),
            Pid = 4242,
            Tid = 4242,
            ProcessKey = "4242@123456",
            Workload = new Workload
            {
                Node = "node-a", CgroupId = 7731, Namespace = "prod", Pod = "web-7d9f8c-abcde", ContainerName = "app",
                ContainerId = "3f2a9c1b8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b", PodUid = "5b2c1f7e-0d3a-4c9b-8e6f-1a2b3c4d5e6f",
                QosClass = "burstable", Runtime = "containerd", MetadataAvailable = true,
            },
            Exec = new ExecDetails
            {
                ParentPid = 4200, ParentProcessKey = "4200@123400", Filename = "/usr/bin/curl",
                Argv = { "curl", "-s", "http://10.0.0.7:8080/metrics" }, Cwd = "/app", Comm = "curl", PreviousComm = "sh",
                ExecId = "4242@123456#1",
            },
        },
    };

    public async IAsyncEnumerable<Record> SubscribeAsync(SubscribeRequest request, GrpcCallContext context)
    {
        if (!int.TryParse(context.RequestHeaders[CountHeader], CultureInfo.InvariantCulture, out var count))
        {
            await foreach (var record in hub.SubscribeAsync(request, context.CancellationToken))
            {
                yield return record;
            }

            yield break;
        }

        for (var i = 0; i < count; i++)
        {
            yield return Prebuilt[i & 1023];
        }
    }

    public Task<ListSessionsResponse> ListSessionsAsync(ListSessionsRequest request, GrpcCallContext context) => Task.FromResult(new ListSessionsResponse());

    public Task<SessionDetail> GetSessionAsync(GetSessionRequest request, GrpcCallContext context) =>
        throw new GrpcStatusException(StatusCode.NotFound, "no sessions in the benchmark");

    public Task<WhoTouchedResponse> WhoTouchedAsync(WhoTouchedRequest request, GrpcCallContext context) => Task.FromResult(new WhoTouchedResponse());

    public Task<ListFindingsResponse> ListFindingsAsync(ListFindingsRequest request, GrpcCallContext context) => Task.FromResult(new ListFindingsResponse());

    public Task<AgentStatus> GetStatusAsync(GetStatusRequest request, GrpcCallContext context) => Task.FromResult(new AgentStatus { Node = "bench" });
}
