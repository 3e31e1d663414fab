using System.Runtime.CompilerServices;
using Ebpf.Interop.Native;

namespace Ebpf.Interop.Tests;

/// <summary>Our mirrors of native structs have the sizes of the C headers they copy (x86_64/arm64, LP64).</summary>
public sealed class NativeLayoutTests
{
    [Fact]
    public void Sizes_MatchNativeHeaders()
    {
        // bpf/libbpf.h struct bpf_object_open_opts up to relaxed_maps: size_t sz; const char *object_name; bool relaxed_maps;
        Assert.Equal(24, Unsafe.SizeOf<LibBpf.BpfObjectOpenOpts>());
        // linux/btf.h struct btf_type and struct btf_var_secinfo: three __u32 each.
        Assert.Equal(12, Unsafe.SizeOf<LibBpf.BtfType>());
        Assert.Equal(12, Unsafe.SizeOf<LibBpf.BtfVarSecInfo>());
        // struct timespec on LP64: time_t tv_sec; long tv_nsec;
        Assert.Equal(16, Unsafe.SizeOf<LibC.Timespec>());
    }

    [Fact]
    public void GetCgroupId_V2Directory_IsItsInodeAsStatReportsIt()
    {
        var mount = CgroupHierarchy.FindV2Mount();
        Assert.NotNull(mount);
        var id = CgroupHierarchy.GetCgroupId(mount);
        Assert.Equal(Ebpf.Testing.Runc.RuncContainer.ReadInode(mount), id);
        // The v2 root cgroup's id is 1 (kernfs root node).
        Assert.Equal(1UL, id);
        Assert.Throws<BpfException>(() => CgroupHierarchy.GetCgroupId("/nonexistent-" + Guid.NewGuid()));
    }
}
