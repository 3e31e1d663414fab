using System.Collections.Concurrent;

namespace Ebpf.Agent.Health;

/// <summary>
/// What /readyz reports: each subsystem registers a component and marks it ready (or not, with a reason).
/// The agent is ready when every registered component is.
/// </summary>
public sealed class Readiness
{
    private readonly ConcurrentDictionary<string, (bool Ready, string Detail)> _components = new(StringComparer.Ordinal);

    public void Register(string component, string detail = "starting") => _components.TryAdd(component, (false, detail));

    public void Set(string component, bool ready, string detail) => _components[component] = (ready, detail);

    public bool IsReady => !_components.IsEmpty && _components.Values.All(c => c.Ready);

    public IReadOnlyList<(string Component, bool Ready, string Detail)> Snapshot() =>
        _components.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => (kv.Key, kv.Value.Ready, kv.Value.Detail)).ToList();
}
