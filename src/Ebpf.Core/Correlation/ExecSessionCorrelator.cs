using System.Globalization;
using System.Net;
using Ebpf.Core.Identity;
using Ebpf.Core.Processes;
using Ebpf.Events;

namespace Ebpf.Core.Correlation;

/// <summary>
/// Joins API-server audit events (who asked for exec/attach/debug/port-forward, who used a pod's token) with
/// kernel events (which process started where and what it did). Pure and deterministic: no I/O, no threads,
/// no clock reads except <see cref="Tick()"/>; the same inputs in the same order give the same outputs.
/// Not thread-safe: one loop feeds it. docs/correlation.md states the rules.
/// </summary>
public sealed class ExecSessionCorrelator
{
    private static readonly IReadOnlyList<CorrelationOutput> None = [];

    private readonly CorrelationOptions _options;
    private readonly IPodSpecLookup _pods;
    private readonly TimeProvider _time;

    private readonly Dictionary<ProcessKey, ProcessState> _processes = [];
    private readonly Dictionary<string, ContainerState> _containers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, AuditState> _audits = new(StringComparer.Ordinal);
    private readonly Dictionary<string, SessionState> _sessions = new(StringComparer.Ordinal);
    private readonly Dictionary<string, PodGroup> _groups = new(StringComparer.Ordinal);
    /// <summary>attach, port-forward and debug sessions per pod uid.</summary>
    private readonly Dictionary<string, List<SessionState>> _streamSessions = new(StringComparer.Ordinal);
    /// <summary>Processes per pod uid that connected to the API server.</summary>
    private readonly Dictionary<string, HashSet<ProcessState>> _apiClients = new(StringComparer.Ordinal);
    private readonly List<AuditState> _unresolvedAudits = [];
    private readonly HashSet<ContainerState> _unclaimedContainers = [];
    private readonly PriorityQueue<RootCandidate, DateTimeOffset> _rootDeadlines = new();
    private readonly PriorityQueue<AuditState, DateTimeOffset> _auditDeadlines = new();
    private readonly Queue<ProcessState> _exited = new();
    /// <summary>Every request remembered, oldest first: foreign and rejected ones have no session to expire them.</summary>
    private readonly Queue<(string AuditId, DateTimeOffset Received)> _auditOrder = new();
    private readonly List<PendingTokenCheck> _tokenChecks = [];
    private readonly Dictionary<string, DateTimeOffset> _seenTokenAudits = new(StringComparer.Ordinal);
    private readonly Queue<(string AuditId, DateTimeOffset Seen)> _seenTokenOrder = new();
    private readonly HashSet<IPEndPoint> _apiServer;

    private int _pendingRoots;
    private long _sessionsExpired, _processesExpired, _processesDropped, _sessionsDropped, _duplicates,
        _foreign, _failed, _sequencesDropped, _findings;

    public ExecSessionCorrelator(CorrelationOptions options, IPodSpecLookup pods, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _pods = pods;
        _time = time;
        _apiServer = [.. options.ApiServerEndpoints];
    }

    // ------------------------------------------------------------------ public surface

    /// <summary>Feeds one node record. Returns the session it belongs to when already known, and any outputs.</summary>
    public NodeCorrelation OnNodeEvent(NodeRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        List<CorrelationOutput>? outputs = null;
        string? session = record switch
        {
            ProcessExecRecord e => OnExec(e, ref outputs),
            ExistingProcessRecord x => OnExisting(x),
            ProcessForkRecord f => OnFork(f, ref outputs),
            ProcessExitRecord x => OnExit(x, ref outputs),
            ConnectRecord c => OnConnect(c, ref outputs),
            FileOpenRecord o => OnFileOpen(o),
            _ => null,
        };
        return new NodeCorrelation(session, (IReadOnlyList<CorrelationOutput>?)outputs ?? None);
    }

    /// <summary>Feeds one audit event (one stage of one request). Duplicates and any stage order are fine.</summary>
    public IReadOnlyList<CorrelationOutput> OnAuditEvent(AuditRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        List<CorrelationOutput>? outputs = null;
        var kind = request.Kind;
        if (kind == AuditRequestKind.Other)
        {
            if (request.Token is not null) OnTokenRequest(request, ref outputs);
            return (IReadOnlyList<CorrelationOutput>?)outputs ?? None;
        }
        if (_audits.TryGetValue(request.AuditId, out var audit))
            MergeStage(audit, request, ref outputs);
        else
            NewAudit(request, kind, ref outputs);
        return (IReadOnlyList<CorrelationOutput>?)outputs ?? None;
    }

    /// <summary>Closes windows that ended before the injected clock's now.</summary>
    public IReadOnlyList<CorrelationOutput> Tick() => Tick(_time.GetUtcNow());

    /// <summary>Closes windows that ended before <paramref name="now"/>: roots without audit, audits without process, expired state.</summary>
    public IReadOnlyList<CorrelationOutput> Tick(DateTimeOffset now)
    {
        List<CorrelationOutput>? outputs = null;
        RetryUnresolvedAudits(ref outputs);
        ExpireAudits(now, ref outputs);
        ExpireRoots(now, ref outputs);
        ExpireUnclaimedContainers(now, ref outputs);
        RunTokenChecks(now, deadlineOnly: true, ref outputs);
        EvictProcesses(now);
        EvictSessions(now);
        while (_seenTokenOrder.Count > 0 && now - _seenTokenOrder.Peek().Seen > _options.AuditLatencyAllowance)
            _seenTokenAudits.Remove(_seenTokenOrder.Dequeue().AuditId);
        while (_auditOrder.Count > 0 && now - _auditOrder.Peek().Received > _options.SessionRetention)
        {
            // Requests with a session leave with it (RemoveSession); the rest are only kept to recognise duplicates.
            var id = _auditOrder.Dequeue().AuditId;
            if (_audits.TryGetValue(id, out var old) && !_sessions.ContainsKey(old.Session.Id)) _audits.Remove(id);
        }
        return (IReadOnlyList<CorrelationOutput>?)outputs ?? None;
    }

    public ExecSession? FindSession(string id) =>
        _sessions.TryGetValue(id, out var s) && s.Emitted ? Snapshot(s) : null;

    /// <summary>The session a process belongs to, when known.</summary>
    public string? SessionOf(ProcessKey key) => _processes.TryGetValue(key, out var p) ? p.Session?.Id : null;

    /// <summary>Snapshots of every session that has been emitted, ordered by id.</summary>
    public IReadOnlyList<ExecSession> Sessions()
    {
        var list = new List<ExecSession>();
        foreach (var s in _sessions.Values) if (s.Emitted) list.Add(Snapshot(s));
        list.Sort((a, b) => string.CompareOrdinal(a.Id, b.Id));
        return list;
    }

    public CorrelationCounters Counters
    {
        get
        {
            int certain = 0, probable = 0, ambiguous = 0, unattributed = 0;
            foreach (var s in _sessions.Values)
            {
                if (!s.Emitted) continue;
                switch (s.Confidence)
                {
                    case SessionConfidence.Certain: certain++; break;
                    case SessionConfidence.Probable: probable++; break;
                    case SessionConfidence.Ambiguous: ambiguous++; break;
                    case SessionConfidence.Unattributed: unattributed++; break;
                }
            }
            int pendingAudits = _unresolvedAudits.Count;
            foreach (var g in _groups.Values) foreach (var a in g.Audits) if (!a.Finalized && a.Assigned is null) pendingAudits++;
            return new CorrelationCounters
            {
                SessionsCertain = certain, SessionsProbable = probable, SessionsAmbiguous = ambiguous, SessionsUnattributed = unattributed,
                PendingRoots = _pendingRoots, PendingAudits = pendingAudits, TrackedProcesses = _processes.Count,
                RememberedAuditRequests = _audits.Count,
                SessionsExpired = _sessionsExpired, ProcessesExpired = _processesExpired, ProcessesDropped = _processesDropped,
                SessionsDropped = _sessionsDropped, DuplicateAuditEvents = _duplicates, AuditForeignPod = _foreign,
                AuditFailed = _failed, SequencesDropped = _sequencesDropped, FindingsRaised = _findings,
            };
        }
    }

    // ------------------------------------------------------------------ node side

    private string? OnExisting(ExistingProcessRecord x)
    {
        if (_processes.ContainsKey(x.Key)) return _processes[x.Key].Session?.Id;
        ProcessState? parent = x.ParentKey is { } pk ? _processes.GetValueOrDefault(pk) : null;
        if (x.Workload.Container is null && parent is null) return null;
        var p = Track(x.Key, x.Pid, parent, x.Time, x.Workload);
        if (p is null) return null;
        p.Argv = x.Argv;
        if (p.Container is { Init: null } c && (parent is null || parent.Container != c)) c.Init = p;
        return p.Session?.Id;
    }

    private string? OnExec(ProcessExecRecord e, ref List<CorrelationOutput>? outputs)
    {
        var containerCgroup = e.Workload.Container;
        if (!_processes.TryGetValue(e.Key, out var p))
        {
            ProcessState? parent = e.ParentKey is { } pk ? _processes.GetValueOrDefault(pk) : null;
            if (containerCgroup is null && parent is null) return null;
            p = Track(e.Key, e.Pid, parent, e.Time, e.Workload);
            if (p is null) return null;
        }
        else if (containerCgroup is not null && p.Container?.Id != containerCgroup.ContainerId)
        {
            // runc init forked on the host, then joined the container's cgroup before execve.
            MoveToContainer(p, e.Workload);
        }
        p.Argv = e.Argv;
        p.Workload = e.Workload;

        bool enteredFromOutside = containerCgroup is not null && (e.PreviousImageWasRuntime || e.ParentOutsideContainer);
        // The init exec'ing again (sh -c "…; sleep") still has its runtime parent outside: it entered nothing.
        if (enteredFromOutside && p.Root is null && p.Container is { } container && container.Init != p)
        {
            if (IsFirstLineageOf(p, container))
            {
                // The first process the runtime puts into a container is its init (runc run/create),
                // not a runc exec: it has the same runtime-init previous image and outside parent. runc init's
                // nsexec stages fork inside the container's cgroup before the last one execs the entrypoint, so
                // "first" means every process the container ever had is this one or its ancestor. runc init's own
                // exec can land in the cgroup too (runc adds the child to it while the child execs), and then it was
                // taken for the init: the entrypoint exec'd below it is still the init, not an entry.
                container.Init = p;
                if (p.Session is null) ClaimForContainerSessions(p, ref outputs);
            }
            else
            {
                if (p.Session is not null) DetachSubtree(p, p.Session);
                NewRootCandidate(p, e, ref outputs);
            }
        }
        else if (p.Session is null && p.Container is not null)
        {
            ClaimForContainerSessions(p, ref outputs);
        }
        return Touch(p, e.Sequence, e.Time);
    }

    private static bool IsFirstLineageOf(ProcessState p, ContainerState container)
    {
        long lineage = 1;
        for (var a = p.Parent; a is not null && a.Container == container && lineage < container.EverTracked; a = a.Parent)
            lineage++;
        return lineage == container.EverTracked;
    }

    private string? OnFork(ProcessForkRecord f, ref List<CorrelationOutput>? outputs)
    {
        var parent = _processes.GetValueOrDefault(f.ParentKey);
        if (_processes.TryGetValue(f.Key, out var existing)) return Touch(existing, f.Sequence, f.Time);
        var workload = f.Workload ?? parent?.Workload;
        if (parent is null && workload?.Container is null) return null;
        var p = Track(f.Key, f.Pid, parent, f.Time, workload!);
        if (p is null) return null;
        if (p.Session is null && p.Container is not null) ClaimForContainerSessions(p, ref outputs);
        return Touch(p, f.Sequence, f.Time);
    }

    private string? OnExit(ProcessExitRecord x, ref List<CorrelationOutput>? outputs)
    {
        if (!_processes.TryGetValue(x.Key, out var p) || p.Exited is not null) return p?.Session?.Id;
        p.Exited = x.Time;
        if (p.Container is { } c) c.Live--;
        _exited.Enqueue(p);
        var session = p.Session;
        if (session is not null)
        {
            session.LastActivity = Max(session.LastActivity, x.Time);
            if (session.Root == p)
            {
                session.NodeEnd = x.Time;
                if (session.Emitted) Emit(ref outputs, new SessionChanged(Snapshot(session)));
            }
        }
        else AddPendingSequence(p, x.Sequence);
        return session?.Id;
    }

    private string? OnConnect(ConnectRecord c, ref List<CorrelationOutput>? outputs)
    {
        bool attempted = c.Result == 0 || c.Result == -115;
        if (_processes.TryGetValue(c.Key, out var p) && p.Container is not null)
        {
            p.Connects++;
            if (p.Session is { } owner) owner.Connects++;
            if (attempted && c.Address is not null && IsApiServer(c.Address, c.Port))
            {
                p.ApiConnectedAt = c.Time;
                var podUid = p.Container.PodUid;
                if (!_apiClients.TryGetValue(podUid, out var set)) _apiClients[podUid] = set = [];
                set.Add(p);
            }
            return Touch(p, c.Sequence, c.Time);
        }
        if (attempted && c.Address is not null && IPAddress.IsLoopback(c.Address))
            return MatchPortForward(c, ref outputs);
        return null;
    }

    private string? OnFileOpen(FileOpenRecord o)
    {
        if (!_processes.TryGetValue(o.Key, out var p)) return null;
        p.Files++;
        if (p.Session is { } owner) owner.Files++;
        return Touch(p, o.Sequence, o.Time);
    }

    private string? Touch(ProcessState p, ulong sequence, DateTimeOffset time)
    {
        var s = p.Session;
        if (s is null) { AddPendingSequence(p, sequence); return null; }
        if (time > s.LastActivity) s.LastActivity = time;
        return s.Id;
    }

    private void AddPendingSequence(ProcessState p, ulong sequence)
    {
        if (sequence == 0 || _options.MaxPendingSequencesPerProcess == 0) return;
        p.PendingSequences ??= [];
        if (p.PendingSequences.Count >= _options.MaxPendingSequencesPerProcess) { _sequencesDropped++; return; }
        p.PendingSequences.Add(sequence);
    }

    private ProcessState? Track(ProcessKey key, int pid, ProcessState? parent, DateTimeOffset start, WorkloadIdentity? workload)
    {
        if (_processes.Count >= _options.MaxTrackedProcesses && !EvictOneExited())
        {
            _processesDropped++;
            return null;
        }
        var p = new ProcessState { Key = key, Pid = pid, Parent = parent, Start = start, Workload = workload };
        _processes[key] = p;
        if (parent is not null)
        {
            (parent.Children ??= []).Add(p);
            if (parent.Session is { } inherited) Join(p, inherited);
        }
        if (workload?.Container is { } cg) AddToContainer(p, cg);
        else if (parent?.Container is { } pc && workload is null) AddToContainer(p, pc.Id, pc.PodUid);
        return p;
    }

    private void AddToContainer(ProcessState p, ContainerCgroup cg) => AddToContainer(p, cg.ContainerId, cg.PodUid);

    private void AddToContainer(ProcessState p, string containerId, string podUid)
    {
        if (!_containers.TryGetValue(containerId, out var c))
            _containers[containerId] = c = new ContainerState { Id = containerId, PodUid = podUid };
        p.Container = c;
        c.Live++;
        c.Tracked++;
        c.EverTracked++;
    }

    private void MoveToContainer(ProcessState p, WorkloadIdentity workload)
    {
        if (p.Container is { } old)
        {
            old.Live--;
            old.Tracked--;
            old.EverTracked--;
        }
        AddToContainer(p, workload.Container!);
    }

    private void Join(ProcessState p, SessionState s)
    {
        p.Session = s;
        if (!s.Members.Add(p)) return;
        s.ProcessCount++;
        s.Connects += p.Connects;
        s.Files += p.Files;
    }

    // ------------------------------------------------------------------ exec roots and the pod group join

    private void NewRootCandidate(ProcessState p, ProcessExecRecord e, ref List<CorrelationOutput>? outputs)
    {
        var podUid = p.Container!.PodUid;
        if (!_groups.TryGetValue(podUid, out var group)) _groups[podUid] = group = new PodGroup { PodUid = podUid };
        var root = new RootCandidate
        {
            Process = p,
            Group = group,
            NodeSessionId = "node-" + p.Key.ToString(),
            ContainerName = e.Workload.ContainerName,
            RuntimeFlag = e.PreviousImageWasRuntime,
            ArgvTruncated = e.ArgvTruncated,
            Argv = e.Argv,
            Start = e.Time,
        };
        p.Root = root;
        group.Roots.Add(root);
        _pendingRoots++;
        _rootDeadlines.Enqueue(root, e.Time + _options.AuditLatencyAllowance);
        Recompute(group, ref outputs);
    }

    private bool Compatible(AuditState a, RootCandidate r)
    {
        if (a.Rejected) return false;
        if (r.Start < a.RequestReceived - _options.ClockSkew) return false;
        if (r.Start > a.WindowStartAnchor + _options.StartWindow) return false;
        if (!ArgvMatches(a.First.Command, r.Argv, r.ArgvTruncated)) return false;
        return ContainerMatches(a, r.Process.Container!, r.ContainerName);
    }

    private bool ContainerMatches(AuditState a, ContainerState container, string? containerNameFromCgroup)
    {
        if (a.ContainerName is null) return false;
        var pod = _pods.FindPodByUid(a.PodUid!) ?? a.Pod;
        var spec = pod?.FindByName(a.ContainerName);
        if (spec?.ContainerId is { } id) return id == container.Id;
        // The pod status may not list the container id yet; the cgroup's metadata may still name it.
        return containerNameFromCgroup == a.ContainerName || container.Name == a.ContainerName;
    }

    private static bool ArgvMatches(IReadOnlyList<string> audit, IReadOnlyList<string> node, bool nodeTruncated)
    {
        if (!nodeTruncated)
        {
            if (audit.Count != node.Count) return false;
            for (int i = 0; i < audit.Count; i++) if (!string.Equals(audit[i], node[i], StringComparison.Ordinal)) return false;
            return true;
        }
        // A truncated capture can only be checked as a prefix: whole leading arguments, the last cut short.
        if (node.Count == 0 || node.Count > audit.Count) return false;
        for (int i = 0; i < node.Count - 1; i++) if (!string.Equals(audit[i], node[i], StringComparison.Ordinal)) return false;
        return audit[node.Count - 1].StartsWith(node[^1], StringComparison.Ordinal);
    }

    private static int CompareAudits(AuditState x, AuditState y)
    {
        int c = x.RequestReceived.CompareTo(y.RequestReceived);
        return c != 0 ? c : string.CompareOrdinal(x.AuditId, y.AuditId);
    }

    private static int CompareRoots(RootCandidate x, RootCandidate y)
    {
        int c = x.Start.CompareTo(y.Start);
        if (c != 0) return c;
        c = x.Process.Key.StartTicks.CompareTo(y.Process.Key.StartTicks);
        return c != 0 ? c : x.Process.Key.Tgid.CompareTo(y.Process.Key.Tgid);
    }

    /// <summary>
    /// Re-derives the whole assignment of one pod's exec requests to its root candidates from scratch, so the
    /// result depends only on what has arrived, never on arrival order: requests in requestReceived order take
    /// the earliest compatible free root; pairs whose root's wait has ended are fixed.
    /// </summary>
    private void Recompute(PodGroup g, ref List<CorrelationOutput>? outputs)
    {
        g.Audits.Sort(CompareAudits);
        g.Roots.Sort(CompareRoots);
        foreach (var a in g.Audits)
        {
            a.Previous = a.Assigned;
            if (a.Assigned is { Finalized: true }) continue;
            a.Assigned = null;
        }
        foreach (var r in g.Roots) if (!r.Finalized) r.Assigned = null;
        foreach (var a in g.Audits)
        {
            if (a.Finalized || a.Assigned is not null || a.Rejected) continue;
            foreach (var r in g.Roots)
            {
                if (r.Finalized || r.Assigned is not null || !Compatible(a, r)) continue;
                a.Assigned = r;
                r.Assigned = a;
                break;
            }
        }

        // Detach everything that moved before attaching anything, so a root passed from one request to another
        // is not detached from its new owner.
        foreach (var a in g.Audits)
            if (a.Previous != a.Assigned && a.Previous is { } lost && lost.Process.Session == a.Session)
                DetachSubtree(lost.Process, a.Session);
        foreach (var a in g.Audits)
        {
            bool rootChanged = a.Previous != a.Assigned;
            var s = a.Session;
            if (rootChanged)
            {
                s.Root = null;
                s.Workload = null;
                s.NodeStart = null;
                s.NodeEnd = null;
                if (a.Assigned is { } won)
                {
                    s.Root = won.Process;
                    s.Workload = won.Process.Workload;
                    s.NodeStart = won.Start;
                    s.NodeEnd = won.Process.Exited;
                    AttachSubtree(won.Process, s);
                    s.LastActivity = Max(s.LastActivity, won.Start);
                }
            }
            var (confidence, kind, reason, alternatives) = Judge(a, g);
            bool changed = rootChanged || confidence != s.Confidence || kind != s.Kind || !alternatives.SequenceEqual(s.Alternatives);
            // A rejected request never becomes a session (docs/correlation.md: denied execs are findings).
            bool visible = !a.Rejected && (a.Assigned is not null || a.Finalized) || s.Emitted;
            var previousConfidence = s.Confidence;
            s.Confidence = confidence;
            s.Kind = kind;
            s.Reason = reason;
            s.Alternatives = alternatives;
            if (changed && visible) EmitSession(s, rootChanged || confidence != previousConfidence, ref outputs);
        }
        foreach (var r in g.Roots)
        {
            if (r.NodeSession is not { } ns) continue;
            var (confidence, reason, alternatives) = JudgeNodeOnly(r, g);
            if (confidence == ns.Confidence && alternatives.SequenceEqual(ns.Alternatives)) continue;
            bool confidenceChanged = confidence != ns.Confidence;
            ns.Confidence = confidence;
            ns.Reason = reason;
            ns.Alternatives = alternatives;
            EmitSession(ns, confidenceChanged, ref outputs);
        }
        foreach (var a in g.Audits) a.Previous = a.Assigned;
    }

    private (SessionConfidence, SessionKind, string, List<string>) Judge(AuditState a, PodGroup g)
    {
        var alternatives = new List<string>();
        foreach (var b in g.Audits)
        {
            if (b == a || b.Rejected) continue;
            if (Indistinguishable(a, b, g)) alternatives.Add(b.Session.Id);
        }
        foreach (var r in g.Roots)
            if (r.Assigned is null && Compatible(a, r)) alternatives.Add(r.NodeSessionId);
        alternatives.Sort(StringComparer.Ordinal);

        if (a.Assigned is not { } root)
        {
            var kind = a.Finalized ? SessionKind.AuditOnly : SessionKind.Exec;
            if (alternatives.Count > 0)
                return (SessionConfidence.Ambiguous, kind, "no process left for this request: a process that matched it was given to an identical request", alternatives);
            string why = a.ResponseCode is null
                ? "no process in the pod's container matched the command in the window (the response code was not seen)"
                : "allowed, but no process in the pod's container matched the command in the window";
            return (SessionConfidence.Unattributed, kind, why, alternatives);
        }
        if (alternatives.Count > 0)
            return (SessionConfidence.Ambiguous, SessionKind.Exec,
                "another request or process with the same command, pod and container overlaps in time; assigned in time order", alternatives);
        var relaxed = new List<string>(3);
        if (a.ContainerInferred) relaxed.Add("container inferred as the pod's default container");
        if (!root.RuntimeFlag) relaxed.Add("root recognised by its parent outside the container, not by a runtime previous image");
        if (root.ArgvTruncated) relaxed.Add("argv compared as a prefix (captured argv truncated)");
        if (relaxed.Count > 0) return (SessionConfidence.Probable, SessionKind.Exec, string.Join("; ", relaxed), alternatives);
        return (SessionConfidence.Certain, SessionKind.Exec, "one request and one runtime-started process: same pod, container and argv, inside the window", alternatives);
    }

    private bool Indistinguishable(AuditState a, AuditState b, PodGroup g)
    {
        if (a.Assigned is { } ra && !Compatible(b, ra)) return false;
        if (b.Assigned is { } rb && !Compatible(a, rb)) return false;
        foreach (var r in g.Roots) if (Compatible(a, r) && Compatible(b, r)) return true;
        return false;
    }

    private (SessionConfidence, string, List<string>) JudgeNodeOnly(RootCandidate r, PodGroup g)
    {
        var alternatives = new List<string>();
        foreach (var a in g.Audits) if (Compatible(a, r)) alternatives.Add(a.Session.Id);
        alternatives.Sort(StringComparer.Ordinal);
        var ns = r.NodeSession!;
        if (alternatives.Count > 0)
            return (SessionConfidence.Ambiguous, "an identical request was given another process; this one may be its", alternatives);
        return ns.Kind == SessionKind.Probe
            ? (SessionConfidence.Probable, "argv equals a probe or lifecycle exec command of the container, and no audit event matched", alternatives)
            : (SessionConfidence.Unattributed, "entered the container through the runtime with no matching API-server request", alternatives);
    }

    private void AttachSubtree(ProcessState root, SessionState s)
    {
        var stack = new Stack<ProcessState>();
        stack.Push(root);
        while (stack.Count > 0)
        {
            var p = stack.Pop();
            if (p.Session is not null && p.Session != s && p != root) continue;
            if (p.Session != s) Join(p, s);
            if (p.Children is { } children)
                foreach (var c in children)
                    if (c.Root is null || c == root) stack.Push(c);
        }
    }

    private static void DetachSubtree(ProcessState root, SessionState s)
    {
        var stack = new Stack<ProcessState>();
        stack.Push(root);
        while (stack.Count > 0)
        {
            var p = stack.Pop();
            if (p.Session != s) continue;
            p.Session = null;
            if (s.Members.Remove(p))
            {
                s.ProcessCount--;
                s.Connects -= p.Connects;
                s.Files -= p.Files;
            }
            if (p.Children is { } children) foreach (var c in children) stack.Push(c);
        }
    }

    // ------------------------------------------------------------------ audit side

    private void NewAudit(AuditRequest request, AuditRequestKind kind, ref List<CorrelationOutput>? outputs)
    {
        var session = new SessionState
        {
            Id = request.AuditId,
            Kind = kind switch
            {
                AuditRequestKind.Attach => SessionKind.Attach,
                AuditRequestKind.PortForward => SessionKind.PortForward,
                AuditRequestKind.EphemeralContainers => SessionKind.Debug,
                _ => SessionKind.Exec,
            },
            LastActivity = request.StageTimestamp,
            Namespace = request.Namespace,
            Pod = request.Name,
            Command = request.Command,
        };
        var audit = new AuditState
        {
            AuditId = request.AuditId, Kind = kind, First = request, Session = session,
            RequestReceived = request.RequestReceived,
        };
        session.Audit = audit;
        _audits[request.AuditId] = audit;
        _auditOrder.Enqueue((request.AuditId, request.RequestReceived));
        ApplyStage(audit, request);
        if (IsRejected(audit.ResponseCode)) { Reject(audit, ref outputs); return; }
        if (!Resolve(audit))
        {
            if (!audit.Foreign)
            {
                audit.Unresolved = true;
                _unresolvedAudits.Add(audit);
                _auditDeadlines.Enqueue(audit, AuditDeadline(audit));
            }
            return;
        }
        Activate(audit, ref outputs);
    }

    private void MergeStage(AuditState audit, AuditRequest request, ref List<CorrelationOutput>? outputs)
    {
        int bit = 1 << (int)request.Stage;
        if ((audit.StagesSeen & bit) != 0) { _duplicates++; return; }
        var startedBefore = audit.ResponseStarted;
        var completeBefore = audit.ResponseComplete;
        ApplyStage(audit, request);
        if (audit.Foreign || audit.Rejected) return;
        if (IsRejected(audit.ResponseCode)) { Reject(audit, ref outputs); return; }
        if (audit.Unresolved) return;
        var s = audit.Session;
        switch (audit.Kind)
        {
            case AuditRequestKind.Exec:
                if (startedBefore != audit.ResponseStarted && audit.Group is { } g) Recompute(g, ref outputs);
                else if (s.Emitted) EmitSession(s, attribution: false, ref outputs);
                break;
            case AuditRequestKind.Attach:
            case AuditRequestKind.PortForward:
                if (completeBefore != audit.ResponseComplete)
                {
                    s.WindowEnd = audit.ResponseComplete!.Value + _options.ClockSkew;
                    JudgeStreamSessions(s.PodUid!, s.Kind, ref outputs);
                }
                if (s.Emitted) EmitSession(s, attribution: false, ref outputs);
                break;
            default:
                if (s.Emitted) EmitSession(s, attribution: false, ref outputs);
                break;
        }
    }

    private void ApplyStage(AuditState audit, AuditRequest request)
    {
        audit.StagesSeen |= 1 << (int)request.Stage;
        // Policies often omit RequestReceived; every stage carries requestReceivedTimestamp. Keep the earliest
        // should two deliveries disagree.
        if (request.RequestReceived < audit.RequestReceived) audit.RequestReceived = request.RequestReceived;
        switch (request.Stage)
        {
            case AuditStage.ResponseStarted:
                audit.ResponseStarted = request.StageTimestamp;
                break;
            case AuditStage.ResponseComplete:
            case AuditStage.Panic:
                audit.ResponseComplete = request.StageTimestamp;
                break;
        }
        if (request.ResponseCode is { } code) audit.ResponseCode = code;
        else if (request.Stage == AuditStage.Panic) audit.ResponseCode ??= 500;
        if (audit.First.Command.Count == 0 && request.Command.Count > 0) audit.First = request;
        audit.Session.LastActivity = Max(audit.Session.LastActivity, request.StageTimestamp);
    }

    /// <summary>101 Switching Protocols (SPDY/WebSocket upgrade) and 2xx mean allowed; anything from 300 on means no stream.</summary>
    private static bool IsRejected(int? code) => code is >= 300;

    private void Reject(AuditState audit, ref List<CorrelationOutput>? outputs)
    {
        if (audit.Rejected) return;
        audit.Rejected = true;
        audit.Finalized = true;
        _unresolvedAudits.Remove(audit);
        if (audit.Group is { } g) Recompute(g, ref outputs);
        if (audit.ResponseCode is 401 or 403)
        {
            var r = audit.First;
            RaiseFinding(ref outputs, new CorrelationFinding
            {
                Id = FindingKinds.ExecDenied + ":" + audit.AuditId,
                Kind = FindingKinds.ExecDenied,
                Severity = FindingSeverity.Low,
                Summary = string.Create(CultureInfo.InvariantCulture,
                    $"{r.User} was denied {r.Subresource} on pod {r.Namespace}/{r.Name} ({audit.ResponseCode})"),
                Time = audit.RequestReceived,
                Namespace = r.Namespace,
                Pod = r.Name,
                User = r.User,
                Evidence = new Dictionary<string, string>
                {
                    ["auditId"] = audit.AuditId,
                    ["verb"] = r.Verb,
                    ["subresource"] = r.Subresource ?? "",
                    ["responseCode"] = audit.ResponseCode.Value.ToString(CultureInfo.InvariantCulture),
                    ["command"] = string.Join(' ', r.Command),
                    ["sourceIPs"] = string.Join(',', r.SourceIps),
                },
            });
        }
        else _failed++;
    }

    /// <summary>Finds the pod on this node. False when not (yet) known; marks the audit foreign when it is another node's.</summary>
    private bool Resolve(AuditState audit)
    {
        var r = audit.First;
        if (r.Namespace is null || r.Name is null) { audit.Foreign = true; _foreign++; return false; }
        var pod = _pods.FindPod(r.Namespace, r.Name);
        if (pod is null) return false;
        if (_options.NodeName is { } node && pod.NodeName is { } podNode && podNode != node)
        {
            audit.Foreign = true;
            _foreign++;
            return false;
        }
        audit.Pod = pod;
        audit.PodUid = pod.Uid;
        audit.Session.PodUid = pod.Uid;
        if (audit.Kind == AuditRequestKind.EphemeralContainers)
        {
            audit.ContainerName = r.Container;
        }
        else if (!string.IsNullOrEmpty(r.Container))
        {
            audit.ContainerName = r.Container;
        }
        else
        {
            audit.ContainerName = pod.DefaultContainer;
            audit.ContainerInferred = true;
        }
        audit.Session.Container = audit.ContainerName;
        audit.Session.ContainerId = audit.ContainerName is { } n ? pod.FindByName(n)?.ContainerId : null;
        return true;
    }

    private void Activate(AuditState audit, ref List<CorrelationOutput>? outputs)
    {
        var s = audit.Session;
        switch (audit.Kind)
        {
            case AuditRequestKind.Exec:
            {
                if (!_groups.TryGetValue(audit.PodUid!, out var g)) _groups[audit.PodUid!] = g = new PodGroup { PodUid = audit.PodUid! };
                audit.Group = g;
                g.Audits.Add(audit);
                _sessions[s.Id] = s;
                EnsureSessionCapacity();
                _auditDeadlines.Enqueue(audit, AuditDeadline(audit));
                Recompute(g, ref outputs);
                break;
            }
            case AuditRequestKind.Attach:
            case AuditRequestKind.PortForward:
            {
                s.WindowStart = audit.RequestReceived - _options.ClockSkew;
                s.WindowEnd = audit.ResponseComplete is { } done
                    ? done + _options.ClockSkew
                    : audit.RequestReceived + _options.StreamWindowWithoutCompletion;
                if (audit.Kind == AuditRequestKind.Attach && s.ContainerId is { } cid && _containers.TryGetValue(cid, out var c))
                {
                    s.Root = c.Init;
                    s.Workload = c.Init?.Workload;
                    s.NodeStart = c.Init?.Start;
                }
                audit.Finalized = true;
                AddStreamSession(s);
                JudgeStreamSessions(audit.PodUid!, s.Kind, ref outputs);
                if (!s.Emitted) EmitSession(s, attribution: false, ref outputs);
                break;
            }
            case AuditRequestKind.EphemeralContainers:
            {
                s.WindowStart = audit.RequestReceived - _options.ClockSkew;
                s.WindowEnd = audit.WindowStartAnchor + _options.StartWindow + _options.AuditLatencyAllowance;
                s.Confidence = audit.ContainerName is null ? SessionConfidence.Probable : SessionConfidence.Certain;
                s.Reason = audit.ContainerName is null
                    ? "ephemeral container inferred: the audit event did not name it"
                    : "processes of the ephemeral container named in the request";
                audit.Finalized = true;
                AddStreamSession(s);
                EmitSession(s, attribution: false, ref outputs);
                foreach (var c in _unclaimedContainers.Where(c => c.PodUid == audit.PodUid).OrderBy(c => c.Id, StringComparer.Ordinal).ToList())
                    TryClaimEphemeral(c, ref outputs);
                break;
            }
        }
    }

    private void AddStreamSession(SessionState s)
    {
        _sessions[s.Id] = s;
        EnsureSessionCapacity();
        if (!_streamSessions.TryGetValue(s.PodUid!, out var list)) _streamSessions[s.PodUid!] = list = [];
        list.Add(s);
    }

    private DateTimeOffset AuditDeadline(AuditState a) => a.WindowStartAnchor + _options.StartWindow + _options.NodeEventGrace;

    private void RetryUnresolvedAudits(ref List<CorrelationOutput>? outputs)
    {
        if (_unresolvedAudits.Count == 0) return;
        foreach (var a in _unresolvedAudits.ToList())
        {
            if (!Resolve(a))
            {
                if (a.Foreign) _unresolvedAudits.Remove(a);
                continue;
            }
            a.Unresolved = false;
            _unresolvedAudits.Remove(a);
            Activate(a, ref outputs);
        }
    }

    private void ExpireAudits(DateTimeOffset now, ref List<CorrelationOutput>? outputs)
    {
        var touched = new List<PodGroup>();
        while (_auditDeadlines.TryPeek(out var a, out var deadline) && deadline <= now)
        {
            _auditDeadlines.Dequeue();
            if (a.Finalized || a.Rejected) continue;
            var actual = AuditDeadline(a);
            if (actual > now) { _auditDeadlines.Enqueue(a, actual); continue; }
            if (a.Unresolved)
            {
                // No pod of that name on this node by the end of the window: another node's pod.
                a.Unresolved = false;
                a.Foreign = true;
                a.Finalized = true;
                _unresolvedAudits.Remove(a);
                _foreign++;
                continue;
            }
            if (a.Assigned is not null) continue;
            a.Finalized = true;
            if (a.Group is { } g && !touched.Contains(g)) touched.Add(g);
        }
        foreach (var g in touched) { Recompute(g, ref outputs); DropSettledGroup(g); }
    }

    private void ExpireRoots(DateTimeOffset now, ref List<CorrelationOutput>? outputs)
    {
        var touched = new List<PodGroup>();
        var due = new List<RootCandidate>();
        while (_rootDeadlines.TryPeek(out var r, out var deadline) && deadline <= now)
        {
            _rootDeadlines.Dequeue();
            if (!r.Finalized) due.Add(r);
        }
        due.Sort(CompareRoots);
        foreach (var r in due)
        {
            r.Finalized = true;
            _pendingRoots--;
            if (r.Assigned is { } a) { a.Finalized = true; }
            else NewNodeOnlySession(r, ref outputs);
            if (!touched.Contains(r.Group)) touched.Add(r.Group);
        }
        foreach (var g in touched) { Recompute(g, ref outputs); DropSettledGroup(g); }
    }

    private void DropSettledGroup(PodGroup g)
    {
        foreach (var a in g.Audits) if (!a.Finalized) return;
        foreach (var r in g.Roots) if (!r.Finalized) return;
        foreach (var r in g.Roots) r.Process.Root = null;
        _groups.Remove(g.PodUid);
    }

    private void NewNodeOnlySession(RootCandidate r, ref List<CorrelationOutput>? outputs)
    {
        var p = r.Process;
        var pod = _pods.FindPodByUid(p.Container!.PodUid);
        var spec = pod?.FindById(p.Container.Id) ?? (r.ContainerName is { } n ? pod?.FindByName(n) : null);
        bool probe = spec is not null && spec.ExecCommands.Any(cmd => ArgvMatches(cmd, r.Argv, r.ArgvTruncated));
        var s = new SessionState
        {
            Id = r.NodeSessionId,
            Kind = probe ? SessionKind.Probe : SessionKind.UnattributedExec,
            Root = p,
            Workload = p.Workload,
            NodeStart = r.Start,
            NodeEnd = p.Exited,
            LastActivity = Max(r.Start, p.Exited ?? r.Start),
            PodUid = p.Container.PodUid,
            Namespace = pod?.Namespace ?? p.Workload?.Namespace,
            Pod = pod?.Name ?? p.Workload?.PodName,
            Container = spec?.Name ?? r.ContainerName,
            ContainerId = p.Container.Id,
            Command = r.Argv,
        };
        r.NodeSession = s;
        _sessions[s.Id] = s;
        EnsureSessionCapacity();
        AttachSubtree(p, s);
        var (confidence, reason, alternatives) = JudgeNodeOnly(r, r.Group);
        s.Confidence = confidence;
        s.Reason = reason;
        s.Alternatives = alternatives;
        EmitSession(s, attribution: true, ref outputs);
        if (!probe)
        {
            RaiseFinding(ref outputs, new CorrelationFinding
            {
                Id = FindingKinds.UnattributedExec + ":" + s.Id,
                Kind = FindingKinds.UnattributedExec,
                Severity = alternatives.Count > 0 ? FindingSeverity.Medium : FindingSeverity.High,
                Summary = $"process entered container {s.Container ?? p.Container.Id} of pod {s.Namespace}/{s.Pod} through the runtime without an API-server request: {string.Join(' ', r.Argv)}",
                Time = r.Start,
                Namespace = s.Namespace,
                Pod = s.Pod,
                SessionId = s.Id,
                Evidence = new Dictionary<string, string>
                {
                    ["processKey"] = p.Key.ToString(),
                    ["pid"] = p.Pid.ToString(CultureInfo.InvariantCulture),
                    ["argv"] = string.Join(' ', r.Argv),
                    ["containerId"] = p.Container.Id,
                    ["podUid"] = p.Container.PodUid,
                    ["previousImageWasRuntime"] = r.RuntimeFlag ? "true" : "false",
                    ["alternatives"] = string.Join(',', alternatives),
                },
            });
        }
    }

    // ------------------------------------------------------------------ attach, debug, port-forward

    /// <summary>A new process in a container that no exec session claims: an ephemeral container's debug session, or an open attach.</summary>
    private void ClaimForContainerSessions(ProcessState p, ref List<CorrelationOutput>? outputs)
    {
        // A root waiting for its audit event, and its descendants, belong to whatever that join decides.
        if (HasPendingRootInLine(p)) return;
        var c = p.Container!;
        if (c.Ephemeral is null) ResolveContainer(c);
        if (c.Ephemeral != false)
        {
            if (c.Debug is { } debug) { Join(p, debug); return; }
            c.Unclaimed ??= [];
            if (c.Unclaimed.Count < 4096) c.Unclaimed.Add(p);
            c.UnclaimedSince ??= p.Start;
            _unclaimedContainers.Add(c);
            TryClaimEphemeral(c, ref outputs);
            if (p.Session is not null) return;
        }
        if (!_streamSessions.TryGetValue(c.PodUid, out var sessions)) return;
        SessionState? best = null;
        foreach (var s in sessions)
        {
            if (s.Kind != SessionKind.Attach || !Targets(s, c, p)) continue;
            if (p.Start < s.WindowStart || p.Start > s.WindowEnd) continue;
            if (best is null || s.WindowStart < best.WindowStart) best = s;
        }
        if (best is not null)
        {
            Join(p, best);
            c.Unclaimed?.Remove(p);
        }
    }

    private static bool HasPendingRootInLine(ProcessState p)
    {
        for (int depth = 0; p is not null && depth < 256; depth++, p = p.Parent!)
            if (p.Root is not null) return true;
        return false;
    }

    /// <summary>By container id; by name while the pod status does not list the id yet.</summary>
    private static bool Targets(SessionState s, ContainerState c, ProcessState p) =>
        s.ContainerId is { } id ? id == c.Id : s.Container is { } name && (c.Name == name || p.Workload?.ContainerName == name);

    private void ResolveContainer(ContainerState c)
    {
        var pod = _pods.FindPodByUid(c.PodUid);
        var spec = pod?.FindById(c.Id);
        if (spec is null) return;
        c.Ephemeral = spec.IsEphemeral;
        c.Name = spec.Name;
        if (!spec.IsEphemeral) { c.Unclaimed = null; _unclaimedContainers.Remove(c); }
    }

    private void TryClaimEphemeral(ContainerState c, ref List<CorrelationOutput>? outputs)
    {
        if (c.Ephemeral is null) ResolveContainer(c);
        if (c.Ephemeral == false || c.Unclaimed is not { Count: > 0 } unclaimed) return;
        if (!_streamSessions.TryGetValue(c.PodUid, out var sessions)) return;
        SessionState? chosen = null;
        foreach (var s in sessions)
        {
            if (s.Kind != SessionKind.Debug || s.ContainerId is not null && s.ContainerId != c.Id) continue;
            var a = s.Audit!;
            if (a.ContainerName is { } name)
            {
                // Named: the pod lookup must agree (by id, or by name while the status lags).
                var pod = _pods.FindPodByUid(c.PodUid);
                var byName = pod?.FindByName(name);
                bool match = byName?.ContainerId is { } id ? id == c.Id : c.Name == name || (c.Name is null && c.Ephemeral is null);
                if (!match) continue;
            }
            if (c.UnclaimedSince < s.WindowStart || c.UnclaimedSince > s.WindowEnd) continue;
            if (chosen is null || s.WindowStart > chosen.WindowStart) chosen = s;
        }
        if (chosen is null) return;
        if (c.Ephemeral is null && chosen.Audit!.ContainerName is not null)
        {
            // Container id not in the pod status yet: the name fits and the time fits, but it is an inference.
            chosen.Confidence = SessionConfidence.Probable;
            chosen.Reason = "ephemeral container matched by time: its id was not yet in the pod status";
        }
        c.Debug = chosen;
        chosen.ContainerId = c.Id;
        chosen.Root ??= c.Init ?? unclaimed[0];
        chosen.Workload ??= chosen.Root.Workload;
        chosen.NodeStart ??= chosen.Root.Start;
        c.UnclaimedSince = null;
        _unclaimedContainers.Remove(c);
        AdoptUnclaimed(c, chosen, ref outputs);
    }

    /// <summary>
    /// Joins a container's unclaimed processes to <paramref name="session"/> and reports it, releasing the sequences
    /// held back while the processes had no session.
    /// </summary>
    private void AdoptUnclaimed(ContainerState c, SessionState session, ref List<CorrelationOutput>? outputs)
    {
        var sequences = new List<ulong>();
        foreach (var p in c.Unclaimed!)
        {
            // A runtime-started root in that container is an exec into it: the exec join owns it.
            if (p.Session is not null || p.Root is not null) continue;
            Join(p, session);
            if (p.PendingSequences is { } seq) { sequences.AddRange(seq); p.PendingSequences = null; }
        }
        c.Unclaimed = null;
        Emit(ref outputs, new SessionChanged(Snapshot(session)));
        Emit(ref outputs, new AttributionUpdated(session.Id, session.Confidence, KeysOf(session), sequences));
    }

    private void ExpireUnclaimedContainers(DateTimeOffset now, ref List<CorrelationOutput>? outputs)
    {
        if (_unclaimedContainers.Count == 0) return;
        foreach (var c in _unclaimedContainers.OrderBy(c => c.Id, StringComparer.Ordinal).ToList())
        {
            TryClaimEphemeral(c, ref outputs);
            if (!_unclaimedContainers.Contains(c)) continue;
            if (c.UnclaimedSince is not { } since || now - since < _options.AuditLatencyAllowance) continue;
            _unclaimedContainers.Remove(c);
            if (c.Ephemeral != true) { c.Unclaimed = null; continue; }
            var unclaimed = c.Unclaimed!;
            var root = c.Init ?? unclaimed[0];
            var pod = _pods.FindPodByUid(c.PodUid);
            var s = new SessionState
            {
                Id = "node-" + root.Key.ToString(),
                Kind = SessionKind.Debug,
                Confidence = SessionConfidence.Unattributed,
                Reason = "an ephemeral container ran with no pods/ephemeralcontainers request in the audit log",
                Root = root, Workload = root.Workload, NodeStart = root.Start, NodeEnd = root.Exited,
                LastActivity = now, PodUid = c.PodUid, Namespace = pod?.Namespace, Pod = pod?.Name,
                Container = c.Name, ContainerId = c.Id, Command = root.Argv,
            };
            _sessions[s.Id] = s;
            EnsureSessionCapacity();
            c.Debug = s;
            s.Emitted = true;
            AdoptUnclaimed(c, s, ref outputs);
            RaiseFinding(ref outputs, new CorrelationFinding
            {
                Id = FindingKinds.UnattributedEphemeralContainer + ":" + s.Id,
                Kind = FindingKinds.UnattributedEphemeralContainer,
                Severity = FindingSeverity.High,
                Summary = $"ephemeral container {c.Name} of pod {s.Namespace}/{s.Pod} ran with no audited request",
                Time = root.Start,
                Namespace = s.Namespace,
                Pod = s.Pod,
                SessionId = s.Id,
                Evidence = new Dictionary<string, string> { ["containerId"] = c.Id, ["podUid"] = c.PodUid, ["processKey"] = root.Key.ToString() },
            });
        }
    }

    /// <summary>Overlapping attach (or port-forward) sessions on the same target cannot be told apart.</summary>
    private void JudgeStreamSessions(string podUid, SessionKind kind, ref List<CorrelationOutput>? outputs)
    {
        if (!_streamSessions.TryGetValue(podUid, out var sessions)) return;
        foreach (var s in sessions)
        {
            if (s.Kind != kind) continue;
            var alternatives = new List<string>();
            foreach (var o in sessions)
            {
                if (o == s || o.Kind != kind) continue;
                bool sameTarget = kind == SessionKind.PortForward || o.ContainerId == s.ContainerId;
                if (sameTarget && o.WindowStart <= s.WindowEnd && s.WindowStart <= o.WindowEnd
                    && (kind != SessionKind.PortForward || PortsOverlap(o, s))) alternatives.Add(o.Id);
            }
            alternatives.Sort(StringComparer.Ordinal);
            SessionConfidence confidence;
            string reason;
            if (alternatives.Count > 0)
            {
                confidence = SessionConfidence.Ambiguous;
                reason = kind == SessionKind.Attach
                    ? "another attach to the same container overlaps; its processes go to the earlier one"
                    : "another port-forward to the same pod and port overlaps; connections go to the earlier one";
            }
            else if (kind == SessionKind.Attach)
            {
                confidence = SessionConfidence.Probable;
                reason = "attach starts no process: processes the container's own tree started inside the window are attributed to it";
            }
            else
            {
                confidence = s.ForwardedConnections > 0 && s.Confidence == SessionConfidence.Certain ? SessionConfidence.Certain : SessionConfidence.Probable;
                reason = confidence == SessionConfidence.Certain
                    ? "a runtime connection to localhost inside this pod's network namespace, in the window"
                    : "port-forward requested; connections recognised by loopback address, port and window";
            }
            if (confidence == s.Confidence && alternatives.SequenceEqual(s.Alternatives)) continue;
            s.Confidence = confidence;
            s.Reason = reason;
            s.Alternatives = alternatives;
            if (s.Emitted) EmitSession(s, attribution: false, ref outputs);
        }
    }

    private static bool PortsOverlap(SessionState a, SessionState b)
    {
        var pa = a.Audit!.First.Ports;
        var pb = b.Audit!.First.Ports;
        return pa.Count == 0 || pb.Count == 0 || pa.Intersect(pb).Any();
    }

    /// <summary>
    /// The runtime serves port-forward by connecting to localhost:port inside the pod's network namespace from a
    /// host process (containerd, CRI-O). With the netns known the pod is certain; without it only the port says which.
    /// </summary>
    private string? MatchPortForward(ConnectRecord c, ref List<CorrelationOutput>? outputs)
    {
        var candidates = new List<SessionState>();
        if (c.NetworkPodUid is { } podUid)
        {
            if (_streamSessions.TryGetValue(podUid, out var list)) AddPortForwardCandidates(list, c, candidates);
        }
        else
        {
            foreach (var key in _streamSessions.Keys.Order(StringComparer.Ordinal))
                AddPortForwardCandidates(_streamSessions[key], c, candidates, requirePort: true);
        }
        if (candidates.Count == 0) return null;
        candidates.Sort((x, y) => x.WindowStart != y.WindowStart ? x.WindowStart.CompareTo(y.WindowStart) : string.CompareOrdinal(x.Id, y.Id));
        var s = candidates[0];
        s.ForwardedConnections++;
        s.LastActivity = Max(s.LastActivity, c.Time);
        if (candidates.Count == 1 && s.Alternatives.Count == 0)
        {
            var confidence = c.NetworkPodUid is not null ? SessionConfidence.Certain : SessionConfidence.Probable;
            if (confidence != s.Confidence || s.ForwardedConnections == 1)
            {
                s.Confidence = confidence;
                s.Reason = confidence == SessionConfidence.Certain
                    ? "a runtime connection to localhost inside this pod's network namespace, in the window"
                    : "a host process connected to localhost on the forwarded port in the window; the pod's network namespace was not known";
                EmitSession(s, attribution: false, ref outputs);
            }
        }
        else if (candidates.Count > 1)
        {
            foreach (var x in candidates)
            {
                var alternatives = candidates.Where(o => o != x).Select(o => o.Id).Union(x.Alternatives).Order(StringComparer.Ordinal).ToList();
                if (x.Confidence == SessionConfidence.Ambiguous && alternatives.SequenceEqual(x.Alternatives)) continue;
                x.Confidence = SessionConfidence.Ambiguous;
                x.Reason = "connections could belong to more than one overlapping port-forward";
                x.Alternatives = alternatives;
                EmitSession(x, attribution: false, ref outputs);
            }
        }
        return s.Id;
    }

    private static void AddPortForwardCandidates(List<SessionState> sessions, ConnectRecord c, List<SessionState> into, bool requirePort = false)
    {
        foreach (var s in sessions)
        {
            if (s.Kind != SessionKind.PortForward || c.Time < s.WindowStart || c.Time > s.WindowEnd) continue;
            var ports = s.Audit!.First.Ports;
            if (ports.Count > 0 ? !ports.Contains(c.Port) : requirePort) continue;
            into.Add(s);
        }
    }

    // ------------------------------------------------------------------ pod-bound service-account tokens

    private bool IsApiServer(IPAddress address, int port)
    {
        if (_apiServer.Count == 0) return false;
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        return _apiServer.Contains(new IPEndPoint(address, port));
    }

    private void OnTokenRequest(AuditRequest request, ref List<CorrelationOutput>? outputs)
    {
        if (_seenTokenAudits.ContainsKey(request.AuditId)) { _duplicates++; return; }
        var token = request.Token!;
        if (_options.NodeName is { } node && token.NodeName is { } tokenNode && tokenNode != node) return;
        var pod = _pods.FindPodByUid(token.PodUid);
        if (pod is null) { _foreign++; return; }
        _seenTokenAudits[request.AuditId] = request.RequestReceived;
        _seenTokenOrder.Enqueue((request.AuditId, request.RequestReceived));
        var check = new PendingTokenCheck { Request = request, Pod = pod, Deadline = request.RequestReceived + _options.ClockSkew + _options.NodeEventGrace };
        if (!EvaluateToken(check, final: false, ref outputs)) _tokenChecks.Add(check);
    }

    private void RunTokenChecks(DateTimeOffset now, bool deadlineOnly, ref List<CorrelationOutput>? outputs)
    {
        if (_tokenChecks.Count == 0) return;
        for (int i = 0; i < _tokenChecks.Count; i++)
        {
            var check = _tokenChecks[i];
            bool final = check.Deadline <= now;
            if (deadlineOnly && !final) continue;
            if (EvaluateToken(check, final, ref outputs)) { _tokenChecks.RemoveAt(i); i--; }
        }
    }

    /// <summary>True when the check is done (attributed or a finding raised).</summary>
    private bool EvaluateToken(PendingTokenCheck check, bool final, ref List<CorrelationOutput>? outputs)
    {
        var r = check.Request;
        var pod = check.Pod;
        string? source = r.SourceIps.Count > 0 ? r.SourceIps[0] : null;
        bool sourceIsPod = source is not null && IPAddress.TryParse(source, out var sourceIp)
            && pod.PodIps.Any(ip => ip.Equals(sourceIp.IsIPv4MappedToIPv6 ? sourceIp.MapToIPv4() : sourceIp));

        var connected = new List<ProcessState>();
        if (_apiClients.TryGetValue(pod.Uid, out var clients))
        {
            foreach (var p in clients)
            {
                if (p.ApiConnectedAt is not { } at || at > r.RequestReceived + _options.ClockSkew) continue;
                if (p.Exited is { } exit && exit < r.RequestReceived - _options.ClockSkew) continue;
                connected.Add(p);
            }
        }
        if (sourceIsPod && connected.Count > 0)
        {
            connected.Sort((x, y) => x.Key.StartTicks != y.Key.StartTicks ? x.Key.StartTicks.CompareTo(y.Key.StartTicks) : x.Key.Tgid.CompareTo(y.Key.Tgid));
            Emit(ref outputs, new TokenUseAttributed(r.AuditId, pod.Uid, pod.Namespace, pod.Name, r.User,
                connected.Count == 1 ? SessionConfidence.Probable : SessionConfidence.Ambiguous,
                connected.Select(p => p.Key).ToList()));
            return true;
        }
        // A wrong source address is conclusive at once; a missing connection may still be on its way.
        if (sourceIsPod && !final && _apiServer.Count > 0) return false;
        if (sourceIsPod && _apiServer.Count == 0) return true;
        string why = !sourceIsPod
            ? $"source address {source ?? "(none)"} is not an address of pod {pod.Namespace}/{pod.Name}"
            : $"no process of pod {pod.Namespace}/{pod.Name} had a connection to the API server";
        RaiseFinding(ref outputs, new CorrelationFinding
        {
            Id = FindingKinds.TokenUsedOutsidePod + ":" + r.AuditId,
            Kind = FindingKinds.TokenUsedOutsidePod,
            Severity = FindingSeverity.High,
            Summary = $"token bound to pod {pod.Namespace}/{pod.Name} used from outside it: {why}",
            Time = r.RequestReceived,
            Namespace = pod.Namespace,
            Pod = pod.Name,
            User = r.User,
            Evidence = new Dictionary<string, string>
            {
                ["auditId"] = r.AuditId,
                ["verb"] = r.Verb,
                ["resource"] = r.Resource ?? "",
                ["sourceIPs"] = string.Join(',', r.SourceIps),
                ["podIPs"] = string.Join(',', pod.PodIps),
                ["podUid"] = pod.Uid,
                ["credentialId"] = r.Token!.CredentialId ?? "",
                ["userAgent"] = r.UserAgent,
                ["connectedProcesses"] = string.Join(',', connected.Select(p => p.Key.ToString())),
            },
        });
        return true;
    }

    // ------------------------------------------------------------------ retention

    private void EvictProcesses(DateTimeOffset now)
    {
        while (_exited.TryPeek(out var p) && now - p.Exited!.Value >= _options.ExitedProcessRetention)
        {
            if (p.Root is { Finalized: false }) break;
            _exited.Dequeue();
            Forget(p);
        }
    }

    private bool EvictOneExited()
    {
        while (_exited.TryDequeue(out var p))
        {
            if (p.Evicted) continue;
            if (p.Root is { Finalized: false }) { _exited.Enqueue(p); return false; }
            Forget(p);
            return true;
        }
        return false;
    }

    private void Forget(ProcessState p)
    {
        if (p.Evicted) return;
        p.Evicted = true;
        _processes.Remove(p.Key);
        _processesExpired++;
        p.Parent?.Children?.Remove(p);
        // The session keeps its counts; only the live reference goes.
        p.Session?.Members.Remove(p);
        if (p.Children is { } children) foreach (var c in children) c.Parent = null;
        p.Children = null;
        p.Parent = null;
        if (p.Container is { } container)
        {
            container.Tracked--;
            container.Unclaimed?.Remove(p);
            if (container.Init == p) container.Init = null;
            if (container.Tracked <= 0 && container.Live <= 0) _containers.Remove(container.Id);
            if (_apiClients.TryGetValue(container.PodUid, out var set) && set.Remove(p) && set.Count == 0) _apiClients.Remove(container.PodUid);
        }
    }

    private void EvictSessions(DateTimeOffset now)
    {
        List<SessionState>? evict = null;
        foreach (var s in _sessions.Values)
        {
            if (now - s.LastActivity < _options.SessionRetention) continue;
            if (s.Audit is { Finalized: false }) continue;
            if (s.WindowEnd > now) continue;
            if (s.Members.Any(m => m.Exited is null && !m.Evicted)) continue;
            (evict ??= []).Add(s);
        }
        if (evict is null) return;
        foreach (var s in evict) { RemoveSession(s); _sessionsExpired++; }
    }

    private void EnsureSessionCapacity()
    {
        while (_sessions.Count > _options.MaxSessions)
        {
            SessionState? oldest = null;
            foreach (var s in _sessions.Values)
                if (s.Audit is not { Finalized: false } && (oldest is null || s.LastActivity < oldest.LastActivity)) oldest = s;
            if (oldest is null) return;
            RemoveSession(oldest);
            _sessionsDropped++;
        }
    }

    private void RemoveSession(SessionState s)
    {
        s.Evicted = true;
        _sessions.Remove(s.Id);
        if (s.Audit is { } a) _audits.Remove(a.AuditId);
        if (s.PodUid is { } uid && _streamSessions.TryGetValue(uid, out var list) && list.Remove(s) && list.Count == 0)
            _streamSessions.Remove(uid);
        if (s.ContainerId is { } cid && _containers.TryGetValue(cid, out var c) && c.Debug == s) c.Debug = null;
    }

    // ------------------------------------------------------------------ outputs

    private void EmitSession(SessionState s, bool attribution, ref List<CorrelationOutput>? outputs)
    {
        s.Emitted = true;
        Emit(ref outputs, new SessionChanged(Snapshot(s)));
        if (!attribution) return;
        var sequences = new List<ulong>();
        foreach (var p in s.Members)
            if (p.PendingSequences is { } seq) { sequences.AddRange(seq); p.PendingSequences = null; }
        sequences.Sort();
        Emit(ref outputs, new AttributionUpdated(s.Id, s.Confidence, KeysOf(s), sequences));
    }

    private static List<ProcessKey> KeysOf(SessionState s)
    {
        var keys = new List<ProcessKey>(s.Members.Count);
        foreach (var p in s.Members) keys.Add(p.Key);
        keys.Sort((x, y) => x.StartTicks != y.StartTicks ? x.StartTicks.CompareTo(y.StartTicks) : x.Tgid.CompareTo(y.Tgid));
        return keys;
    }

    private void RaiseFinding(ref List<CorrelationOutput>? outputs, CorrelationFinding finding)
    {
        _findings++;
        Emit(ref outputs, new FindingRaised(finding));
    }

    private static void Emit(ref List<CorrelationOutput>? outputs, CorrelationOutput output) => (outputs ??= []).Add(output);

    private static ExecSession Snapshot(SessionState s)
    {
        var a = s.Audit;
        var r = a?.First;
        return new ExecSession
        {
            Id = s.Id,
            Kind = s.Kind,
            Confidence = s.Confidence,
            Reason = s.Reason,
            AuditId = a?.AuditId,
            User = r?.User,
            Groups = r?.Groups ?? [],
            SourceIps = r?.SourceIps ?? [],
            UserAgent = r?.UserAgent,
            Verb = r?.Verb,
            Namespace = s.Namespace,
            Pod = s.Pod,
            PodUid = s.PodUid,
            Container = s.Container,
            Command = s.Command.Count > 0 ? s.Command : r?.Command ?? [],
            Tty = r?.Tty ?? false,
            Stdin = r?.Stdin ?? false,
            RequestReceived = a?.RequestReceived,
            ResponseStarted = a?.ResponseStarted,
            ResponseComplete = a?.ResponseComplete,
            ResponseCode = a?.ResponseCode,
            RootProcessKey = s.Root?.Key,
            RootPid = s.Root?.Pid,
            Workload = s.Workload,
            NodeStart = s.NodeStart,
            NodeEnd = s.NodeEnd,
            Alternatives = [.. s.Alternatives],
            ProcessCount = s.ProcessCount,
            ConnectCount = s.Connects + s.ForwardedConnections,
            FileCount = s.Files,
        };
    }

    private static DateTimeOffset Max(DateTimeOffset a, DateTimeOffset b) => a > b ? a : b;
}
