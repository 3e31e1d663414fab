using System.Net;

namespace Ebpf.Events.Tests;

/// <summary>
/// Decodes samples the compiled object really produced on this kernel for a `runc exec` (Fixtures/runc-exec-records.hex),
/// so the decoder is checked against kernel output and not only against <see cref="RecordBuilder"/>.
/// </summary>
public sealed class RecordedKernelRecordsTests
{
    private const ulong ContainerCgroupId = 1526;

    private static List<NodeEvent> DecodeFixture(NodeEventDecoder decoder)
    {
        var events = new List<NodeEvent>();
        foreach (var line in File.ReadLines(Path.Combine(AppContext.BaseDirectory, "Fixtures", "runc-exec-records.hex")))
        {
            if (line.Length == 0 || line[0] == '#')
                continue;
            var result = decoder.TryDecode(Convert.FromHexString(line), out var ev);
            Assert.Equal(DecodeResult.Ok, result);
            events.Add(ev!);
        }
        return events;
    }

    [Fact]
    public void TryDecode_RecordedRuncExec_EveryRecordDecodes()
    {
        var decoder = new NodeEventDecoder();

        var events = DecodeFixture(decoder);

        Assert.Equal(24, events.Count);
        Assert.Equal(24, decoder.Counters.Decoded);
        Assert.Equal(0, decoder.Counters.Rejected);
        Assert.All(events, e => Assert.True(e.BootTimeNs > 0));
    }

    [Fact]
    public void TryDecode_RecordedRuncExec_ExecShowsRuncInitAsPreviousImage()
    {
        var events = DecodeFixture(new NodeEventDecoder());

        var exec = events.OfType<ExecEvent>().First();
        Assert.Equal("/bin/sh", exec.Filename);
        Assert.Equal(["sh", "-c", "cat /etc/hostname > /dev/null; nc 127.0.0.1 1 </dev/null; echo x > /tmp/f; exit 7"], exec.Argv);
        Assert.Equal("/tmp", exec.Cwd);
        Assert.Equal("sh", exec.Comm);
        Assert.Equal("runc:[2:INIT]", exec.PreviousComm);
        Assert.True(exec.PreviousImageWasRuntime);
        Assert.Equal(ContainerCgroupId, exec.CgroupId);
        Assert.Equal(exec.Tgid, exec.Tid);
        Assert.NotEqual(0u, exec.PidNamespaceInode);
        Assert.NotEqual(0ul, exec.StartBootTimeNs);
    }

    [Fact]
    public void TryDecode_RecordedRuncExec_ConnectOpenExitAndCgroupRecords()
    {
        var events = DecodeFixture(new NodeEventDecoder());
        var shell = events.OfType<ExecEvent>().First();

        var connect = Assert.Single(events.OfType<ConnectEvent>());
        Assert.Equal(SocketFamily.Inet, connect.Family);
        Assert.Equal(IPAddress.Loopback, connect.Address);
        Assert.Equal(1, connect.Port);
        Assert.Equal(-111, connect.Result); // ECONNREFUSED

        var write = Assert.Single(events.OfType<FileOpenEvent>(), o => o.Path == "/tmp/f");
        Assert.Equal(-30, write.Result); // EROFS: runc's default spec has a read-only rootfs
        Assert.Equal(shell.Tgid, write.Tgid);
        Assert.Contains(events.OfType<FileOpenEvent>(), o => o.Path == "/etc/hostname" && o.Result >= 0);

        var shellExit = Assert.Single(events.OfType<ExitEvent>(), e => e.Tgid == shell.Tgid);
        Assert.Equal(7, shellExit.ExitCode);
        Assert.Equal(shell.StartBootTimeNs, shellExit.StartBootTimeNs);

        var mkdir = Assert.Single(events.OfType<CgroupEvent>(), c => c.Kind == EventKind.CgroupMkdir);
        var rmdir = Assert.Single(events.OfType<CgroupEvent>(), c => c.Kind == EventKind.CgroupRmdir);
        Assert.Equal("/kubepods/besteffort/podkh0003/khsub", mkdir.Path);
        Assert.Equal(4, mkdir.Level);
        Assert.Equal(mkdir.TargetCgroupId, rmdir.TargetCgroupId);
        Assert.Equal(mkdir.Path, rmdir.Path);
    }

    [Fact]
    public void TryDecode_RecordedForks_ChildInheritsContainerCgroup()
    {
        var events = DecodeFixture(new NodeEventDecoder());

        var forks = events.OfType<ForkEvent>().ToList();
        Assert.NotEmpty(forks);
        Assert.All(forks, f => Assert.Equal(ContainerCgroupId, f.ChildCgroupId));
        Assert.All(forks, f => Assert.False(f.IsThread));
    }
}
