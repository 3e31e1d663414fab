using System.Collections.Concurrent;
using System.Threading.Channels;
using Ebpf.Events;

namespace Ebpf.Interop.Tests;

/// <summary>
/// One <see cref="KernelCapture"/> shared by the kernel tests (loading and attaching once keeps the suite short).
/// A pump reads every event and hands it to the subscriptions whose filter matches; tests subscribe to their own
/// container's cgroup id because the machine is shared.
/// </summary>
public sealed class CaptureFixture : IAsyncLifetime
{
    private readonly ConcurrentDictionary<EventSubscription, byte> _subscriptions = new();
    private Task? _pump;

    public KernelCapture Capture { get; private set; } = null!;

    public Task InitializeAsync()
    {
        if (KernelEnvironment.UnavailableReason() is not null && !string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
            return Task.CompletedTask;
        Capture = KernelCapture.Start(new KernelCaptureOptions());
        _pump = Task.Run(PumpAsync);
        return Task.CompletedTask;
    }

    /// <summary>Events matching <paramref name="filter"/> from now on.</summary>
    public EventSubscription Subscribe(Func<NodeEvent, bool> filter)
    {
        var sub = new EventSubscription(filter, s => _subscriptions.TryRemove(s, out _));
        _subscriptions[sub] = 0;
        return sub;
    }

    /// <summary>Events of one cgroup (a test container) from now on.</summary>
    public EventSubscription SubscribeCgroup(ulong cgroupId) => Subscribe(e => e.CgroupId == cgroupId);

    private async Task PumpAsync()
    {
        await foreach (var ev in Capture.Events.ReadAllAsync())
        {
            foreach (var sub in _subscriptions.Keys)
            {
                if (sub.Filter(ev))
                    sub.Add(ev);
            }
        }
    }

    public async Task DisposeAsync()
    {
        if (Capture is null)
            return;
        Capture.Dispose();
        if (_pump is not null)
            await _pump;
    }
}

/// <summary>The events a test asked for, in arrival order.</summary>
public sealed class EventSubscription : IDisposable
{
    private readonly Channel<NodeEvent> _channel = Channel.CreateUnbounded<NodeEvent>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly Action<EventSubscription> _unsubscribe;
    private readonly List<NodeEvent> _seen = [];

    internal EventSubscription(Func<NodeEvent, bool> filter, Action<EventSubscription> unsubscribe)
    {
        Filter = filter;
        _unsubscribe = unsubscribe;
    }

    internal Func<NodeEvent, bool> Filter { get; }

    internal void Add(NodeEvent ev) => _channel.Writer.TryWrite(ev);

    /// <summary>Every event received so far (also those consumed by a wait).</summary>
    public IReadOnlyList<NodeEvent> Seen
    {
        get
        {
            while (_channel.Reader.TryRead(out var ev))
                _seen.Add(ev);
            return _seen;
        }
    }

    /// <summary>Waits until an event matching <paramref name="predicate"/> arrives; fails the test with what was seen on timeout.</summary>
    public async Task<T> WaitForAsync<T>(Func<T, bool> predicate, TimeSpan? timeout = null) where T : NodeEvent
    {
        foreach (var old in Seen)
        {
            if (old is T match && predicate(match))
                return match;
        }
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        try
        {
            while (true)
            {
                var ev = await _channel.Reader.ReadAsync(cts.Token);
                _seen.Add(ev);
                if (ev is T match && predicate(match))
                    return match;
            }
        }
        catch (OperationCanceledException)
        {
            throw new Xunit.Sdk.XunitException($"No matching {typeof(T).Name} within the timeout. Seen {_seen.Count} events: "
                + string.Join("; ", _seen.TakeLast(20).Select(Describe)));
        }
    }

    /// <summary>Waits until <paramref name="done"/> holds over everything seen, or the timeout passes; returns what was seen.</summary>
    public async Task<IReadOnlyList<NodeEvent>> CollectUntilAsync(Func<IReadOnlyList<NodeEvent>, bool> done, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            while (!done(Seen))
                await _channel.Reader.WaitToReadAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
        }
        return Seen;
    }

    public static string Describe(NodeEvent e) => e switch
    {
        ExecEvent x => $"exec {x.Tgid} {string.Join(' ', x.Argv)}",
        ForkEvent f => $"fork {f.ParentTgid}->{f.ChildTgid}",
        ExitEvent x => $"exit {x.Tgid} status {x.WaitStatus}",
        ConnectEvent c => $"connect {c.Family} {c.Address}:{c.Port}{c.UnixPath} = {c.Result}",
        FileOpenEvent o => $"open {o.Path} = {o.Result}",
        CgroupEvent c => $"{c.Kind} {c.Path}",
        _ => e.Kind.ToString(),
    };

    public void Dispose() => _unsubscribe(this);
}

[CollectionDefinition(Name)]
public sealed class KernelCollection : ICollectionFixture<CaptureFixture>
{
    public const string Name = "kernel capture";
}
