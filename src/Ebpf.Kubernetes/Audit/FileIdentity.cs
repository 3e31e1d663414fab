using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Ebpf.Kubernetes.Audit;

/// <summary>Which file a path or an open handle refers to (device and inode), and its size, from statx(2).</summary>
public readonly record struct FileIdentity(ulong Device, ulong Inode)
{
    public override string ToString() => $"{Device >> 32}:{Device & 0xffffffff}/{Inode}";
}

/// <summary>statx(2) through glibc. Kept here (not in Ebpf.Interop) because it is one safe, blittable call used only by the log tailer.</summary>
internal static partial class FileStat
{
    private const int AtFdCwd = -100;
    private const uint StatxBasicStats = 0x7ff;

    // struct statx is architecture independent (include/uapi/linux/stat.h): stx_ino @32, stx_size @40,
    // stx_dev_major @136, stx_dev_minor @140; 256 bytes in total.
    private const int StatxSize = 256;

    // "libc.so.6", not "libc": the unversioned libc.so is a linker script that only exists with libc6-dev, which the
    // runtime image (debian:bookworm-slim) does not have. glibc >= 2.28 exports statx.
    [DllImport("libc.so.6", EntryPoint = "statx", SetLastError = true)]
    private static extern int Statx(int dirfd, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, uint mask, byte[] buffer);

    /// <summary>Identity and size of the file at <paramref name="path"/>, or null when it does not exist.</summary>
    public static (FileIdentity Identity, long Size)? Of(string path)
    {
        var buffer = new byte[StatxSize];
        if (Statx(AtFdCwd, path, 0, StatxBasicStats, buffer) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno is 2 or 20)
            {
                return null; // ENOENT, ENOTDIR
            }

            throw new IOException($"statx({path}) failed: errno {errno}");
        }

        var inode = BinaryPrimitives.ReadUInt64LittleEndian(buffer.AsSpan(32));
        var size = BinaryPrimitives.ReadInt64LittleEndian(buffer.AsSpan(40));
        var major = BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(136));
        var minor = BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(140));
        return (new FileIdentity(((ulong)major << 32) | minor, inode), size);
    }

    /// <summary>Identity and size of an open file, even after it was renamed or unlinked (/proc/self/fd follows the open file).</summary>
    public static (FileIdentity Identity, long Size) Of(SafeFileHandle handle)
        => Of($"/proc/self/fd/{handle.DangerousGetHandle()}") ?? throw new IOException("open file handle has no /proc/self/fd entry");
}
