using System.Threading.Channels;
using Ebpf.Api.Streaming;
using Ebpf.Api.V1;
using Ebpf.Core.Correlation;
using Ebpf.Core.Processes;
using Ebpf.Events;
using Ebpf.Kubernetes;
using Ebpf.Agent.Metrics;
using Ebpf.Store;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using CoreAudit = Ebpf.Core.Audit;

namespace Ebpf.Agent.Pipeline;

/// <summary>
/// The agent's one consumer of everything it observes. Kernel events, audit events and clock ticks are handled
/// on this single loop, so the process table and the correlator (neither thread-safe by design) see one
/// ordered stream and the join is deterministic. Every record it produces is stored first — the store assigns
/// the stream sequence — then published to subscribers.
/// </summary>
public sealed partial class NodePipeline : BackgroundService
{
    private static readonly TimeSpan TickInterval = TimeSpan.FromSeconds(1);
    private const int MaxNodeEventsPerTurn = 512;
    /// <summary>At most this many of the newest stored records are read when rebuilding: bounds start-up time.</summary>
    private const ulong MaxRebuildRecords = 200_000;

    private readonly ChannelReader<Events.NodeEvent>? _nodeEvents;
    private readonly NodeIdentity _identity;
    private readonly ExecSessionCorrelator _correlator;
    private readonly EventStore _store;
    private readonly RecordHub _hub;
    private readonly string _node;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly AgentMetrics _metrics;
    // Audit events arrive on webhook threads already durable in the store; the loop correlates them.
    // Bounded so a flood pushes back on the webhook (which then answers 503 and the API server retries).
    private readonly Channel<IReadOnlyList<CoreAudit.AuditEvent>> _audit = Channel.CreateBounded<IReadOnlyList<CoreAudit.AuditEvent>>(
        new BoundedChannelOptions(1024) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TimeSpan _rebuildWindow;
    // Seeded and rebuilt processes by key: their container id ("" outside containers), to tell whether a parent
    // was in the child's container when the correlator state is rebuilt from the store.
    private readonly Dictionary<ProcessKey, string> _knownAtStart = [];

    /// <param name="rebuildWindow">
    /// How far back stored node and audit records are fed to the correlator again at start-up (without emitting), so
    /// an exec recorded before a restart still joins the audit event that arrives after it. Zero disables it.
    /// </param>
    public NodePipeline(ChannelReader<Events.NodeEvent>? nodeEvents, NodeIdentity identity, ExecSessionCorrelator correlator,
        EventStore store, RecordHub hub, string node, AgentMetrics metrics, TimeProvider time, ILogger<NodePipeline> logger,
        TimeSpan rebuildWindow = default)
    {
        _rebuildWindow = rebuildWindow;
        _nodeEvents = nodeEvents;
        _identity = identity;
        _correlator = correlator;
        _store = store;
        _hub = hub;
        _node = node;
        _metrics = metrics;
        _time = time;
        _logger = logger;
    }

    /// <summary>Completes once the loop has seeded the correlator and is consuming.</summary>
    public Task Started => _started.Task;

    /// <summary>Hands audit events (already stored) to the loop for correlation; waits while the loop is saturated.</summary>
    public ValueTask EnqueueAuditAsync(IReadOnlyList<CoreAudit.AuditEvent> events, CancellationToken cancellationToken) =>
        events.Count == 0 ? ValueTask.CompletedTask : _audit.Writer.WriteAsync(events, cancellationToken);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        try
        {
            SeedExistingProcesses();
            await RebuildFromStoreAsync(stoppingToken).ConfigureAwait(false);
            _started.TrySetResult();
            var nextTick = _time.GetUtcNow() + TickInterval;
            while (!stoppingToken.IsCancellationRequested)
            {
                bool worked = false;
                while (_audit.Reader.TryRead(out var batch))
                {
                    worked = true;
                    foreach (var auditEvent in batch)
                        HandleAudit(auditEvent);
                }
                if (_time.GetUtcNow() >= nextTick)
                {
                    nextTick = _time.GetUtcNow() + TickInterval;
                    Emit(_correlator.Tick(_time.GetUtcNow()));
                    _identity.Processes.EvictExpired();
                    _metrics.CorrelationSnapshot(_correlator.Counters);
                }
                for (int i = 0; i < MaxNodeEventsPerTurn && _nodeEvents is not null && _nodeEvents.TryRead(out var nodeEvent); i++)
                {
                    worked = true;
                    HandleNodeEvent(nodeEvent);
                }
                if (!worked)
                    await WaitForWorkAsync(nextTick, stoppingToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            // A bug here must not silently stop attribution: say so loudly and stop the host.
            LogPipelineFailed(e);
            _started.TrySetException(e);
            throw;
        }
    }

    private async Task WaitForWorkAsync(DateTimeOffset nextTick, CancellationToken ct)
    {
        var delay = nextTick - _time.GetUtcNow();
        if (delay <= TimeSpan.Zero)
            return;
        using var wake = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var waits = new List<Task>(3) { Task.Delay(delay, _time, wake.Token), _audit.Reader.WaitToReadAsync(wake.Token).AsTask() };
        if (_nodeEvents is not null)
            waits.Add(_nodeEvents.WaitToReadAsync(wake.Token).AsTask());
        await Task.WhenAny(waits).ConfigureAwait(false);
        await wake.CancelAsync().ConfigureAwait(false);
        ct.ThrowIfCancellationRequested();
    }

    /// <summary>
    /// Processes running before the agent started: the correlator must know a container's existing processes,
    /// or the first exec into an older container would be taken for its init.
    /// </summary>
    private void SeedExistingProcesses()
    {
        var now = _time.GetUtcNow();
        int seeded = 0;
        foreach (var process in _identity.Processes.LiveProcesses())
        {
            var identity = _identity.Resolver.Resolve(process.CgroupId);
            if (!identity.IsContainer)
                continue;
            Emit(_correlator.OnNodeEvent(CorrelationInputMapper.FromExisting(process, identity, now)).Outputs);
            _knownAtStart[process.Key] = identity.Container?.ContainerId ?? "";
            seeded++;
        }
        LogSeeded(seeded);
    }

    /// <summary>
    /// The correlator's state lives in memory; the store keeps what it was built from. Stored node and audit records
    /// of the last <see cref="_rebuildWindow"/> are fed to it again in sequence order, with its outputs dropped: they
    /// were emitted (and stored) before the restart, and the same inputs give the same joins. What was still pending
    /// then is pending again and completes when its other half arrives or its window closes.
    /// </summary>
    private async Task RebuildFromStoreAsync(CancellationToken ct)
    {
        ulong last = _store.LastSequence;
        if (_rebuildWindow <= TimeSpan.Zero || last == 0)
            return;
        var cutoff = _time.GetUtcNow() - _rebuildWindow;
        ulong from = last > MaxRebuildRecords ? last - MaxRebuildRecords + 1 : 1;
        int nodeRecords = 0, auditRecords = 0;
        await foreach (var record in _store.ReplayAsync(from, cancellationToken: ct).ConfigureAwait(false))
        {
            // Records stored from now on reach the loop the ordinary way.
            if (record.Sequence > last)
                break;
            if (record.Time is { } t && t.ToDateTimeOffset() < cutoff)
                continue;
            if (record.BodyCase == Record.BodyOneofCase.AuditEvent)
            {
                if (StoredRecordMapper.FromStored(record.AuditEvent) is { } request)
                {
                    _correlator.OnAuditEvent(request);
                    auditRecords++;
                }
                continue;
            }
            if (record.BodyCase != Record.BodyOneofCase.NodeEvent)
                continue;
            var e = record.NodeEvent;
            var workload = e.Workload is { CgroupId: > 0 } w ? _identity.Resolver.Resolve(w.CgroupId) : null;
            if (workload is { IsContainer: false })
                workload = null;
            string containerId = workload?.Container?.ContainerId ?? "";
            bool parentInContainer = false;
            if (e.Exec is { } exec)
            {
                // A process that was already running is known from /proc: its exec is history, not a new root.
                if (ProcessKey.TryParse(e.ProcessKey, out var key) && _knownAtStart.ContainsKey(key.Value))
                    continue;
                parentInContainer = ProcessKey.TryParse(exec.ParentProcessKey, out var parentKey)
                    && _knownAtStart.TryGetValue(parentKey.Value, out var parentContainer) && parentContainer == containerId && containerId.Length > 0;
            }
            var input = StoredRecordMapper.FromStored(record, workload, parentInContainer);
            if (input is null)
                continue;
            if (input is ProcessExecRecord or ProcessForkRecord)
                _knownAtStart[input.Key] = containerId;
            _correlator.OnNodeEvent(input);
            nodeRecords++;
        }
        LogRebuilt(nodeRecords, auditRecords, from, last);
        EmitUnlessStored(_correlator.Tick(_time.GetUtcNow()));
        _knownAtStart.Clear();
        _knownAtStart.TrimExcess();
    }

    /// <summary>
    /// The first tick after a rebuild closes the windows that were open at the restart. A window that had already
    /// closed before it (a root whose wait ended shortly before the restart is still inside the rebuild window) gives
    /// a session the store already holds as it is: that one, its attribution and its finding are not emitted twice.
    /// </summary>
    private void EmitUnlessStored(IReadOnlyList<CorrelationOutput> outputs)
    {
        var stored = new HashSet<string>(StringComparer.Ordinal);
        foreach (var output in outputs)
        {
            if (output is SessionChanged { Session: var s } && StoredSession(s.Id) is { } existing
                && existing.Id == s.Id && (int)existing.Kind == (int)s.Kind && (int)existing.Confidence == (int)s.Confidence)
                stored.Add(s.Id);
        }
        Emit(outputs.Where(o => o switch
        {
            SessionChanged c => !stored.Contains(c.Session.Id),
            AttributionUpdated a => !stored.Contains(a.SessionId),
            FindingRaised f => f.Finding.SessionId is not { } id || !stored.Contains(id),
            _ => true,
        }).ToList());

        Session? StoredSession(string id)
        {
            try
            {
                return _store.GetSession(id)?.Session;
            }
            catch (AmbiguousSessionIdException)
            {
                // Not stored under this exact id; the lookup fell back to matching it as a prefix of others.
                return null;
            }
        }
    }

    private void HandleNodeEvent(Events.NodeEvent e)
    {
        _metrics.NodeEventReceived(e.Kind);
        if (e is CgroupEvent)
        {
            _identity.Observe(e);
            return;
        }
        // The parent (exec/fork) and the actor (connect/open) as known before this event changes the table.
        ProcessInfo? parent = null, actor = null;
        int parentTgid = e switch { ExecEvent x => x.ParentTgid, ForkEvent f => f.ParentTgid, _ => 0 };
        if (parentTgid > 0)
            _identity.Processes.TryGetLive(parentTgid, out parent);
        if (e is ConnectEvent or FileOpenEvent)
            _identity.Processes.TryGetLive(e.Tgid, out actor);
        var parentKey = parent?.Key;

        var identity = _identity.Observe(e);
        ProcessInfo? process = e switch
        {
            ExecEvent x => Lookup(ProcessKey.FromBootTimeNs(x.Tgid, x.StartBootTimeNs)),
            ForkEvent f => Lookup(ProcessKey.FromBootTimeNs(f.ChildTgid, f.ChildStartBootTimeNs)),
            ExitEvent x => Lookup(ProcessKey.FromBootTimeNs(x.Tgid, x.StartBootTimeNs)),
            _ => actor,
        };
        if (e is ForkEvent { IsThread: true })
            return;

        // The session a record belongs to when that is already known (a child of an attributed process);
        // a new session root is attributed by the AttributionUpdate the correlator emits for it.
        string? sessionHint = e switch
        {
            ForkEvent when parentKey is { } pk => _correlator.SessionOf(pk),
            ExecEvent x => _correlator.SessionOf(ProcessKey.FromBootTimeNs(x.Tgid, x.StartBootTimeNs)) ?? (parentKey is { } pk ? _correlator.SessionOf(pk) : null),
            _ when process is not null => _correlator.SessionOf(process.Key),
            _ => null,
        };
        var record = RecordMapper.FromNodeEvent(e, identity, _node, process, parent, sessionHint);
        ulong sequence = Publish(record);

        var parentIdentity = parent is null ? null : _identity.Resolver.Resolve(parent.CgroupId);
        var input = CorrelationInputMapper.FromNodeEvent(e, identity, actor, parent, parentIdentity, sequence);
        if (input is not null)
            Emit(_correlator.OnNodeEvent(input).Outputs);

        ProcessInfo? Lookup(ProcessKey key) => _identity.Processes.TryGet(key, out var info) ? info : null;
    }

    private void HandleAudit(CoreAudit.AuditEvent auditEvent)
    {
        var request = CorrelationInputMapper.FromAuditEvent(auditEvent);
        if (request is null)
            return;
        Emit(_correlator.OnAuditEvent(request));
    }

    private void Emit(IReadOnlyList<CorrelationOutput> outputs)
    {
        foreach (var output in outputs)
        {
            var now = _time.GetUtcNow();
            switch (output)
            {
                case SessionChanged changed:
                    Publish(RecordMapper.FromSession(changed.Session, _node, now));
                    break;
                case AttributionUpdated attribution:
                    Publish(RecordMapper.FromAttribution(attribution, now));
                    break;
                case FindingRaised raised:
                    _metrics.FindingRaised(raised.Finding);
                    Publish(RecordMapper.FromFinding(raised.Finding, _node));
                    break;
                case TokenUseAttributed token:
                    LogTokenUse(token.AuditId, token.User, token.Namespace ?? "", token.Pod ?? "");
                    break;
            }
        }
    }

    /// <summary>Stores the record (which assigns its sequence), then streams it. A record the store could not take is not streamed either.</summary>
    private ulong Publish(Record record)
    {
        var stored = _store.Append(record);
        if (stored.Sequence == 0)
        {
            _metrics.StoreDropped();
            return 0;
        }
        _hub.Publish(stored);
        return stored.Sequence;
    }

    [LoggerMessage(EventId = 5000, Level = LogLevel.Information, Message = "Pipeline started: {Count} existing container processes known")]
    private partial void LogSeeded(int count);

    [LoggerMessage(EventId = 5003, Level = LogLevel.Information, Message = "Correlation state rebuilt from the store: {NodeRecords} node and {AuditRecords} audit records of sequences {From}..{Last}")]
    private partial void LogRebuilt(int nodeRecords, int auditRecords, ulong from, ulong last);

    [LoggerMessage(EventId = 5001, Level = LogLevel.Critical, Message = "The node pipeline failed; attribution has stopped")]
    private partial void LogPipelineFailed(Exception exception);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Debug, Message = "Service-account token use attributed: audit {AuditId} by {User} from pod {Namespace}/{Pod}")]
    private partial void LogTokenUse(string auditId, string user, string @namespace, string pod);
}
