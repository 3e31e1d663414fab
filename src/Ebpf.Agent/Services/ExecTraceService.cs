using System.Reflection;
using Ebpf.Api.ExecTrace;
using Ebpf.Api.Grpc;
using Ebpf.Api.Streaming;
using Ebpf.Api.V1;
using Ebpf.Store;
using Google.Protobuf.WellKnownTypes;

namespace Ebpf.Agent.Services;

/// <summary>The agent's ebpf.v1.ExecTrace: the live stream from the hub, lookups from the store.</summary>
public sealed class ExecTraceService(EventStore store, RecordHub hub, AgentStatusSource status) : IExecTraceService
{
    public IAsyncEnumerable<Record> SubscribeAsync(SubscribeRequest request, GrpcCallContext context) =>
        hub.SubscribeAsync(request, context.CancellationToken);

    public Task<ListSessionsResponse> ListSessionsAsync(ListSessionsRequest request, GrpcCallContext context)
    {
        CheckRange(request.Since, request.Until);
        return Task.FromResult(store.ListSessions(request));
    }

    public Task<SessionDetail> GetSessionAsync(GetSessionRequest request, GrpcCallContext context)
    {
        if (string.IsNullOrWhiteSpace(request.Id))
            throw new GrpcStatusException(StatusCode.InvalidArgument, "id is required: a session id or a unique prefix of one");
        try
        {
            return Task.FromResult(store.GetSession(request.Id)
                ?? throw new GrpcStatusException(StatusCode.NotFound, $"no session '{request.Id}'"));
        }
        catch (AmbiguousSessionIdException e)
        {
            throw new GrpcStatusException(StatusCode.InvalidArgument,
                $"'{e.Prefix}' matches {e.Candidates.Count} sessions ({string.Join(", ", e.Candidates.Take(5))}{(e.Candidates.Count > 5 ? ", ..." : "")}): give more of the id");
        }
    }

    public Task<WhoTouchedResponse> WhoTouchedAsync(WhoTouchedRequest request, GrpcCallContext context)
    {
        if (string.IsNullOrWhiteSpace(request.Namespace) || string.IsNullOrWhiteSpace(request.Pod))
            throw new GrpcStatusException(StatusCode.InvalidArgument, "namespace and pod are required");
        return Task.FromResult(store.WhoTouched(request));
    }

    public Task<ListFindingsResponse> ListFindingsAsync(ListFindingsRequest request, GrpcCallContext context)
    {
        return Task.FromResult(store.ListFindings(request));
    }

    public Task<AgentStatus> GetStatusAsync(GetStatusRequest request, GrpcCallContext context) => Task.FromResult(status.Snapshot());

    private static void CheckRange(Timestamp? since, Timestamp? until)
    {
        if (since is not null && until is not null && since.ToDateTimeOffset() > until.ToDateTimeOffset())
            throw new GrpcStatusException(StatusCode.InvalidArgument, "since is after until");
    }
}

/// <summary>What GetStatus reports: assembled from every subsystem's counters at call time.</summary>
public sealed class AgentStatusSource(string node, TimeProvider time)
{
    private readonly DateTimeOffset _started = time.GetUtcNow();
    private readonly List<Func<IEnumerable<KeyValuePair<string, ulong>>>> _counters = [];

    public static string Version { get; } =
        typeof(AgentStatusSource).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "dev";

    public Func<IReadOnlyList<string>> Probes { get; set; } = () => [];
    public Func<string> PodWatchState { get; set; } = () => "standalone";
    public Func<ulong> LastSequence { get; set; } = () => 0;
    public Func<ulong> StoreBytes { get; set; } = () => 0;

    public void AddCounters(Func<IEnumerable<KeyValuePair<string, ulong>>> counters)
    {
        lock (_counters)
            _counters.Add(counters);
    }

    public AgentStatus Snapshot()
    {
        var status = new AgentStatus
        {
            Version = Version,
            Node = node,
            Started = Timestamp.FromDateTimeOffset(_started),
            PodWatchState = PodWatchState(),
            LastSequence = LastSequence(),
            StoreBytes = StoreBytes(),
        };
        status.Probes.AddRange(Probes());
        lock (_counters)
        {
            foreach (var source in _counters)
                foreach (var (key, value) in source())
                    status.Counters[key] = value;
        }
        return status;
    }
}
