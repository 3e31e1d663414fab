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
        // linux/stat.h struct statx: 256 bytes on every architecture.
        Assert.Equal(256, Unsafe.SizeOf<LibC.Statx>());
    }
}
