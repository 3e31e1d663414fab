using Ebpf.Core.Identity;
using Ebpf.Events;
using Ebpf.Kubernetes.Cgroups;

namespace Ebpf.Kubernetes.Tests.Cgroups;

public class CgroupHierarchyTests
{
    private const string PodUid = "1b2c3d4e-5f60-4718-9a2b-3c4d5e6f7a8b";

    private sealed class ManualTime : TimeProvider
    {
        private long _ticks = 1_000_000;
        public override long TimestampFrequency => TimeSpan.TicksPerSecond;
        public override long GetTimestamp() => _ticks;
        public void Advance(TimeSpan by) => _ticks += by.Ticks;
    }

    [RootFact]
    public void Scan_RealTree_MapsDirectoryInodesToPaths()
    {
        using var tree = new TestCgroupTree();
        string containerId = new string('a', 32) + new string('0', 32);
        var containerPath = tree.Below($"/kubepods/burstable/pod{PodUid}/{containerId}");
        var hierarchy = new CgroupHierarchy();
        Assert.True(hierarchy.Scan() > 3);

        ulong id = hierarchy.IdOf(containerPath);
        Assert.NotEqual(0UL, id);
        Assert.True(hierarchy.Map.TryGetPath(id, out var path));
        Assert.Equal(containerPath, path);
        Assert.True(hierarchy.Map.TryGetPath(hierarchy.IdOf("/"), out var root));
        Assert.Equal("/", root);

        using var resolver = new PodIdentityResolver(hierarchy);
        var identity = resolver.Resolve(id);
        Assert.Equal(new ContainerCgroup(PodUid, containerId, QosClass.Burstable, ContainerRuntime.Unknown), identity.Container);
    }

    [RootFact]
    public void Apply_MkdirAndRmdirRecordsOfRealDirectories_UpdateTheMapWithoutRescan()
    {
        using var tree = new TestCgroupTree();
        var hierarchy = new CgroupHierarchy(new CgroupHierarchyOptions { RescanMinInterval = TimeSpan.FromHours(1) });
        hierarchy.Scan();
        var created = tree.Below("/late");
        ulong id = hierarchy.IdOf(created);
        Assert.False(hierarchy.Map.TryGetPath(id, out _));

        hierarchy.Apply(new CgroupEvent(EventKind.CgroupMkdir) { TargetCgroupId = id, Path = created, Level = 2 });
        Assert.True(hierarchy.TryResolve(id, out var path));
        Assert.Equal(created, path);
        Assert.Equal(0, hierarchy.Rescans);

        tree.Remove(created);
        hierarchy.Apply(new CgroupEvent(EventKind.CgroupRmdir) { TargetCgroupId = id, Path = created, Level = 2 });
        Assert.True(hierarchy.Map.IsRemoved(id));
        Assert.True(hierarchy.TryResolve(id, out _)); // still resolvable for late records
    }

    [RootFact]
    public void TryResolve_IdSeenBeforeItsMkdirRecord_ResolvesByRateLimitedRescan()
    {
        using var tree = new TestCgroupTree();
        var time = new ManualTime();
        var hierarchy = new CgroupHierarchy(new CgroupHierarchyOptions { RescanMinInterval = TimeSpan.FromSeconds(5) }, time);
        hierarchy.Scan();

        var first = tree.Below("/first");
        Assert.True(hierarchy.TryResolve(hierarchy.IdOf(first), out var path));
        Assert.Equal(first, path);
        Assert.Equal(1, hierarchy.Rescans);

        var second = tree.Below("/second");
        ulong secondId = hierarchy.IdOf(second);
        Assert.False(hierarchy.TryResolve(secondId, out _)); // within the interval: no rescan
        Assert.Equal(1, hierarchy.Rescans);
        time.Advance(TimeSpan.FromSeconds(6));
        Assert.True(hierarchy.TryResolve(secondId, out path));
        Assert.Equal(second, path);

        // A rescan notices directories removed without a record.
        tree.Remove(second);
        hierarchy.Scan();
        Assert.True(hierarchy.Map.IsRemoved(secondId));
    }
}
