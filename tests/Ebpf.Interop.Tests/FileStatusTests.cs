using System.Diagnostics;
using System.Globalization;

namespace Ebpf.Interop.Tests;

public sealed class FileStatusTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ebpf-filestatus-test-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>device major, minor, inode, size as coreutils stat(1) reports them (a separate implementation to check against).</summary>
    private static (ulong Major, ulong Minor, ulong Inode, long Size) StatTool(string path)
    {
        var psi = new ProcessStartInfo("stat", ["-L", "-c", "%Hd %Ld %i %s", path]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        var fields = p.StandardOutput.ReadToEnd().Trim().Split(' ');
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
        return (ulong.Parse(fields[0], CultureInfo.InvariantCulture), ulong.Parse(fields[1], CultureInfo.InvariantCulture),
                ulong.Parse(fields[2], CultureInfo.InvariantCulture), long.Parse(fields[3], CultureInfo.InvariantCulture));
    }

    [Fact]
    public void TryGet_ExistingFile_MatchesStatTool()
    {
        var path = Path.Combine(_dir, "a.log");
        File.WriteAllText(path, "twelve bytes");
        Assert.True(FileStatus.TryGet(path, out var status, out int errno));
        Assert.Equal(0, errno);
        var expected = StatTool(path);
        Assert.Equal((expected.Major << 32) | expected.Minor, status.Device);
        Assert.Equal(expected.Inode, status.Inode);
        Assert.Equal(12L, status.Size);
        Assert.Equal(expected.Size, status.Size);
    }

    [Fact]
    public void TryGet_MissingFile_FalseWithEnoent()
    {
        Assert.False(FileStatus.TryGet(Path.Combine(_dir, "missing"), out var status, out int errno));
        Assert.Equal(2, errno);
        Assert.True(FileStatus.IsNotFound(errno));
        Assert.Equal(default, status);
        Assert.False(FileStatus.TryGet(Path.Combine(_dir, "missing"), out _));
    }

    [Fact]
    public void TryGet_PathThroughAFile_FalseWithEnotdir()
    {
        var file = Path.Combine(_dir, "plain");
        File.WriteAllText(file, "x");
        Assert.False(FileStatus.TryGet(Path.Combine(file, "below"), out _, out int errno));
        Assert.Equal(20, errno);
        Assert.True(FileStatus.IsNotFound(errno));
    }

    [Fact]
    public void TryGet_EmptyPath_FalseNotTreatedAsNotFound()
    {
        // "" without AT_EMPTY_PATH is ENOENT per statx(2); the path API must never silently stat the cwd.
        Assert.False(FileStatus.TryGet("", out _, out int errno));
        Assert.Equal(2, errno);
    }

    [Fact]
    public void Get_OpenHandleAfterRenameAndUnlink_StillDescribesTheOpenFile()
    {
        var path = Path.Combine(_dir, "rotating.log");
        File.WriteAllText(path, "first");
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        Assert.True(FileStatus.TryGet(path, out var before));
        Assert.Equal(before, FileStatus.Get(handle));

        var moved = Path.Combine(_dir, "rotating.log.1");
        File.Move(path, moved);
        File.AppendAllText(moved, "-and-more");
        File.WriteAllText(path, "new file");
        var open = FileStatus.Get(handle);
        Assert.Equal(before.Device, open.Device);
        Assert.Equal(before.Inode, open.Inode);
        Assert.Equal(14L, open.Size);
        Assert.True(FileStatus.TryGet(path, out var replacement));
        Assert.NotEqual(before.Inode, replacement.Inode);

        File.Delete(moved);
        Assert.Equal(before.Inode, FileStatus.Get(handle).Inode);
    }

    [Fact]
    public void Get_ClosedHandle_ThrowsObjectDisposed()
    {
        var path = Path.Combine(_dir, "closed");
        File.WriteAllText(path, "x");
        var handle = File.OpenHandle(path);
        handle.Dispose();
        Assert.Throws<ObjectDisposedException>(() => FileStatus.Get(handle));
    }
}
