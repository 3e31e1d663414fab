using Ebpf.Testing.Runc;

namespace Ebpf.Interop.Tests;

public sealed class CgroupV2Tests
{
    [Fact]
    public void FindMount_ThisMachine_FindsTheCgroup2Root()
    {
        var mount = CgroupV2.FindMount();
        Assert.NotNull(mount);
        // cgroup.controllers exists only in v2 cgroups; the hierarchy root has id 1 (kernfs root node).
        Assert.True(File.Exists(Path.Combine(mount, "cgroup.controllers")), $"{mount} is not a cgroup v2 directory");
        Assert.Equal(1UL, CgroupV2.GetCgroupId(mount));
    }

    [Theory]
    [InlineData("31 23 0:28 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate", "/sys/fs/cgroup")]
    [InlineData("31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n", "/sys/fs/cgroup/unified")]
    [InlineData("41 31 0:38 /kubepods /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n50 31 0:38 / /host/cg\\040v2 rw - cgroup2 cgroup2 rw", "/host/cg v2")]
    [InlineData("32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\ngarbage line\n", null)]
    [InlineData("", null)]
    public void FindMount_MountinfoVariants_PicksTheV2Root(string mountinfo, string? expected)
    {
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, mountinfo);
            Assert.Equal(expected, CgroupV2.FindMount(file));
        }
        finally { File.Delete(file); }
    }

    [Fact]
    public void GetCgroupId_V2Directory_IsItsInodeAsStatReportsIt()
    {
        var mount = CgroupV2.FindMount();
        Assert.NotNull(mount);
        var id = CgroupV2.GetCgroupId(mount);
        Assert.Equal(RuncContainer.ReadInode(mount), id);
        // The v2 root cgroup's id is 1 (kernfs root node).
        Assert.Equal(1UL, id);
    }

    [Fact]
    public void GetCgroupId_MissingDirectory_ThrowsBpfExceptionWithErrno()
    {
        var e = Assert.Throws<BpfException>(() => CgroupV2.GetCgroupId("/nonexistent-" + Guid.NewGuid()));
        Assert.Equal(2, e.Errno); // ENOENT
    }

    [Fact]
    public void TryGetCgroupId_MissingDirectory_IsZero()
    {
        Assert.Equal(0UL, CgroupV2.TryGetCgroupId("/nonexistent-" + Guid.NewGuid()));
        var mount = CgroupV2.FindMount();
        Assert.NotNull(mount);
        Assert.Equal(1UL, CgroupV2.TryGetCgroupId(mount));
    }

    [Theory]
    [InlineData("/kubepods", true)]
    [InlineData("/kubepods/", true)]
    [InlineData("/kubepods.slice", true)]
    [InlineData("/kubepods/besteffort", false)]
    [InlineData("/system.slice", false)]
    [InlineData("kubepods", false)]
    public void IsKubernetesRootPath_Paths_MatchOnlyTopLevelPodRoots(string path, bool expected)
    {
        Assert.Equal(expected, CgroupV2.IsKubernetesRootPath(path));
    }

    [Fact]
    public void FindKubernetesRoots_TempHierarchy_ReturnsExistingRootsWithTheirInodes()
    {
        // Any directory tree works: a cgroup id is just the directory inode, so a temp dir stands in for the v2 mount.
        var root = Directory.CreateTempSubdirectory("ebpf-cgroupv2-test-").FullName;
        try
        {
            var kubepods = Directory.CreateDirectory(Path.Combine(root, "kubepods")).FullName;
            var roots = CgroupV2.FindKubernetesRoots(root);
            var only = Assert.Single(roots);
            Assert.Equal("/kubepods", only.Path);
            Assert.Equal(RuncContainer.ReadInode(kubepods), only.CgroupId);
        }
        finally { Directory.Delete(root, recursive: true); }
    }
}
