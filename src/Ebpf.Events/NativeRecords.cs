using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Ebpf.Events
{

// C# mirrors of bpf/include/events.h, in one place. Each struct carries the C name it mirrors;
// each field is the PascalCase of the C field name. BtfLayoutTests compares sizes, offsets, field
// sizes and enum values with the BTF of build/bpf/agent.bpf.o, so an edit on one side only fails the build's tests.

/// <summary>Names the C type (struct or enum) a mirror type stands for; used by the BTF layout test.</summary>
[AttributeUsage(AttributeTargets.Struct | AttributeTargets.Enum)]
public sealed class NativeTypeAttribute(string name, string enumeratorPrefix = "") : Attribute
{
    public string Name { get; } = name;

    /// <summary>For enums: the prefix the C enumerators carry (EVENT_KIND_ ...), stripped before comparing names.</summary>
    public string EnumeratorPrefix { get; } = enumeratorPrefix;
}

/// <summary>events.h <c>enum event_abi</c>.</summary>
[NativeType("event_abi")]
public enum EventAbi : ushort
{
    /// <summary>The only ABI version this decoder reads.</summary>
    EventAbiVersion = 1,
}

/// <summary>events.h <c>enum event_caps</c>: capture caps in bytes.</summary>
[NativeType("event_caps")]
public enum EventCaps
{
    ExecFilenameCap = 512,
    ExecArgvCap = 4096,
    ExecCwdCap = 512,
    FilePathCap = 512,
    CgroupPathCap = 512,
    UnixPathCap = 108,
    TaskCommCap = 16,
}

/// <summary>events.h <c>enum exec_flags</c> (exec_event.flags).</summary>
[Flags]
[NativeType("exec_flags", "EXEC_FLAG_")]
public enum ExecFlags : uint
{
    None = 0,
    ArgvTruncated = 1 << 0,
    FilenameTruncated = 1 << 1,
    CwdTruncated = 1 << 2,
    PrevRuntime = 1 << 3,
    PrevCommKnown = 1 << 4,
    ArgvUnreadable = 1 << 5,
}

/// <summary>events.h <c>enum file_open_flags</c> (file_open_event.file_flags).</summary>
[Flags]
[NativeType("file_open_flags", "FILE_OPEN_FLAG_")]
public enum FileOpenFlags : ushort
{
    None = 0,
    PathTruncated = 1 << 0,
    PathUnreadable = 1 << 1,
}

/// <summary>events.h <c>enum cgroup_flags</c> (cgroup_event.cgroup_flags).</summary>
[Flags]
[NativeType("cgroup_flags", "CGROUP_FLAG_")]
public enum CgroupFlags : ushort
{
    None = 0,
    PathTruncated = 1 << 0,
}

/// <summary>
/// Values of the <c>filter_mode</c> load-time global (bpf/lib/maps.h <c>enum filter_mode</c>), set before load.
/// </summary>
[NativeType("filter_mode", "FILTER_MODE_")]
public enum FilterMode : uint
{
    /// <summary>Every task.</summary>
    All = 0,
    /// <summary>Tasks whose cgroup v2 is not the root.</summary>
    NotRoot = 1,
    /// <summary>Tasks whose cgroup or an ancestor (levels 1..8) is in the <c>container_roots</c> map. The default.</summary>
    Containers = 2,
}

}

// The record structs themselves live apart from the managed event model: they share names with the
// correlation inputs (ConnectRecord, FileOpenRecord ...) and only the decoder and the layout test need them.
namespace Ebpf.Events.Native
{
/// <summary>16 bytes of a fixed-size C array (comm).</summary>
[InlineArray(16)]
public struct NativeBytes16
{
    private byte _element0;
}

/// <summary>16 bytes of a fixed-size C array (an IPv4/IPv6 address).</summary>
[InlineArray(16)]
public struct NativeAddress16
{
    private byte _element0;
}

/// <summary>108 bytes: sockaddr_un.sun_path.</summary>
[InlineArray(108)]
public struct NativeUnixPath108
{
    private byte _element0;
}

[NativeType("event_header")]
[StructLayout(LayoutKind.Explicit, Size = 32)]
public struct EventHeaderRecord
{
    [FieldOffset(0)] public ushort Kind;
    [FieldOffset(2)] public ushort AbiVersion;
    [FieldOffset(4)] public uint Size;
    [FieldOffset(8)] public ulong BootNs;
    [FieldOffset(16)] public ulong CgroupId;
    [FieldOffset(24)] public uint Tgid;
    [FieldOffset(28)] public uint Tid;
}

/// <summary>Followed by filename[FilenameLen], argv[ArgvLen], cwd[CwdLen].</summary>
[NativeType("exec_event")]
[StructLayout(LayoutKind.Explicit, Size = 112)]
public struct ExecRecord
{
    [FieldOffset(0)] public EventHeaderRecord Hdr;
    [FieldOffset(32)] public uint Ppid;
    [FieldOffset(36)] public uint Uid;
    [FieldOffset(40)] public uint Gid;
    [FieldOffset(44)] public uint Loginuid;
    [FieldOffset(48)] public ulong StartBoottime;
    [FieldOffset(56)] public uint PidNsInum;
    [FieldOffset(60)] public uint MntNsInum;
    [FieldOffset(64)] public uint Flags;
    [FieldOffset(68)] public uint ArgvOriginalLen;
    [FieldOffset(72)] public ushort FilenameLen;
    [FieldOffset(74)] public ushort ArgvLen;
    [FieldOffset(76)] public ushort CwdLen;
    [FieldOffset(78)] public ushort Pad0;
    [FieldOffset(80)] public NativeBytes16 Comm;
    [FieldOffset(96)] public NativeBytes16 PrevComm;
}

[NativeType("fork_event")]
[StructLayout(LayoutKind.Explicit, Size = 64)]
public struct ForkRecord
{
    [FieldOffset(0)] public EventHeaderRecord Hdr;
    [FieldOffset(32)] public uint ParentTgid;
    [FieldOffset(36)] public uint ParentPid;
    [FieldOffset(40)] public uint ChildTgid;
    [FieldOffset(44)] public uint ChildPid;
    [FieldOffset(48)] public ulong ChildStartBoottime;
    [FieldOffset(56)] public ulong ChildCgroupId;
}

[NativeType("exit_event")]
[StructLayout(LayoutKind.Explicit, Size = 48)]
public struct ExitRecord
{
    [FieldOffset(0)] public EventHeaderRecord Hdr;
    [FieldOffset(32)] public int ExitCode;
    [FieldOffset(36)] public uint GroupDead;
    [FieldOffset(40)] public ulong StartBoottime;
}

[NativeType("connect_event")]
[StructLayout(LayoutKind.Explicit, Size = 176)]
public struct ConnectRecord
{
    [FieldOffset(0)] public EventHeaderRecord Hdr;
    [FieldOffset(32)] public int Fd;
    [FieldOffset(36)] public int Result;
    [FieldOffset(40)] public ushort Family;
    [FieldOffset(42)] public ushort Port;
    [FieldOffset(44)] public ushort UnixPathLen;
    [FieldOffset(46)] public ushort Pad0;
    [FieldOffset(48)] public NativeAddress16 Addr;
    [FieldOffset(64)] public NativeUnixPath108 UnixPath;
    [FieldOffset(172)] public uint Pad1;
}

/// <summary>Followed by path[PathLen].</summary>
[NativeType("file_open_event")]
[StructLayout(LayoutKind.Explicit, Size = 56)]
public struct FileOpenRecord
{
    [FieldOffset(0)] public EventHeaderRecord Hdr;
    [FieldOffset(32)] public int Dirfd;
    [FieldOffset(36)] public int Flags;
    [FieldOffset(40)] public uint Mode;
    [FieldOffset(44)] public int Result;
    [FieldOffset(48)] public ushort PathLen;
    [FieldOffset(50)] public ushort FileFlags;
    [FieldOffset(52)] public uint Pad0;
}

/// <summary>Followed by path[PathLen].</summary>
[NativeType("cgroup_event")]
[StructLayout(LayoutKind.Explicit, Size = 48)]
public struct CgroupRecord
{
    [FieldOffset(0)] public EventHeaderRecord Hdr;
    [FieldOffset(32)] public ulong TargetCgroupId;
    [FieldOffset(40)] public uint Level;
    [FieldOffset(44)] public ushort PathLen;
    [FieldOffset(46)] public ushort CgroupFlags;
}
}
