using Ebpf.Interop;
using Microsoft.Win32.SafeHandles;

namespace Ebpf.Kubernetes.Audit;

/// <summary>Which file a path or an open handle refers to (device and inode): how the tailer notices rotation.</summary>
public readonly record struct FileIdentity(ulong Device, ulong Inode)
{
    public override string ToString() => $"{Device >> 32}:{Device & 0xffffffff}/{Inode}";
}

/// <summary>Identity and size of the audit log file, on top of the statx(2) wrapper in Ebpf.Interop.</summary>
internal static class FileStat
{
    /// <summary>Identity and size of the file at <paramref name="path"/>, or null when it does not exist.</summary>
    public static (FileIdentity Identity, long Size)? Of(string path)
    {
        if (FileStatus.TryGet(path, out var status, out int errno))
            return (new FileIdentity(status.Device, status.Inode), status.Size);
        if (FileStatus.IsNotFound(errno))
            return null;
        throw new IOException($"statx({path}) failed: errno {errno}");
    }

    /// <summary>Identity and size of an open file, even after it was renamed or unlinked.</summary>
    public static (FileIdentity Identity, long Size) Of(SafeFileHandle handle)
    {
        var status = FileStatus.Get(handle);
        return (new FileIdentity(status.Device, status.Inode), status.Size);
    }
}
