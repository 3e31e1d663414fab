using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using System.Text.Json;
using Ebpf.Core.Identity;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ebpf.Kubernetes.Api;

/// <summary>Options for <see cref="PodWatcher"/>.</summary>
public sealed class PodWatcherOptions
{
    /// <summary>This node's name (spec.nodeName of its pods). Required unless standalone.</summary>
    public string NodeName { get; set; } = "";

    /// <summary>Pods per list page (limit/continue). Defaults to 500 (client-go's pager default).</summary>
    public int PageSize { get; set; } = 500;

    /// <summary>Server-side watch timeout (timeoutSeconds); the watch is reopened after it. Defaults to 5 minutes.</summary>
    public TimeSpan WatchTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Longest silence on an open watch before the connection is taken for dead (a NAT or proxy dropped it without a
    /// reset) and reopened. The server ends each watch after <see cref="WatchTimeout"/> and sends bookmarks about once
    /// a minute, so this only fires on broken connections. Defaults to 6 minutes.
    /// </summary>
    public TimeSpan WatchIdleTimeout { get; set; } = TimeSpan.FromMinutes(6);

    /// <summary>Longest watch event line accepted; longer ones are skipped and counted. Defaults to 4 MiB.</summary>
    public int MaxWatchLineBytes { get; set; } = 4 << 20;

    /// <summary>Most pods cached; beyond it new pods are skipped and counted (a node runs ~110). Defaults to 10 000.</summary>
    public int MaxPods { get; set; } = 10_000;

    /// <summary>First retry delay after an error. Defaults to 500 ms.</summary>
    public TimeSpan InitialBackoff { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Longest retry delay. Defaults to 30 s.</summary>
    public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromSeconds(30);

    public void Validate(bool standalone)
    {
        if (!standalone && string.IsNullOrWhiteSpace(NodeName)) throw new ArgumentException("PodWatcherOptions.NodeName is required to watch this node's pods");
        if (PageSize < 1) throw new ArgumentOutOfRangeException(nameof(PageSize), "must be at least 1");
        if (WatchTimeout < TimeSpan.FromSeconds(1)) throw new ArgumentOutOfRangeException(nameof(WatchTimeout), "must be at least 1 s");
        if (WatchIdleTimeout <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(WatchIdleTimeout), "must be positive");
        if (MaxWatchLineBytes < 1024) throw new ArgumentOutOfRangeException(nameof(MaxWatchLineBytes), "must be at least 1 KiB");
        if (MaxPods < 1) throw new ArgumentOutOfRangeException(nameof(MaxPods), "must be at least 1");
        if (InitialBackoff <= TimeSpan.Zero || MaxBackoff < InitialBackoff) throw new ArgumentOutOfRangeException(nameof(InitialBackoff), "need 0 < InitialBackoff <= MaxBackoff");
    }
}

/// <summary>
/// This node's pods, kept current like a client-go informer: list (paged) with
/// <c>fieldSelector=spec.nodeName=&lt;node&gt;</c>, then watch from the list's resourceVersion with bookmarks;
/// a watch that ends is reopened from the last resourceVersion seen, 410 Gone (HTTP or an ERROR event with a
/// Status) starts over with a list, other failures back off exponentially with jitter. Without an API server
/// (standalone) it is empty, "synced" at once and never blocks. Malformed or oversized objects are logged,
/// counted and skipped.
/// </summary>
public sealed partial class PodWatcher : IPodMetadataSource, IAsyncDisposable
{
    private readonly KubeApiClient? _client;
    private readonly PodWatcherOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, PodMetadata> _byUid = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<(string Namespace, string Name), string> _uidByName = new();
    private readonly ConcurrentDictionary<string, string> _uidByContainerId = new(StringComparer.Ordinal);
    private readonly TaskCompletionSource _synced = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _stop = new();
    private Task? _run;
    private volatile string _state;
    private long _lists, _watches, _skippedObjects, _oversizedLines, _errors;

    /// <param name="client">Null: standalone mode, no API server.</param>
    public PodWatcher(KubeApiClient? client, PodWatcherOptions options, TimeProvider? time = null, ILogger<PodWatcher>? logger = null)
    {
        _client = client;
        _options = options;
        _options.Validate(standalone: client is null);
        _time = time ?? TimeProvider.System;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _state = client is null ? "standalone" : "syncing";
        if (client is null) _synced.TrySetResult();
    }

    public event Action<string>? PodChanged;

    /// <summary>Completes once the first full list is in the cache (at once when standalone).</summary>
    public Task Synced => _synced.Task;
    public bool IsSynced => _synced.Task.IsCompleted;

    /// <summary>syncing | synced | standalone | error: &lt;message&gt;</summary>
    public string State => _state;

    public int Count => _byUid.Count;
    /// <summary>
    /// Full lists applied to the cache: the first sync plus every re-list (after 410 Gone). Counted once the list is
    /// in the cache, so a reader that sees the count grow sees the list's pods; failed lists count in <see cref="Errors"/>.
    /// </summary>
    public long Lists => Interlocked.Read(ref _lists);
    public long Watches => Interlocked.Read(ref _watches);
    public long SkippedObjects => Interlocked.Read(ref _skippedObjects);
    public long OversizedLines => Interlocked.Read(ref _oversizedLines);
    /// <summary>Failed list/watch attempts (each one logged and retried with backoff).</summary>
    public long Errors => Interlocked.Read(ref _errors);
    /// <summary>The resourceVersion the next watch starts from.</summary>
    public string? ResourceVersion { get; private set; }

    /// <summary>Starts the list/watch loop in the background (no-op when standalone).</summary>
    public void Start()
    {
        if (_client is null || _run is not null) return;
        _run = Task.Run(() => RunAsync(_stop.Token));
    }

    /// <summary>
    /// Standalone with known pods: loads a pod list as `kubectl get pods -o json` prints it (kind List or PodList),
    /// keeping the pods on this node. For nodes without API access (air-gapped forensics, a demo on one machine).
    /// Returns how many pods were loaded; throws <see cref="InvalidDataException"/> for a file that is not a pod list.
    /// </summary>
    public int LoadSnapshot(string path)
    {
        if (_client is not null)
            throw new InvalidOperationException("a pod snapshot is for standalone mode; this watcher follows an API server");
        var info = new FileInfo(path);
        if (!info.Exists)
            throw new InvalidDataException($"pod snapshot '{path}' does not exist");
        if (info.Length > 64L * 1024 * 1024)
            throw new InvalidDataException($"pod snapshot '{path}' is {info.Length} bytes; the limit is 64 MiB");
        RawPodList? list;
        try
        {
            using var stream = info.OpenRead();
            list = JsonSerializer.Deserialize(stream, KubeJsonContext.Default.RawPodList);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"pod snapshot '{path}' is not JSON: {e.Message}", e);
        }
        if (list?.Items is null || list.Kind is not ("List" or "PodList"))
            throw new InvalidDataException($"pod snapshot '{path}' is not a pod list (expected kind List or PodList with items, as `kubectl get pods -o json` prints)");
        int loaded = 0;
        foreach (var item in list.Items)
        {
            if (DecodePod(item) is not { } pod || (pod.NodeName.Length > 0 && pod.NodeName != _options.NodeName) || loaded >= _options.MaxPods)
                continue;
            Upsert(pod);
            loaded++;
        }
        _state = $"standalone (pod snapshot: {loaded} pods)";
        return loaded;
    }

    public IReadOnlyCollection<PodMetadata> Pods => _byUid.Values.ToList();

    public bool TryGetPod(string podUid, [NotNullWhen(true)] out PodMetadata? pod) => _byUid.TryGetValue(podUid, out pod);

    public bool TryGetPod(string @namespace, string name, [NotNullWhen(true)] out PodMetadata? pod)
    {
        pod = null;
        return _uidByName.TryGetValue((@namespace, name), out var uid) && _byUid.TryGetValue(uid, out pod);
    }

    public bool TryGetContainer(string containerId, [NotNullWhen(true)] out PodMetadata? pod, [NotNullWhen(true)] out PodContainer? container)
    {
        container = null;
        pod = null;
        if (!_uidByContainerId.TryGetValue(containerId, out var uid) || !_byUid.TryGetValue(uid, out pod)) return false;
        container = pod.FindContainerById(containerId);
        return container is not null;
    }

    private async Task RunAsync(CancellationToken cancellationToken)
    {
        int failures = 0;
        string? resourceVersion = null;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                if (resourceVersion is null)
                {
                    resourceVersion = await ListAsync(cancellationToken).ConfigureAwait(false);
                    ResourceVersion = resourceVersion;
                    _state = "synced";
                    _synced.TrySetResult();
                }
                bool anyEvent = false;
                resourceVersion = await WatchAsync(resourceVersion, () => { failures = 0; anyEvent = true; }, cancellationToken).ConfigureAwait(false);
                ResourceVersion = resourceVersion;
                // The server ended the watch (timeout) or the connection dropped: reopen from where we are. A watch
                // that ends without a single line (not even a bookmark) is a misbehaving server or proxy: back off
                // rather than reconnect in a tight loop.
                if (!anyEvent)
                {
                    failures++;
                    await Task.Delay(Backoff(failures), _time, cancellationToken).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                break;
            }
            catch (KubeApiException e) when (e.IsGone)
            {
                LogGone(_logger, resourceVersion ?? "");
                resourceVersion = null;
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested)
            {
                // Any failure, not only the expected transport/API ones: whatever a hostile or broken response (or a
                // PodChanged handler) throws must not end the loop silently, which would freeze the cache for good.
                Interlocked.Increment(ref _errors);
                _state = "error: " + e.Message;
                failures++;
                var delay = Backoff(failures);
                LogRetry(_logger, e.GetType().Name, e.Message, delay.TotalMilliseconds);
                try { await Task.Delay(delay, _time, cancellationToken).ConfigureAwait(false); }
                catch (OperationCanceledException) { break; }
            }
        }
    }

    /// <summary>Exponential backoff with full jitter in [d/2, d] (so that a fleet of agents does not retry in step).</summary>
    private TimeSpan Backoff(int failures)
    {
        double exponential = _options.InitialBackoff.TotalMilliseconds * Math.Pow(2, Math.Min(failures - 1, 20));
        double capped = Math.Min(exponential, _options.MaxBackoff.TotalMilliseconds);
        return TimeSpan.FromMilliseconds(capped * (0.5 + Random.Shared.NextDouble() * 0.5));
    }

    private async Task<string> ListAsync(CancellationToken cancellationToken)
    {
        string selector = "spec.nodeName=" + _options.NodeName;
        var seen = new Dictionary<string, PodMetadata>(StringComparer.Ordinal);
        string? continueToken = null;
        string resourceVersion;
        do
        {
            var page = await _client!.ListPodsAsync(selector, _options.PageSize, continueToken, cancellationToken).ConfigureAwait(false);
            foreach (var item in page.Items)
                if (DecodePod(item) is { } pod && seen.Count < _options.MaxPods) seen[pod.Uid] = pod;
            continueToken = page.Continue;
            resourceVersion = page.ResourceVersion;
        } while (continueToken is not null);

        foreach (var uid in _byUid.Keys)
            if (!seen.ContainsKey(uid)) Remove(uid);
        foreach (var pod in seen.Values) Upsert(pod);
        Interlocked.Increment(ref _lists);
        return resourceVersion;
    }

    private async Task<string> WatchAsync(string resourceVersion, Action onEvent, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _watches);
        await using var stream = await _client!.WatchPodsAsync("spec.nodeName=" + _options.NodeName, resourceVersion,
            (int)_options.WatchTimeout.TotalSeconds, cancellationToken).ConfigureAwait(false);
        var reader = new WatchLineReader(stream, _options.MaxWatchLineBytes);
        long oversizedBefore = 0;
        using var idle = new CancellationTokenSource(_options.WatchIdleTimeout, _time);
        using var readCancellation = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, idle.Token);
        try
        {
            while (await reader.ReadLineAsync(readCancellation.Token).ConfigureAwait(false) is { } line)
            {
                idle.CancelAfter(_options.WatchIdleTimeout);
                if (reader.OversizedLines != oversizedBefore)
                {
                    Interlocked.Add(ref _oversizedLines, reader.OversizedLines - oversizedBefore);
                    LogOversized(_logger, _options.MaxWatchLineBytes);
                    oversizedBefore = reader.OversizedLines;
                }
                resourceVersion = HandleWatchLine(line, resourceVersion);
                ResourceVersion = resourceVersion;
                _state = "synced";
                onEvent();
            }
        }
        catch (IOException) when (!cancellationToken.IsCancellationRequested)
        {
            // Connection cut mid-stream: resume from the last resourceVersion seen.
        }
        catch (HttpRequestException) when (!cancellationToken.IsCancellationRequested)
        {
        }
        catch (OperationCanceledException) when (idle.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            LogIdle(_logger, _options.WatchIdleTimeout.TotalSeconds);
        }
        if (reader.OversizedLines != oversizedBefore) Interlocked.Add(ref _oversizedLines, reader.OversizedLines - oversizedBefore);
        return resourceVersion;
    }

    private string HandleWatchLine(ReadOnlyMemory<byte> line, string resourceVersion)
    {
        RawWatchEvent? watchEvent;
        try { watchEvent = JsonSerializer.Deserialize(line.Span, KubeJsonContext.Default.RawWatchEvent); }
        catch (JsonException e)
        {
            Skip("watch event is not valid JSON: " + e.Message);
            return resourceVersion;
        }
        if (watchEvent is null || watchEvent.Object.ValueKind != JsonValueKind.Object)
        {
            Skip("watch event without an object");
            return resourceVersion;
        }
        switch (watchEvent.Type)
        {
            case "ADDED" or "MODIFIED":
                if (DecodePod(watchEvent.Object) is { } pod)
                {
                    if (pod.NodeName.Length > 0 && pod.NodeName != _options.NodeName) Remove(pod.Uid);
                    else if (_byUid.ContainsKey(pod.Uid) || _byUid.Count < _options.MaxPods) Upsert(pod);
                    else Skip($"pod cache full ({_options.MaxPods})");
                    return pod.ResourceVersion.Length > 0 ? pod.ResourceVersion : resourceVersion;
                }
                return resourceVersion;
            case "DELETED":
                if (DecodePod(watchEvent.Object) is { } deleted)
                {
                    Remove(deleted.Uid);
                    return deleted.ResourceVersion.Length > 0 ? deleted.ResourceVersion : resourceVersion;
                }
                return resourceVersion;
            case "BOOKMARK":
                // A bookmark carries only metadata.resourceVersion (kind and apiVersion of the watched type).
                if (watchEvent.Object.TryGetProperty("metadata", out var metadata) && metadata.ValueKind == JsonValueKind.Object
                    && metadata.TryGetProperty("resourceVersion", out var rv) && rv.ValueKind == JsonValueKind.String && rv.GetString() is { Length: > 0 } bookmark)
                    return bookmark;
                Skip("bookmark without metadata.resourceVersion");
                return resourceVersion;
            case "ERROR":
                Status? status = null;
                try { status = watchEvent.Object.Deserialize(KubeJsonContext.Default.Status); }
                catch (JsonException) { /* reported below without details */ }
                throw new KubeApiException(System.Net.HttpStatusCode.OK, status,
                    $"watch error: {status?.Code} {status?.Reason} {status?.Message}".TrimEnd());
            default:
                Skip($"unknown watch event type '{watchEvent.Type}'");
                return resourceVersion;
        }
    }

    private PodMetadata? DecodePod(JsonElement element)
    {
        try
        {
            var pod = element.Deserialize(KubeJsonContext.Default.Pod);
            var metadata = pod is null ? null : PodMetadataMapper.ToMetadata(pod);
            if (metadata is null) Skip("pod without metadata uid/name/namespace");
            return metadata;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            Skip("pod does not match the Pod schema: " + e.Message);
            return null;
        }
    }

    private void Skip(string reason)
    {
        Interlocked.Increment(ref _skippedObjects);
        LogSkipped(_logger, reason);
    }

    private void Upsert(PodMetadata pod)
    {
        _byUid.TryGetValue(pod.Uid, out var previous);
        _byUid[pod.Uid] = pod;
        _uidByName[(pod.Namespace, pod.Name)] = pod.Uid;
        if (previous is not null)
            foreach (var c in previous.Containers)
                if (c.ContainerId.Length > 0 && pod.FindContainerById(c.ContainerId) is null) _uidByContainerId.TryRemove(c.ContainerId, out _);
        foreach (var c in pod.Containers)
            if (c.ContainerId.Length > 0) _uidByContainerId[c.ContainerId] = pod.Uid;
        if (previous is null || previous.ResourceVersion != pod.ResourceVersion || previous.ResourceVersion.Length == 0) PodChanged?.Invoke(pod.Uid);
    }

    private void Remove(string uid)
    {
        if (!_byUid.TryRemove(uid, out var pod)) return;
        _uidByName.TryRemove(new KeyValuePair<(string, string), string>((pod.Namespace, pod.Name), uid));
        foreach (var c in pod.Containers)
            if (c.ContainerId.Length > 0) _uidByContainerId.TryRemove(new KeyValuePair<string, string>(c.ContainerId, uid));
        PodChanged?.Invoke(uid);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        if (_run is not null)
        {
            try { await _run.ConfigureAwait(false); }
            catch (OperationCanceledException) { }
        }
        _stop.Dispose();
    }

    [LoggerMessage(EventId = 2300, Level = LogLevel.Information, Message = "pod watch from resourceVersion {ResourceVersion} is gone (410): listing again")]
    private static partial void LogGone(ILogger logger, string resourceVersion);

    [LoggerMessage(EventId = 2301, Level = LogLevel.Warning, Message = "pod list/watch failed ({ErrorType}): {Error}; retrying in {DelayMs:F0} ms")]
    private static partial void LogRetry(ILogger logger, string errorType, string error, double delayMs);

    [LoggerMessage(EventId = 2302, Level = LogLevel.Warning, Message = "skipped a pod object: {Reason}")]
    private static partial void LogSkipped(ILogger logger, string reason);

    [LoggerMessage(EventId = 2304, Level = LogLevel.Information, Message = "pod watch silent for {Seconds:F0} s: reconnecting")]
    private static partial void LogIdle(ILogger logger, double seconds);

    [LoggerMessage(EventId = 2303, Level = LogLevel.Warning, Message = "skipped a watch event longer than {MaxBytes} bytes")]
    private static partial void LogOversized(ILogger logger, int maxBytes);
}
