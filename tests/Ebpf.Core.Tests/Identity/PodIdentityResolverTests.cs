using System.Diagnostics.CodeAnalysis;
using Ebpf.Core.Identity;
using Ebpf.Events;

namespace Ebpf.Core.Tests.Identity;

public class PodIdentityResolverTests
{
    private const string Uid = "8a6c3e2f-5b1d-4c2e-9f3a-1d2e3f4a5b6c";
    private const string Id = "4c01db0b339c8c2f1a7c3e6a1f5e9d2b7a3c5e8f0a1b2c3d4e5f60718293a4b5";
    private static readonly string ContainerPath = $"/kubepods/burstable/pod{Uid}/{Id}";

    /// <summary>An in-memory metadata source: the Core-side contract, filled the way PodWatcher fills it.</summary>
    private sealed class MemoryPodSource : IPodMetadataSource
    {
        private readonly Dictionary<string, PodMetadata> _pods = new();
        public event Action<string>? PodChanged;
        public void Set(PodMetadata pod) { _pods[pod.Uid] = pod; PodChanged?.Invoke(pod.Uid); }
        public bool TryGetPod(string podUid, [NotNullWhen(true)] out PodMetadata? pod) => _pods.TryGetValue(podUid, out pod);
        public bool TryGetContainer(string containerId, [NotNullWhen(true)] out PodMetadata? pod, [NotNullWhen(true)] out PodContainer? container)
        {
            foreach (var p in _pods.Values)
                if (p.FindContainerById(containerId) is { } c) { pod = p; container = c; return true; }
            pod = null; container = null;
            return false;
        }
    }

    private sealed class MapResolver(CgroupPathMap map) : ICgroupPathResolver
    {
        public long Version => map.Version;
        public bool TryResolve(ulong cgroupId, out string path) => map.TryGetPath(cgroupId, out path);
    }

    private static PodMetadata Pod(string containerId) => new()
    {
        Uid = Uid, Namespace = "shop", Name = "web-1",
        Containers = [new PodContainer { Name = "nginx", ContainerId = containerId, Runtime = ContainerRuntime.Containerd }],
    };

    [Fact]
    public void Resolve_MetadataArrivesLater_IdentityIsEnriched()
    {
        var map = new CgroupPathMap();
        map.Set(42, ContainerPath);
        var pods = new MemoryPodSource();
        using var resolver = new PodIdentityResolver(new MapResolver(map), pods);

        var first = resolver.Resolve(42);
        Assert.True(first.IsContainer);
        Assert.False(first.MetadataAvailable);
        Assert.Equal(Id, first.Container!.ContainerId);
        Assert.Same(first, resolver.Resolve(42));

        // Pod known but the container has not reported its id yet: names of the pod only.
        pods.Set(Pod(""));
        var podOnly = resolver.Resolve(42);
        Assert.Equal(("shop", "web-1"), (podOnly.Namespace!, podOnly.PodName!));
        Assert.Null(podOnly.ContainerName);

        pods.Set(Pod(Id));
        var full = resolver.Resolve(42);
        Assert.Equal("nginx", full.ContainerName);
        Assert.Equal(ContainerRuntime.Containerd, full.Container!.Runtime);
        Assert.Same(full, resolver.Resolve(42));
    }

    [Fact]
    public void Resolve_UnknownIdThenMkdir_ResolvesAfterMapChange()
    {
        var map = new CgroupPathMap();
        using var resolver = new PodIdentityResolver(new MapResolver(map));
        var unknown = resolver.Resolve(7);
        Assert.False(unknown.IsContainer);
        Assert.Equal("", unknown.CgroupPath);

        map.Apply(new CgroupEvent(EventKind.CgroupMkdir) { TargetCgroupId = 7, Path = ContainerPath, Level = 4 });
        var known = resolver.Resolve(7);
        Assert.Equal(ContainerPath, known.CgroupPath);
        Assert.Equal(Uid, known.Container!.PodUid);
    }

    [Fact]
    public void Resolve_HostCgroup_ReturnsHostIdentity()
    {
        var map = new CgroupPathMap();
        map.Set(3, "/system.slice/containerd.service");
        using var resolver = new PodIdentityResolver(new MapResolver(map));
        var identity = resolver.Resolve(3);
        Assert.False(identity.IsContainer);
        Assert.Equal("/system.slice/containerd.service", identity.CgroupPath);
    }

    [Fact]
    public void Resolve_MoreCgroupsThanCacheBound_StaysBounded()
    {
        var map = new CgroupPathMap();
        for (ulong i = 0; i < 100; i++) map.Set(i, "/c" + i);
        using var resolver = new PodIdentityResolver(new MapResolver(map), maxCachedCgroups: 16);
        for (ulong i = 0; i < 100; i++) Assert.Equal("/c" + i, resolver.Resolve(i).CgroupPath);
        Assert.True(resolver.CachedCount <= 16);
        Assert.True(resolver.CacheResets > 0);
    }
}
