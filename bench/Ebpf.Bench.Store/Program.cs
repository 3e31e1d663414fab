using System.Diagnostics;
using System.Globalization;
using Ebpf.Api.V1;
using Ebpf.Store;
using Google.Protobuf.WellKnownTypes;

// Usage: Ebpf.Bench.Store [events=1000000] [data-dir=<temp>]
// Loads a store with a realistic mix (node events of exec sessions and background processes, audit events,
// sessions, attribution updates, findings), then times the write paths and the lookups behind kubectl exectrace.
// Fails (exit 1) if a lookup returns nothing or verify fails, so a broken store cannot print good numbers.
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
int target = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 1_000_000;
string dir = args.Length > 1 ? args[1] : Directory.CreateTempSubdirectory("ebpf-bench-store-").FullName;
bool ownDir = args.Length <= 1;
var start = new DateTimeOffset(2026, 11, 20, 0, 0, 0, TimeSpan.Zero);
var time = new FixedTime(start.AddHours(12));
var options = new EventStoreOptions { DataDirectory = dir, RetentionInterval = TimeSpan.Zero, RetentionMaxBytes = 64L << 30, RetentionAge = TimeSpan.FromDays(30) };
var random = new Random(42);
int failures = 0;

Console.WriteLine($"Ebpf.Bench.Store: {target:N0} records into {dir}; {Environment.ProcessorCount} CPUs, load avg {LoadAverage()}");

// ---- Data set: sessions of 40 node events each (sh, cat, wget: execs, forks, exits, connects, opens) plus background.
const int NodeEventsPerSession = 40;
int sessions = Math.Max(10, target / 10 / NodeEventsPerSession);   // ~10 % of node events belong to sessions
var sessionIds = new List<string>(sessions);
var pods = Enumerable.Range(0, 500).Select(i => (Ns: $"ns-{i % 25}", Pod: $"web-{i}")).ToArray();
var users = Enumerable.Range(0, 100).Select(i => $"user-{i}@example.com").ToArray();

IEnumerable<Record> Generate()
{
    long n = 0;
    double t = 0;
    int session = 0;
    while (n < target)
    {
        t += 0.04;
        if (n % 10 == 0 && session < sessions)
        {
            // One exec session: audit event, session, its node events, attribution, maybe a finding.
            var (ns, pod) = pods[random.Next(pods.Length)];
            string user = users[random.Next(users.Length)];
            string id = Guid.NewGuid().ToString("N");
            sessionIds.Add(id);
            session++;
            yield return Audit(id, ns, pod, user, t); n++;
            string root = $"{100_000 + session}@{session}";
            foreach (var record in SessionEvents(id, root, ns, pod, t)) { yield return record; n++; }
            yield return SessionRecord(id, ns, pod, user, root, t); n++;
            yield return new Record { Time = At(t), Attribution = new AttributionUpdate { SessionId = id, Confidence = Confidence.Certain, ProcessKeys = { root } } }; n++;
            if (session % 20 == 0)
            {
                yield return new Record { Time = At(t), Finding = new Finding { Id = "f-" + id, Kind = "unattributed-exec", Severity = Severity.Medium, Time = At(t), Namespace = ns, Pod = pod, User = user, SessionId = id, Summary = "exec without audit" } };
                n++;
            }
            continue;
        }
        var (bns, bpod) = pods[(int)(n % pods.Length)];
        yield return Exec($"{n}@{n}", "1@1", (int)(n % 4_000_000), "/usr/bin/healthcheck", ["healthcheck", "--quiet"], "", bns, bpod, t);
        n++;
    }
}

IEnumerable<Record> SessionEvents(string id, string root, string ns, string pod, double t)
{
    yield return Exec(root, "1@1", 1, "/bin/sh", ["sh"], id, ns, pod, t);
    for (int child = 0; child < (NodeEventsPerSession - 1) / 6; child++)
    {
        string key = $"{root}-{child}";
        yield return Fork(root, key, id, ns, pod, t);
        yield return Exec(key, root, 2, child % 2 == 0 ? "/bin/cat" : "/usr/bin/wget", child % 2 == 0 ? ["cat", "/etc/passwd"] : ["wget", "http://203.0.113.9/x"], id, ns, pod, t);
        yield return Node(key, id, ns, pod, t, n => n.Connect = new ConnectDetails { Family = "inet", Address = "203.0.113.9", Port = 80, Fd = 3, Result = -115 });
        yield return Node(key, id, ns, pod, t, n => n.FileOpen = new FileOpenDetails { Path = "/etc/passwd", DirFd = -100, Result = 3 });
        yield return Node(key, id, ns, pod, t, n => n.FileOpen = new FileOpenDetails { Path = "/tmp/x", DirFd = -100, Flags = 0x241, Result = 4 });
        yield return Node(key, id, ns, pod, t, n => n.Exit = new ExitDetails { ExitCode = 0 });
    }
    yield return Node(root, id, ns, pod, t, n => n.Exit = new ExitDetails { ExitCode = 0 });
}

// ---- 1. Bulk load with durable batched appends (AppendAsync of 1 000 records: one transaction, one fsync).
var sw = Stopwatch.StartNew();
var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
long loaded = 0;
await using (var store = EventStore.Open(options, time))
{
    var batch = new List<Record>(1_000);
    var pending = new Queue<Task>();
    foreach (var record in Generate())
    {
        batch.Add(record);
        if (batch.Count == 1_000)
        {
            pending.Enqueue(store.AppendAsync(batch));
            batch = new List<Record>(1_000);
            if (pending.Count >= 4) await pending.Dequeue();
            loaded += 1_000;
        }
    }
    if (batch.Count > 0) { pending.Enqueue(store.AppendAsync(batch)); loaded += batch.Count; }
    while (pending.Count > 0) await pending.Dequeue();
    sw.Stop();
    double cpuSeconds = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds;
    Report("write: AppendAsync batches of 1000 (durable)", $"{loaded / sw.Elapsed.TotalSeconds:N0} records/s wall ({loaded:N0} in {sw.Elapsed.TotalSeconds:N1} s), {loaded / cpuSeconds:N0} records per CPU-second (generation included), store {store.StoreSizeBytes / (1 << 20):N0} MiB");

    // ---- 2. Fire-and-forget Append (the capture path): 200 000 records as fast as they come, then flush.
    const int burst = 200_000;
    var burstRecords = Enumerable.Range(0, burst).Select(i => Exec($"b{i}@1", "1@1", i, "/bin/true", ["true"], "", "ns-0", "web-0", 50_000 + i * 0.001)).ToList();
    long droppedBefore = store.Counters.Dropped;
    sw.Restart();
    cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
    foreach (var record in burstRecords) store.Append(record);
    double enqueueSeconds = sw.Elapsed.TotalSeconds;
    await store.FlushAsync();
    sw.Stop();
    long dropped = store.Counters.Dropped - droppedBefore;
    cpuSeconds = (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds;
    Report("write: Append fire-and-forget, 200k burst", $"enqueue {burst / enqueueSeconds:N0}/s ({enqueueSeconds * 1e9 / burst:N0} ns each); committed {(burst - dropped) / sw.Elapsed.TotalSeconds:N0} records/s wall, {(burst - dropped) / cpuSeconds:N0} per CPU-second; dropped {dropped:N0} (queue {options.QueueCapacity:N0})");

    // ---- 3. Durable single appends (one record per transaction) and audit webhook batches of 50.
    var single = Latency(200, i => store.AppendAsync(Exec($"s{i}@1", "1@1", i, "/bin/true", ["true"], "", "ns-0", "web-0", 60_000 + i)).Wait());
    Report("write: AppendAsync single record (commit + fsync)", single);
    var audit = Latency(100, i =>
    {
        var entries = Enumerable.Range(0, 50).Select(j =>
        {
            var r = Audit($"wh-{i}-{j}", "ns-1", "web-1", "user-1@example.com", 70_000 + i);
            return (AuditDedupeKey.From(r.AuditEvent), r, (ReadOnlyMemory<byte>)"{\"kind\":\"Event\"}"u8.ToArray());
        }).ToList();
        store.AppendAuditAsync(entries).Wait();
    });
    Report("write: AppendAuditAsync batch of 50 (webhook ack)", audit);
}

// ---- 4. Lookups on the loaded store (reopened: cold process, warm OS cache).
await using (var store = EventStore.Open(options, time))
{
    Console.WriteLine($"lookups over {store.LastSequence:N0} stored records, {sessionIds.Count:N0} sessions");
    Report("lookup: ListSessions (no filter, limit 100)", Latency(200, _ => Expect(store.ListSessions(null, null, null, null, null, 100).Count)));
    Report("lookup: ListSessions (user filter)", Latency(200, _ => store.ListSessions(users[random.Next(users.Length)], null, null, null, null, 100)));
    Report("lookup: ListSessions (namespace+pod)", Latency(200, i => store.ListSessions(null, pods[i % pods.Length].Ns, pods[i % pods.Length].Pod, null, null, 100)));
    Report($"lookup: GetSession (full id, tree of ~{NodeEventsPerSession} events)", Latency(500, _ => Expect(store.GetSession(sessionIds[random.Next(sessionIds.Count)])!.Processes.Count)));
    Report("lookup: GetSession (8-char prefix)", Latency(500, _ => Expect(store.GetSession(sessionIds[random.Next(sessionIds.Count)][..8])!.Processes.Count)));
    Report("lookup: WhoTouched (namespace+pod)", Latency(200, _ =>
    {
        var (ns, pod) = pods[random.Next(pods.Length)];
        store.WhoTouched(ns, pod, null, 100);
    }));
    Report("lookup: ListFindings (namespace)", Latency(200, i => store.ListFindings($"ns-{i % 25}", null, null, null, 100)));

    sw.Restart();
    long replayed = 0;
    await foreach (var _ in store.ReplayAsync(store.LastSequence > 100_000 ? store.LastSequence - 100_000 : 1, 100_000)) replayed++;
    sw.Stop();
    Report("replay: ReplayAsync 100k records", $"{replayed / sw.Elapsed.TotalSeconds:N0} records/s");
}

sw.Restart();
var verification = StoreVerifier.Verify(dir, integrityCheck: false);
sw.Stop();
Report("verify: hash chain walk", $"{verification.RecordsChecked / sw.Elapsed.TotalSeconds:N0} records/s ({verification.RecordsChecked:N0} in {sw.Elapsed.TotalSeconds:N1} s), valid={verification.IsValid}");
if (!verification.IsValid) { Console.Error.WriteLine("FAIL: verify: " + verification.Problem); failures++; }

if (ownDir) Directory.Delete(dir, recursive: true);
return failures == 0 ? 0 : 1;

void Expect(int count)
{
    if (count == 0) { Console.Error.WriteLine("FAIL: a lookup returned nothing"); failures++; }
}

static string Latency(int iterations, Action<int> action)
{
    for (int i = 0; i < Math.Min(10, iterations); i++) action(i);   // warm-up
    var samples = new double[iterations];
    for (int i = 0; i < iterations; i++)
    {
        long t0 = Stopwatch.GetTimestamp();
        action(i);
        samples[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
    }
    Array.Sort(samples);
    return $"p50 {samples[iterations / 2]:N2} ms, p99 {samples[(int)(iterations * 0.99)]:N2} ms, max {samples[^1]:N2} ms ({iterations} runs)";
}

static void Report(string name, string value) => Console.WriteLine($"| {name} | {value} |");

static string LoadAverage() => File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "?";

Timestamp At(double seconds) => Timestamp.FromDateTimeOffset(start.AddSeconds(seconds));

Workload W(string ns, string pod) => new() { Node = "node-a", Namespace = ns, Pod = pod, PodUid = "uid-" + pod, ContainerId = "c0ffee" + pod, ContainerName = "app", CgroupId = 77, Runtime = "containerd", QosClass = "burstable", MetadataAvailable = true };

Record Exec(string key, string parent, int pid, string file, string[] argv, string session, string ns, string pod, double t) => new()
{
    Time = At(t),
    NodeEvent = new NodeEvent
    {
        Time = At(t), Pid = pid, Tid = pid, ProcessKey = key, SessionId = session, Workload = W(ns, pod),
        Exec = new ExecDetails { ParentProcessKey = parent, Filename = file, Argv = { argv }, Cwd = "/app", Uid = 1000, Gid = 1000, Comm = Path.GetFileName(file) },
    },
};

Record Fork(string parent, string child, string session, string ns, string pod, double t) => new()
{
    Time = At(t),
    NodeEvent = new NodeEvent { Time = At(t), Pid = 1, ProcessKey = parent, SessionId = session, Workload = W(ns, pod), Fork = new ForkDetails { ParentProcessKey = parent, ChildProcessKey = child, ParentPid = 1, ChildPid = 2 } },
};

Record Node(string key, string session, string ns, string pod, double t, Action<NodeEvent> fill)
{
    var node = new NodeEvent { Time = At(t), Pid = 2, ProcessKey = key, SessionId = session, Workload = W(ns, pod) };
    fill(node);
    return new Record { Time = At(t), NodeEvent = node };
}

Record Audit(string id, string ns, string pod, string user, double t) => new()
{
    Time = At(t),
    AuditEvent = new AuditEvent
    {
        AuditId = id, Stage = "ResponseComplete", Level = "Metadata", Verb = "create", Resource = "pods", Subresource = "exec",
        Namespace = ns, Name = pod, AttributedUser = user, User = new UserInfo { Username = user }, StageTimestamp = At(t),
        RequestUri = $"/api/v1/namespaces/{ns}/pods/{pod}/exec?command=sh", ResponseCode = 101, Command = { "sh" },
    },
};

Record SessionRecord(string id, string ns, string pod, string user, string root, double t) => new()
{
    Time = At(t),
    Session = new Session
    {
        Id = id, Kind = SessionKind.Exec, Confidence = Confidence.Certain, AuditId = id, User = user, Namespace = ns, Pod = pod,
        Container = "app", Command = { "sh" }, RootProcessKey = root, Workload = W(ns, pod), NodeStart = At(t), RequestReceived = At(t),
    },
};

sealed class FixedTime(DateTimeOffset now) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => now;
}
