using System.Runtime.InteropServices;

namespace Ebpf.Kubernetes.Cgroups;

/// <summary>
/// Inode numbers via statx(2): the cgroup v2 id of a cgroup is the inode of its directory (kernfs node id),
/// and .NET has no managed API for inodes. statx's layout is the same on every architecture
/// (include/uapi/linux/stat.h: stx_ino at offset 32 of a 256-byte struct), unlike struct stat.
/// </summary>
internal static partial class FileInode
{
    private const int AtFdCwd = -100;
    private const uint StatxIno = 0x100;
    private const int StatxSize = 256;
    private const int InoOffset = 32;

    [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    private static extern int Statx(int dirfd, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, uint mask, [Out] byte[] buffer);

    /// <summary>The inode of <paramref name="path"/>, or 0 when it cannot be read (vanished, no access).</summary>
    public static ulong TryGet(string path)
    {
        var buffer = new byte[StatxSize];
        if (Statx(AtFdCwd, path, 0, StatxIno, buffer) != 0) return 0;
        return BitConverter.ToUInt64(buffer, InoOffset);
    }
}
