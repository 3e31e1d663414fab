using Ebpf.Core.Identity;
using Ebpf.Events;

namespace Ebpf.Core.Tests.Identity;

public class CgroupPathMapTests
{
    [Fact]
    public void Apply_MkdirThenRmdir_PathStaysResolvableWithinRetention()
    {
        var map = new CgroupPathMap(removedRetention: 2);
        map.Apply(new CgroupEvent(EventKind.CgroupMkdir) { TargetCgroupId = 1, Path = "/a" });
        map.Apply(new CgroupEvent(EventKind.CgroupMkdir) { TargetCgroupId = 2, Path = "b" });
        map.Apply(new CgroupEvent(EventKind.CgroupMkdir) { TargetCgroupId = 3, Path = "/c" });
        Assert.True(map.TryGetPath(2, out var b));
        Assert.Equal("/b", b);

        long before = map.Version;
        map.Apply(new CgroupEvent(EventKind.CgroupRmdir) { TargetCgroupId = 1, Path = "/a" });
        Assert.True(map.Version > before);
        Assert.True(map.IsRemoved(1));
        Assert.True(map.TryGetPath(1, out _));
        Assert.DoesNotContain(1UL, map.Snapshot().Keys);

        map.MarkRemoved(2);
        map.MarkRemoved(3);
        // Retention 2: the oldest removal is forgotten.
        Assert.False(map.TryGetPath(1, out _));
        Assert.True(map.TryGetPath(2, out _));
        Assert.True(map.TryGetPath(3, out _));
    }

    [Fact]
    public void Set_AfterRemoval_IdIsLiveAgain()
    {
        var map = new CgroupPathMap(removedRetention: 1);
        map.Set(9, "/x");
        map.MarkRemoved(9);
        map.Set(9, "/y");
        map.Set(10, "/z");
        map.MarkRemoved(10);
        map.MarkRemoved(11); // unknown: ignored
        Assert.True(map.TryGetPath(9, out var path));
        Assert.Equal("/y", path);
        Assert.False(map.IsRemoved(9));
    }
}
