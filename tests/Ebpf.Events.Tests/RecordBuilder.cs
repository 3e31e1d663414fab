using System.Buffers.Binary;
using System.Text;

namespace Ebpf.Events.Tests;

/// <summary>
/// Lays out records byte by byte at the offsets of bpf/include/events.h (written from the C header and
/// docs/abi.md, not from the C# mirrors, so a wrong mirror offset shows up as a wrong decoded value).
/// </summary>
internal static class RecordBuilder
{
    public const ulong BootNs = 1_234_567_890_123;
    public const ulong CgroupId = 4242;
    public const uint Tgid = 3100;
    public const uint Tid = 3101;

    public static byte[] Header(ushort kind, int fixedSize, int trailing = 0, ushort version = 1, uint? size = null)
    {
        var b = new byte[fixedSize + trailing];
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(0), kind);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(2), version);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4), size ?? (uint)b.Length);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(8), BootNs);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(16), CgroupId);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(24), Tgid);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(28), Tid);
        return b;
    }

    public static byte[] Exec(
        byte[] filename, byte[] argv, byte[]? cwd = null, string comm = "sh", string prevComm = "runc:[2:INIT]",
        uint flags = 0x18, uint argvOriginalLen = 0, int fixedSize = 112)
    {
        cwd ??= [];
        var b = Header(1, fixedSize, filename.Length + argv.Length + cwd.Length);
        U32(b, 32, 3000);        // ppid
        U32(b, 36, 1000);        // uid
        U32(b, 40, 1001);        // gid
        U32(b, 44, uint.MaxValue); // loginuid
        U64(b, 48, 777_000_000); // start_boottime
        U32(b, 56, 4026532001);  // pid_ns_inum
        U32(b, 60, 4026532002);  // mnt_ns_inum
        U32(b, 64, flags);
        U32(b, 68, argvOriginalLen == 0 ? (uint)argv.Length : argvOriginalLen);
        U16(b, 72, (ushort)filename.Length);
        U16(b, 74, (ushort)argv.Length);
        U16(b, 76, (ushort)cwd.Length);
        Encoding.UTF8.GetBytes(comm).CopyTo(b, 80);
        Encoding.UTF8.GetBytes(prevComm).CopyTo(b, 96);
        filename.CopyTo(b, fixedSize);
        argv.CopyTo(b, fixedSize + filename.Length);
        cwd.CopyTo(b, fixedSize + filename.Length + argv.Length);
        return b;
    }

    public static byte[] Fork(uint parentTgid, uint parentPid, uint childTgid, uint childPid, ulong childStart, ulong childCgroup)
    {
        var b = Header(2, 64);
        U32(b, 32, parentTgid);
        U32(b, 36, parentPid);
        U32(b, 40, childTgid);
        U32(b, 44, childPid);
        U64(b, 48, childStart);
        U64(b, 56, childCgroup);
        return b;
    }

    public static byte[] Exit(int exitCode, uint groupDead, ulong start)
    {
        var b = Header(3, 48);
        U32(b, 32, (uint)exitCode);
        U32(b, 36, groupDead);
        U64(b, 40, start);
        return b;
    }

    public static byte[] Connect(int fd, int result, ushort family, ushort port, byte[] addr, byte[]? unixPath = null)
    {
        var b = Header(4, 176);
        U32(b, 32, (uint)fd);
        U32(b, 36, (uint)result);
        U16(b, 40, family);
        U16(b, 42, port);
        U16(b, 44, (ushort)(unixPath?.Length ?? 0));
        addr.CopyTo(b, 48);
        unixPath?.CopyTo(b, 64);
        return b;
    }

    public static byte[] FileOpen(byte[] path, int dirfd, int flags, uint mode, int result, ushort fileFlags = 0, int fixedSize = 56)
    {
        var b = Header(5, fixedSize, path.Length);
        U32(b, 32, (uint)dirfd);
        U32(b, 36, (uint)flags);
        U32(b, 40, mode);
        U32(b, 44, (uint)result);
        U16(b, 48, (ushort)path.Length);
        U16(b, 50, fileFlags);
        path.CopyTo(b, fixedSize);
        return b;
    }

    public static byte[] Cgroup(ushort kind, ulong targetId, uint level, byte[] path)
    {
        var b = Header(kind, 48, path.Length);
        U64(b, 32, targetId);
        U32(b, 40, level);
        U16(b, 44, (ushort)path.Length);
        path.CopyTo(b, 48);
        return b;
    }

    public static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);

    public static void U16(byte[] b, int offset, ushort v) => BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(offset), v);
    public static void U32(byte[] b, int offset, uint v) => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(offset), v);
    public static void U64(byte[] b, int offset, ulong v) => BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(offset), v);
}
