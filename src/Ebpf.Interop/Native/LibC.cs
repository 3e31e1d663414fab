using System.Runtime.InteropServices;

namespace Ebpf.Interop.Native;

/// <summary>The few libc calls we need; returning -1 and setting errno on failure unless noted.</summary>
internal static unsafe partial class LibC
{
    private const string Library = "libc";

    internal const int CLOCK_REALTIME = 0;
    internal const int CLOCK_BOOTTIME = 7;
    internal const int AT_FDCWD = -100;
    internal const int AT_STATX_SYNC_AS_STAT = 0;
    internal const int AT_EMPTY_PATH = 0x1000;
    internal const uint STATX_BASIC_STATS = 0x7ff;
    internal const int ENOENT = 2;
    internal const int ENOTDIR = 20;

    [StructLayout(LayoutKind.Sequential)]
    internal struct Timespec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    /// <summary>-1 + errno EINVAL for an unknown clock id.</summary>
    [LibraryImport(Library, EntryPoint = "clock_gettime", SetLastError = true)]
    internal static partial int clock_gettime(int clockId, Timespec* ts);

    /// <summary>Number of bytes that would have been written (excluding NUL); negative on encoding error.</summary>
    [LibraryImport(Library, EntryPoint = "vsnprintf")]
    internal static partial int vsnprintf(byte* buffer, nuint size, byte* format, IntPtr args);

    [LibraryImport(Library, EntryPoint = "geteuid")]
    internal static partial uint geteuid();

    /// <summary>-1 + errno (EPERM without CAP_SYS_ADMIN, EBUSY when already mounted).</summary>
    [LibraryImport(Library, EntryPoint = "mount", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int mount(string source, string target, string fileSystemType, ulong flags, IntPtr data);

    /// <summary>
    /// struct statx (include/uapi/linux/stat.h): the same 256-byte layout on every architecture, unlike struct stat.
    /// Only the fields we read are declared. stx_dev_* are filled whatever the mask asks for.
    /// </summary>
    [StructLayout(LayoutKind.Explicit, Size = 256)]
    internal struct Statx
    {
        [FieldOffset(0)] public uint Mask;
        [FieldOffset(32)] public ulong Inode;
        [FieldOffset(40)] public ulong Size;
        [FieldOffset(136)] public uint DeviceMajor;
        [FieldOffset(140)] public uint DeviceMinor;
    }

    /// <summary>-1 + errno (ENOENT, ENOTDIR, EACCES, EBADF ...). glibc >= 2.28 exports statx.</summary>
    [LibraryImport(Library, EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int statx(int dirFd, string path, int flags, uint mask, Statx* statxBuffer);
}
