using Ebpf.Api.ExecTrace;
using Ebpf.Api.Grpc;
using Ebpf.Api.Streaming;
using Ebpf.Api.V1;
using Google.Protobuf.WellKnownTypes;

namespace Ebpf.Api.Tests;

/// <summary>
/// A real <see cref="IExecTraceService"/> over real generated messages: sessions in memory, Subscribe from a
/// <see cref="RecordHub"/>. A few reserved session ids exercise error paths.
/// </summary>
internal sealed class TestExecTraceService : IExecTraceService
{
    public const string ThrowingSessionId = "throw-internal";
    public const string SleepingSessionId = "sleep-forever";
    public const string SecretDetail = "secret: /var/lib/ebpf/store.db is corrupt";

    private readonly Dictionary<string, SessionDetail> _sessions = new(StringComparer.Ordinal);

    public TestExecTraceService(RecordHub hub) => Hub = hub;

    public RecordHub Hub { get; }

    /// <summary>Completes when a Subscribe handler's cancellation token fires.</summary>
    /// <summary>Completes when a Subscribe handler's cancellation token fires (client reset seen as RequestAborted or as a
    /// failed flush, whichever Kestrel reports first); the value is the call's deadline, null when it had none.</summary>
    public TaskCompletionSource<DateTimeOffset?> SubscribeCancelled { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when a handler observes its deadline.</summary>
    public TaskCompletionSource<DateTimeOffset?> DeadlineObserved { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public int SubscribeCalls;

    public void AddSession(Session session, params ProcessNode[] processes)
    {
        var detail = new SessionDetail { Session = session };
        detail.Processes.AddRange(processes);
        _sessions[session.Id] = detail;
    }

    public IAsyncEnumerable<Record> SubscribeAsync(SubscribeRequest request, GrpcCallContext context)
    {
        Interlocked.Increment(ref SubscribeCalls);
        context.CancellationToken.Register(() => SubscribeCancelled.TrySetResult(context.Deadline));
        return Hub.SubscribeAsync(request, context.CancellationToken);
    }

    public Task<ListSessionsResponse> ListSessionsAsync(ListSessionsRequest request, GrpcCallContext context)
    {
        var response = new ListSessionsResponse();
        response.Sessions.AddRange(_sessions.Values.Select(d => d.Session)
            .Where(s => request.User.Length == 0 || s.User == request.User)
            .Where(s => request.Namespace.Length == 0 || s.Namespace == request.Namespace)
            .OrderBy(s => s.Id, StringComparer.Ordinal)
            .Take(request.Limit == 0 ? 100 : (int)request.Limit));
        return Task.FromResult(response);
    }

    public async Task<SessionDetail> GetSessionAsync(GetSessionRequest request, GrpcCallContext context)
    {
        switch (request.Id)
        {
            case ThrowingSessionId:
                throw new InvalidOperationException(SecretDetail);
            case SleepingSessionId:
                try
                {
                    await Task.Delay(Timeout.InfiniteTimeSpan, context.CancellationToken);
                }
                finally
                {
                    DeadlineObserved.TrySetResult(context.Deadline);
                }

                break;
        }

        var matches = _sessions.Keys.Where(k => k.StartsWith(request.Id, StringComparison.Ordinal)).ToList();
        return matches.Count switch
        {
            1 => _sessions[matches[0]],
            0 => throw new GrpcStatusException(StatusCode.NotFound, $"no session “{request.Id}” (100% sure)"),
            _ => throw new GrpcStatusException(StatusCode.FailedPrecondition, $"session prefix '{request.Id}' is ambiguous"),
        };
    }

    public Task<WhoTouchedResponse> WhoTouchedAsync(WhoTouchedRequest request, GrpcCallContext context)
    {
        var response = new WhoTouchedResponse();
        response.Sessions.AddRange(_sessions.Values.Select(d => d.Session).Where(s => s.Namespace == request.Namespace && s.Pod == request.Pod));
        return Task.FromResult(response);
    }

    public Task<ListFindingsResponse> ListFindingsAsync(ListFindingsRequest request, GrpcCallContext context) =>
        Task.FromResult(new ListFindingsResponse
        {
            Findings =
            {
                new Finding
                {
                    Id = "f-1", Kind = "unattributed-exec", Severity = Severity.High, Summary = "exec with no audit event",
                    Namespace = "prod", Pod = "web-0", Time = Timestamp.FromDateTimeOffset(new DateTimeOffset(2026, 11, 22, 9, 0, 0, TimeSpan.Zero)),
                    Evidence = { ["argv"] = "sh -c id" },
                },
            },
        });

    public Task<AgentStatus> GetStatusAsync(GetStatusRequest request, GrpcCallContext context) =>
        Task.FromResult(new AgentStatus
        {
            Version = "1.2.3-test",
            Node = "node-a",
            Started = Timestamp.FromDateTimeOffset(new DateTimeOffset(2026, 11, 22, 8, 0, 0, TimeSpan.Zero)),
            Probes = { "tp/sched/sched_process_exec", "tp/sched/sched_process_exit" },
            Counters = { ["events.exec"] = 42, ["hub.subscribers"] = (ulong)Hub.Subscribers },
            RingBufferFill = 0.25,
            PodWatchState = "standalone",
            LastSequence = 7,
        });

    public static Session SampleSession(string id, string user = "alice", string ns = "prod", string pod = "web-0") => new()
    {
        Id = id,
        Kind = SessionKind.Exec,
        Confidence = Confidence.Certain,
        Reason = "audit exec matched runc exec in container",
        AuditId = "a-" + id,
        User = user,
        Groups = { "system:authenticated" },
        SourceIps = { "10.0.0.7" },
        Verb = "create",
        Namespace = ns,
        Pod = pod,
        Container = "app",
        Command = { "sh", "-c", "cat /etc/shadow" },
        Tty = true,
        Stdin = true,
        RequestReceived = Timestamp.FromDateTimeOffset(new DateTimeOffset(2026, 11, 22, 9, 30, 0, TimeSpan.Zero)),
        RootProcessKey = "4242@123456",
        RootPid = 4242,
        Workload = new Workload { Node = "node-a", Namespace = ns, Pod = pod, ContainerName = "app", MetadataAvailable = true },
        ProcessCount = 2,
    };

    public static Record NodeExecRecord(ulong sequence, string ns = "prod", string pod = "web-0", string sessionId = "") => new()
    {
        Sequence = sequence,
        Time = Timestamp.FromDateTimeOffset(new DateTimeOffset(2026, 11, 22, 9, 30, 1, TimeSpan.Zero).AddTicks((long)sequence)),
        NodeEvent = new NodeEvent
        {
            BootTimeNs = 1_000_000 + sequence,
            Pid = 4242,
            Tid = 4242,
            ProcessKey = "4242@123456",
            SessionId = sessionId,
            Workload = new Workload { Node = "node-a", CgroupId = 77, Namespace = ns, Pod = pod, ContainerName = "app", MetadataAvailable = true },
            Exec = new ExecDetails { Filename = "/bin/cat", Argv = { "cat", "/etc/shadow" }, Cwd = "/", Comm = "cat", Uid = 0 },
        },
    };
}
