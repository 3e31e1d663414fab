using System.Runtime.InteropServices;
using Ebpf.Interop.Native;
using Microsoft.Win32.SafeHandles;

namespace Ebpf.Interop;

/// <summary>
/// Which file a path or an open handle refers to (device and inode) and its size, from statx(2): .NET has no
/// managed API for inodes. <see cref="Device"/> is the major number in the high 32 bits, the minor in the low 32.
/// A cgroup v2 id is the <see cref="Inode"/> of its cgroupfs directory.
/// </summary>
public readonly record struct FileStatus(ulong Device, ulong Inode, long Size)
{
    /// <summary>statx(2) of <paramref name="path"/> (symlinks followed); false with the errno when it fails.</summary>
    public static unsafe bool TryGet(string path, out FileStatus status, out int errno)
    {
        ArgumentNullException.ThrowIfNull(path);
        LibC.Statx buffer;
        if (LibC.statx(LibC.AT_FDCWD, path, LibC.AT_STATX_SYNC_AS_STAT, LibC.STATX_BASIC_STATS, &buffer) != 0)
        {
            errno = Marshal.GetLastPInvokeError();
            status = default;
            return false;
        }
        errno = 0;
        status = From(buffer);
        return true;
    }

    /// <summary>statx(2) of <paramref name="path"/>; false when it fails for any reason (vanished, no access).</summary>
    public static bool TryGet(string path, out FileStatus status) => TryGet(path, out status, out _);

    /// <summary>
    /// statx(2) of an open file, even after it was renamed or unlinked (AT_EMPTY_PATH on the descriptor).
    /// Throws <see cref="IOException"/> with the errno when the call fails, <see cref="ObjectDisposedException"/> on a closed handle.
    /// </summary>
    public static unsafe FileStatus Get(SafeFileHandle handle)
    {
        ArgumentNullException.ThrowIfNull(handle);
        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            int fd = (int)handle.DangerousGetHandle();
            LibC.Statx buffer;
            if (LibC.statx(fd, "", LibC.AT_EMPTY_PATH, LibC.STATX_BASIC_STATS, &buffer) != 0)
                throw new IOException($"statx(fd {fd}) failed: errno {Marshal.GetLastPInvokeError()}");
            return From(buffer);
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }

    /// <summary>True for the errnos that mean "no such file" (ENOENT, ENOTDIR) rather than a failure to look.</summary>
    public static bool IsNotFound(int errno) => errno is LibC.ENOENT or LibC.ENOTDIR;

    private static FileStatus From(in LibC.Statx buffer) =>
        new(((ulong)buffer.DeviceMajor << 32) | buffer.DeviceMinor, buffer.Inode, (long)buffer.Size);
}
