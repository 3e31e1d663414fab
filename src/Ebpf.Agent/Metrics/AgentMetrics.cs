using System.Diagnostics.Metrics;
using Ebpf.Core.Correlation;
using Ebpf.Events;

namespace Ebpf.Agent.Metrics;

/// <summary>
/// The agent's instruments (meter "Ebpf.Agent"), rendered at /metrics. Counters the pipeline increments live
/// here; subsystems that keep their own counters (capture, store, webhook, hub) are exported through
/// observable instruments registered with <see cref="Observe"/>, read at scrape time.
/// </summary>
public sealed class AgentMetrics : IDisposable
{
    public const string MeterName = "Ebpf.Agent";
    private readonly Meter _meter = new(MeterName);
    private readonly Counter<long> _nodeEvents;
    private readonly Counter<long> _findings;
    private readonly Counter<long> _storeDropped;
    private volatile CorrelationCounters? _correlation;

    public AgentMetrics()
    {
        _nodeEvents = _meter.CreateCounter<long>("ebpf.pipeline.node_events", description: "Kernel events processed by the pipeline, by kind");
        _findings = _meter.CreateCounter<long>("ebpf.findings", description: "Findings raised, by kind");
        _storeDropped = _meter.CreateCounter<long>("ebpf.store.rejected", description: "Records the store could not queue (write queue full): neither stored nor streamed");
        _meter.CreateObservableGauge("ebpf.sessions", ObserveSessions, description: "Sessions held by the correlator, by confidence");
        _meter.CreateObservableGauge("ebpf.correlation.pending", ObservePending, description: "Session roots and audit requests waiting for their other half");
    }

    public void NodeEventReceived(EventKind kind) => _nodeEvents.Add(1, new KeyValuePair<string, object?>("kind", KindName(kind)));

    public void FindingRaised(CorrelationFinding finding) => _findings.Add(1, new KeyValuePair<string, object?>("kind", finding.Kind));

    public void StoreDropped() => _storeDropped.Add(1);

    /// <summary>Called by the pipeline thread after each tick: the correlator itself is not thread-safe.</summary>
    public void CorrelationSnapshot(CorrelationCounters counters) => _correlation = counters;

    /// <summary>Registers a gauge or counter whose values a subsystem reports when scraped.</summary>
    public void Observe(string name, string description, bool isCounter, Func<IEnumerable<Measurement<long>>> observe)
    {
        if (isCounter)
            _meter.CreateObservableCounter(name, observe, description: description);
        else
            _meter.CreateObservableGauge(name, observe, description: description);
    }

    public void ObserveDouble(string name, string description, Func<double> observe) =>
        _meter.CreateObservableGauge(name, observe, description: description);

    public static KeyValuePair<string, object?> Tag(string key, object? value) => new(key, value);

    public static string KindName(EventKind kind) => kind switch
    {
        EventKind.Exec => "exec",
        EventKind.Fork => "fork",
        EventKind.Exit => "exit",
        EventKind.Connect => "connect",
        EventKind.FileOpen => "file_open",
        EventKind.CgroupMkdir => "cgroup_mkdir",
        EventKind.CgroupRmdir => "cgroup_rmdir",
        _ => "unknown",
    };

    private IEnumerable<Measurement<long>> ObserveSessions()
    {
        var c = _correlation;
        if (c is null)
            yield break;
        yield return new Measurement<long>(c.SessionsCertain, Tag("confidence", "certain"));
        yield return new Measurement<long>(c.SessionsProbable, Tag("confidence", "probable"));
        yield return new Measurement<long>(c.SessionsAmbiguous, Tag("confidence", "ambiguous"));
        yield return new Measurement<long>(c.SessionsUnattributed, Tag("confidence", "unattributed"));
    }

    private IEnumerable<Measurement<long>> ObservePending()
    {
        var c = _correlation;
        if (c is null)
            yield break;
        yield return new Measurement<long>(c.PendingRoots, Tag("side", "node"));
        yield return new Measurement<long>(c.PendingAudits, Tag("side", "audit"));
    }

    public void Dispose() => _meter.Dispose();
}
