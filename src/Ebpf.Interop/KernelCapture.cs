using System.Text;
using System.Threading.Channels;
using Ebpf.Events;
using Microsoft.Extensions.Logging;

namespace Ebpf.Interop;

/// <summary>
/// The kernel side of the agent: loads the embedded BPF object, configures it, fills the container roots,
/// attaches every program and reads the ring buffer into <see cref="Events"/>.
/// Names of maps and globals are those of docs/abi.md (bpf/lib/maps.h).
/// </summary>
public sealed class KernelCapture : IDisposable
{
    /// <summary>Map and global names of the BPF object (docs/abi.md).</summary>
    public static class AbiNames
    {
        public const string EventsMap = "events";
        public const string DropCountersMap = "drop_counters";
        public const string ContainerRootsMap = "container_roots";
        public const string FilterMode = "filter_mode";
        public const string WakeupThresholdBytes = "wakeup_threshold_bytes";
        public const string IgnoreTgid = "ignore_tgid";
        public const string IgnoreFailedOpens = "ignore_failed_opens";
        public const string FilePrefixCount = "file_prefix_count";
        public const string FilePrefixes = "file_prefixes";
    }

    private const int FilePrefixCap = KernelCaptureOptions.MaxFilePathPrefixBytes + 1;

    private readonly KernelCaptureOptions _options;
    private readonly ILogger? _logger;
    private readonly BpfObject _object;
    private readonly BootClock _clock;
    private readonly BpfMap _dropCounters;
    private readonly BpfMap _containerRoots;
    private readonly RingBufferReader _reader;
    private readonly Lock _rootsGate = new();
    private readonly Dictionary<ulong, string> _roots = [];
    private readonly Channel<(ulong Id, string Path)> _newRoots =
        Channel.CreateBounded<(ulong Id, string Path)>(new BoundedChannelOptions(64) { SingleReader = true, SingleWriter = true });
    private readonly Task _rootTracker;
    private int _disposed;

    private KernelCapture(KernelCaptureOptions options, ILogger? logger, BpfObject obj, BootClock clock)
    {
        _options = options;
        _logger = logger;
        _object = obj;
        _clock = clock;
        _dropCounters = obj.GetMap(AbiNames.DropCountersMap);
        _containerRoots = obj.GetMap(AbiNames.ContainerRootsMap);
        var observer = options.TrackNewKubernetesRoots ? ObserveCgroupMkdir : (Action<NodeEvent>?)null;
        _reader = new RingBufferReader(obj, obj.GetMap(AbiNames.EventsMap), clock, options.ChannelCapacity, options.PollTimeoutMs, logger, observer);
        _rootTracker = Task.Run(TrackNewRootsAsync);
    }

    /// <summary>
    /// Validates the options, runs the preflight, loads and configures the embedded object, attaches all programs
    /// and starts reading. Throws <see cref="ArgumentException"/> for bad options,
    /// <see cref="InvalidOperationException"/> when preflight fails and <see cref="BpfException"/> for libbpf failures.
    /// </summary>
    public static KernelCapture Start(KernelCaptureOptions options, ILogger? logger = null, TimeProvider? timeProvider = null)
    {
        options.Validate();
        Native.LibbpfLogForwarder.Install(logger);
        if (options.RunPreflight)
            KernelPreflight.ThrowIfNotReady();

        var obj = BpfObject.OpenEmbedded();
        BootClock? clock = null;
        KernelCapture? capture = null;
        try
        {
            Configure(obj, options);
            obj.Load();
            clock = new BootClock(timeProvider, resampleInterval: options.BootClockResampleInterval, logger: logger);
            capture = new KernelCapture(options, logger, obj, clock);
            foreach (var root in InitialRoots(options))
                capture.AddContainerRoot(root.CgroupId, root.Path);
            // Reader first, then attach: no record produced by a fresh attachment waits for a reader that is not there.
            capture._reader.Start();
            obj.AttachAll();
            if (logger is not null)
                InteropLog.Started(logger, obj.AttachedPrograms.Count, options.RingBufferBytes, options.FilterMode, capture.ContainerRoots.Count);
            return capture;
        }
        catch
        {
            if (capture is not null)
                capture.Dispose();
            else
            {
                clock?.Dispose();
                obj.Dispose();
            }
            throw;
        }
    }

    /// <summary>Decoded events, in ring-buffer order. Completes when the capture is disposed.</summary>
    public ChannelReader<NodeEvent> Events => _reader.Events;

    /// <summary>Programs attached, with the SEC() they were attached as.</summary>
    public IReadOnlyList<BpfProgramInfo> AttachedPrograms => _object.AttachedPrograms;

    /// <summary>The boot-time → wall-clock converter used for <see cref="NodeEvent.Time"/>.</summary>
    public BootClock Clock => _clock;

    /// <summary>The container root cgroups currently in the kernel filter (id → path, "" when given by id).</summary>
    public IReadOnlyDictionary<ulong, string> ContainerRoots
    {
        get
        {
            lock (_rootsGate)
                return new Dictionary<ulong, string>(_roots);
        }
    }

    /// <summary>Adds a container root cgroup to the kernel filter; processes under it are captured from now on.</summary>
    public void AddContainerRoot(ulong cgroupId, string path = "")
    {
        lock (_rootsGate)
        {
            if (_roots.ContainsKey(cgroupId))
                return;
            _containerRoots.Update(cgroupId, (byte)1);
            _roots[cgroupId] = path;
        }
        if (_logger is not null)
            InteropLog.RootAdded(_logger, cgroupId, path);
    }

    /// <summary>Removes a container root from the kernel filter; false when it was not there.</summary>
    public bool RemoveContainerRoot(ulong cgroupId)
    {
        lock (_rootsGate)
        {
            _roots.Remove(cgroupId);
            return _containerRoots.Delete(cgroupId);
        }
    }

    /// <summary>The counters at this instant: kernel drops (summed over CPUs), hand-off drops, decode errors, events.</summary>
    public CaptureCounters Snapshot()
    {
        var kernel = new Dictionary<EventKind, ulong>();
        for (uint kind = 0; kind < _dropCounters.MaxEntries; kind++)
        {
            var n = _dropCounters.LookupPerCpuSum(kind)[0];
            if (n != 0)
                kernel[(EventKind)kind] = n;
        }
        var events = new Dictionary<EventKind, ulong>();
        var handoff = new Dictionary<EventKind, ulong>();
        var decode = new Dictionary<string, ulong>();
        _reader.AddCounts(events, handoff, decode);
        return new CaptureCounters(kernel, handoff, decode, events);
    }

    private static void Configure(BpfObject obj, KernelCaptureOptions options)
    {
        obj.SetMaxEntries(AbiNames.EventsMap, (uint)options.RingBufferBytes);
        obj.SetGlobal(AbiNames.FilterMode, (uint)options.FilterMode);
        obj.SetGlobal(AbiNames.WakeupThresholdBytes, (ulong)options.WakeupThresholdBytes);
        obj.SetGlobal(AbiNames.IgnoreTgid, options.IgnoreOwnProcess ? (uint)Environment.ProcessId : 0u);
        obj.SetGlobal(AbiNames.IgnoreFailedOpens, options.CaptureFailedOpens ? 0u : 1u);
        var prefixes = new byte[KernelCaptureOptions.MaxFilePathPrefixes * FilePrefixCap];
        for (var i = 0; i < options.FilePathPrefixes.Count; i++)
            Encoding.UTF8.GetBytes(options.FilePathPrefixes[i], prefixes.AsSpan(i * FilePrefixCap, FilePrefixCap - 1));
        obj.SetGlobal(AbiNames.FilePrefixes, prefixes);
        obj.SetGlobal(AbiNames.FilePrefixCount, (uint)options.FilePathPrefixes.Count);
    }

    private static IEnumerable<ContainerRootCgroup> InitialRoots(KernelCaptureOptions options)
    {
        if (options.DiscoverKubernetesRoots)
        {
            foreach (var root in CgroupV2.FindKubernetesRoots(rootNames: options.KubernetesRootNames))
                yield return root;
        }
        foreach (var id in options.ContainerRootCgroupIds)
            yield return new ContainerRootCgroup(id, "");
    }

    // Runs on the reader thread: only a TryWrite to an unbounded channel, the map update happens elsewhere.
    private void ObserveCgroupMkdir(NodeEvent ev)
    {
        if (ev is CgroupEvent { Kind: EventKind.CgroupMkdir } mkdir && CgroupV2.IsKubernetesRootPath(mkdir.Path, _options.KubernetesRootNames))
            _newRoots.Writer.TryWrite((mkdir.TargetCgroupId, mkdir.Path));
    }

    private async Task TrackNewRootsAsync()
    {
        await foreach (var (id, path) in _newRoots.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            try
            {
                AddContainerRoot(id, path);
            }
            catch (Exception ex) when (ex is BpfException or ObjectDisposedException)
            {
                if (_logger is not null)
                    InteropLog.RootAddFailed(_logger, id, ex.Message);
            }
        }
    }

    /// <summary>Stops the reader (joins its thread, frees the ring buffer), destroys the links and closes the object.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _reader.Dispose();
        _newRoots.Writer.TryComplete();
        _rootTracker.Wait(TimeSpan.FromSeconds(5));
        _clock.Dispose();
        _object.Dispose();
        if (_logger is not null)
            InteropLog.Stopped(_logger);
    }
}
