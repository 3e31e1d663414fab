using System.Collections.Concurrent;

namespace Ebpf.Core.Identity;

/// <summary>
/// cgroup id → <see cref="WorkloadIdentity"/>: the cgroup path (from <see cref="ICgroupPathResolver"/>) parsed by
/// <see cref="KubeletCgroupPath"/>, enriched with names from an <see cref="IPodMetadataSource"/> when there is one.
/// Results are cached per cgroup id; a cache hit is one dictionary lookup and allocates nothing. When pod
/// metadata arrives or changes, the pod's entries are dropped so the next lookup picks up the enriched identity.
/// Thread-safe.
/// </summary>
public sealed class PodIdentityResolver : IDisposable
{
    private sealed class Entry(WorkloadIdentity identity, long cgroupVersion, long podGeneration)
    {
        public readonly WorkloadIdentity Identity = identity;
        /// <summary>-1 when the path was known; else the map version at which it was not (retry when it moves).</summary>
        public readonly long CgroupVersion = cgroupVersion;
        /// <summary>-1 when complete; else the pod-change generation at which pod or container name was missing.</summary>
        public readonly long PodGeneration = podGeneration;
    }

    private readonly ICgroupPathResolver _cgroups;
    private readonly IPodMetadataSource? _pods;
    private readonly ConcurrentDictionary<ulong, Entry> _cache = new();
    private readonly ConcurrentDictionary<string, ConcurrentDictionary<ulong, byte>> _cgroupsByPod = new(StringComparer.Ordinal);
    private long _cacheResets;
    private long _podGeneration;

    public PodIdentityResolver(ICgroupPathResolver cgroups, IPodMetadataSource? pods = null, int maxCachedCgroups = 65_536)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxCachedCgroups, 16);
        _cgroups = cgroups;
        _pods = pods;
        MaxCachedCgroups = maxCachedCgroups;
        if (_pods is not null) _pods.PodChanged += Invalidate;
    }

    /// <summary>Cache bound; when exceeded the cache is cleared (counted in <see cref="CacheResets"/>). Defaults to 65 536.</summary>
    public int MaxCachedCgroups { get; }

    public int CachedCount => _cache.Count;

    public long CacheResets => Interlocked.Read(ref _cacheResets);

    public WorkloadIdentity Resolve(ulong cgroupId)
    {
        if (_cache.TryGetValue(cgroupId, out var entry)
            && (entry.CgroupVersion < 0 || entry.CgroupVersion == _cgroups.Version)
            && (entry.PodGeneration < 0 || entry.PodGeneration == Volatile.Read(ref _podGeneration)))
            return entry.Identity;
        return ResolveSlow(cgroupId);
    }

    /// <summary>Drops cached identities of a pod (called on pod add/update/delete).</summary>
    public void Invalidate(string podUid)
    {
        // Incomplete entries stored by a lookup racing with this change see the new generation and retry.
        Interlocked.Increment(ref _podGeneration);
        if (!_cgroupsByPod.TryRemove(podUid, out var ids)) return;
        foreach (var id in ids.Keys) _cache.TryRemove(id, out _);
    }

    private WorkloadIdentity ResolveSlow(ulong cgroupId)
    {
        long version = _cgroups.Version;
        long generation = Volatile.Read(ref _podGeneration);
        if (!_cgroups.TryResolve(cgroupId, out var path))
        {
            var unknown = WorkloadIdentity.Host(cgroupId, "");
            Store(cgroupId, new Entry(unknown, version, -1), podUid: null);
            return unknown;
        }

        var kind = KubeletCgroupPath.Parse(path, out var container);
        if (kind == KubeletCgroupKind.None)
        {
            var host = WorkloadIdentity.Host(cgroupId, path);
            Store(cgroupId, new Entry(host, -1, -1), podUid: null);
            return host;
        }

        var identity = new WorkloadIdentity { CgroupId = cgroupId, CgroupPath = path, Container = container };
        bool complete = false;
        if (_pods is not null)
        {
            if (kind == KubeletCgroupKind.Container && _pods.TryGetContainer(container!.ContainerId, out var pod, out var podContainer))
            {
                identity = identity with
                {
                    Namespace = pod.Namespace,
                    PodName = pod.Name,
                    ContainerName = podContainer.Name,
                    Container = container.Runtime == ContainerRuntime.Unknown ? container with { Runtime = podContainer.Runtime } : container,
                };
                complete = true;
            }
            else if (_pods.TryGetPod(container!.PodUid, out pod))
            {
                identity = identity with { Namespace = pod.Namespace, PodName = pod.Name };
                complete = kind == KubeletCgroupKind.Pod;
            }
        }
        Store(cgroupId, new Entry(identity, -1, complete ? -1 : generation), container!.PodUid);
        return identity;
    }

    private void Store(ulong cgroupId, Entry entry, string? podUid)
    {
        if (_cache.Count >= MaxCachedCgroups)
        {
            // Hostile or leaking workloads creating cgroups without end: start over rather than grow.
            _cache.Clear();
            _cgroupsByPod.Clear();
            Interlocked.Increment(ref _cacheResets);
        }
        // Register before publishing so an invalidation racing with this store cannot miss the entry.
        if (podUid is not null) _cgroupsByPod.GetOrAdd(podUid, static _ => new ConcurrentDictionary<ulong, byte>())[cgroupId] = 0;
        _cache[cgroupId] = entry;
    }

    public void Dispose()
    {
        if (_pods is not null) _pods.PodChanged -= Invalidate;
    }
}
