using System.Net;
using static Ebpf.Events.Tests.RecordBuilder;

namespace Ebpf.Events.Tests;

public sealed class NodeEventDecoderTests
{
    private readonly NodeEventDecoder _decoder = new();

    private T DecodeOk<T>(byte[] record) where T : NodeEvent
    {
        var result = _decoder.TryDecode(record, out var ev);
        Assert.Equal(DecodeResult.Ok, result);
        var typed = Assert.IsType<T>(ev);
        Assert.Equal(BootNs, typed.BootTimeNs);
        Assert.Equal(CgroupId, typed.CgroupId);
        Assert.Equal((int)Tgid, typed.Tgid);
        Assert.Equal((int)Tid, typed.Tid);
        Assert.Equal(default, typed.Time);
        return typed;
    }

    private DecodeResult Reject(byte[] record)
    {
        var result = _decoder.TryDecode(record, out var ev);
        Assert.Null(ev);
        return result;
    }

    [Fact]
    public void TryDecode_ExecAfterRuncInit_AllFieldsDecoded()
    {
        var record = Exec(Utf8("/bin/cat"), Utf8("cat\0/etc/hostname\0\0last\0"), Utf8("/work"), comm: "cat");

        var ev = DecodeOk<ExecEvent>(record);

        Assert.Equal(EventKind.Exec, ev.Kind);
        Assert.Equal(3000, ev.ParentTgid);
        Assert.Equal(1000u, ev.Uid);
        Assert.Equal(1001u, ev.Gid);
        Assert.Equal(uint.MaxValue, ev.LoginUid);
        Assert.Equal(777_000_000ul, ev.StartBootTimeNs);
        Assert.Equal(4026532001u, ev.PidNamespaceInode);
        Assert.Equal(4026532002u, ev.MountNamespaceInode);
        Assert.Equal("/bin/cat", ev.Filename);
        Assert.Equal(["cat", "/etc/hostname", "", "last"], ev.Argv);
        Assert.False(ev.ArgvTruncated);
        Assert.Equal(24, ev.ArgvOriginalLength);
        Assert.Equal("/work", ev.Cwd);
        Assert.Equal("cat", ev.Comm);
        Assert.Equal("runc:[2:INIT]", ev.PreviousComm);
        Assert.True(ev.PreviousImageWasRuntime);
    }

    [Fact]
    public void TryDecode_ExecArgvTruncated_LastArgumentKeptWithoutNul()
    {
        var record = Exec(Utf8("/usr/bin/env"), Utf8("env\0AAAA"), flags: 0x1 | 0x10, argvOriginalLen: 9000, comm: "env", prevComm: "bash");

        var ev = DecodeOk<ExecEvent>(record);

        Assert.Equal(["env", "AAAA"], ev.Argv);
        Assert.True(ev.ArgvTruncated);
        Assert.Equal(9000, ev.ArgvOriginalLength);
        Assert.Equal("bash", ev.PreviousComm);
        Assert.False(ev.PreviousImageWasRuntime);
        Assert.Equal("", ev.Cwd);
    }

    [Fact]
    public void TryDecode_ExecWithoutPrevCommStash_PreviousCommEmpty()
    {
        var record = Exec(Utf8("/bin/true"), Utf8("true\0"), prevComm: "stale-bytes", flags: 0);

        var ev = DecodeOk<ExecEvent>(record);

        Assert.Equal("", ev.PreviousComm);
        Assert.False(ev.PreviousImageWasRuntime);
    }

    [Fact]
    public void TryDecode_ExecFromNewerProducerWithLargerFixedPart_DecodedFromKnownPrefix()
    {
        // A same-version producer that appended 8 bytes of new fields: trailing data moves behind them.
        var record = Exec(Utf8("/bin/ls"), Utf8("ls\0-l\0"), fixedSize: 120, comm: "ls");

        var ev = DecodeOk<ExecEvent>(record);

        Assert.Equal("/bin/ls", ev.Filename);
        Assert.Equal(["ls", "-l"], ev.Argv);
        Assert.Equal("ls", ev.Comm);
    }

    [Fact]
    public void TryDecode_CommFillingItsWholeArray_DecodedWithoutNul()
    {
        var record = Exec(Utf8("/x"), [], comm: "0123456789abcdef", prevComm: "fedcba9876543210");

        var ev = DecodeOk<ExecEvent>(record);

        Assert.Equal("0123456789abcdef", ev.Comm);
        Assert.Equal("fedcba9876543210", ev.PreviousComm);
        Assert.Empty(ev.Argv);
    }

    [Fact]
    public void TryDecode_NonUtf8Strings_ReplacedNotThrown()
    {
        var record = Exec([0x2f, 0xff, 0xfe, 0x41], [0xc3, 0x28, 0]);

        var ev = DecodeOk<ExecEvent>(record);

        Assert.Equal("/\uFFFD\uFFFDA", ev.Filename);
        Assert.Equal(["\uFFFD("], ev.Argv);
    }

    [Fact]
    public void TryDecode_Fork_ThreadRecognised()
    {
        var ev = DecodeOk<ForkEvent>(Fork(3100, 3101, 3100, 3150, 888, 9999));

        Assert.Equal(3100, ev.ParentTgid);
        Assert.Equal(3101, ev.ParentPid);
        Assert.Equal(3100, ev.ChildTgid);
        Assert.Equal(3150, ev.ChildPid);
        Assert.Equal(888ul, ev.ChildStartBootTimeNs);
        Assert.Equal(9999ul, ev.ChildCgroupId);
        Assert.True(ev.IsThread);
    }

    [Fact]
    public void TryDecode_ExitWithCode3_WaitStatusAndExitCode()
    {
        var ev = DecodeOk<ExitEvent>(Exit(0x300, 1, 555));

        Assert.Equal(0x300, ev.WaitStatus);
        Assert.Equal(3, ev.ExitCode);
        Assert.Null(ev.TermSignal);
        Assert.True(ev.GroupDead);
        Assert.Equal(555ul, ev.StartBootTimeNs);
    }

    [Fact]
    public void TryDecode_ExitKilledBySigkill_TermSignal()
    {
        var ev = DecodeOk<ExitEvent>(Exit(9, 1, 1));

        Assert.Equal(9, ev.TermSignal);
        Assert.Null(ev.ExitCode);
    }

    [Fact]
    public void TryDecode_ConnectIpv4InProgress_AddressPortResult()
    {
        var ev = DecodeOk<ConnectEvent>(Connect(3, -115, 2, 8080, [10, 96, 0, 1]));

        Assert.Equal(SocketFamily.Inet, ev.Family);
        Assert.Equal(IPAddress.Parse("10.96.0.1"), ev.Address);
        Assert.Equal(8080, ev.Port);
        Assert.Equal(3, ev.Fd);
        Assert.Equal(-115, ev.Result);
        Assert.Equal("", ev.UnixPath);
    }

    [Fact]
    public void TryDecode_ConnectIpv6_Address()
    {
        var ev = DecodeOk<ConnectEvent>(Connect(4, 0, 10, 443, IPAddress.Parse("fd00::1").GetAddressBytes()));

        Assert.Equal(IPAddress.Parse("fd00::1"), ev.Address);
        Assert.Equal(443, ev.Port);
    }

    [Fact]
    public void TryDecode_ConnectUnixPathWithNul_PathUpToNul()
    {
        var ev = DecodeOk<ConnectEvent>(Connect(5, -2, 1, 0, new byte[16], Utf8("/run/containerd/containerd.sock\0")));

        Assert.Equal(SocketFamily.Unix, ev.Family);
        Assert.Null(ev.Address);
        Assert.Equal(0, ev.Port);
        Assert.Equal("/run/containerd/containerd.sock", ev.UnixPath);
    }

    [Fact]
    public void TryDecode_ConnectAbstractUnix_AtPrefix()
    {
        var ev = DecodeOk<ConnectEvent>(Connect(5, -111, 1, 0, new byte[16], Utf8("\0abstractname")));

        Assert.Equal("@abstractname", ev.UnixPath);
    }

    [Fact]
    public void TryDecode_ConnectUnixPathLengthBeyondCap_ClampedToSunPath()
    {
        var record = Connect(5, 0, 1, 0, new byte[16], Utf8(new string('a', 108)));
        U16(record, 44, 4000);

        var ev = DecodeOk<ConnectEvent>(record);

        Assert.Equal(new string('a', 108), ev.UnixPath);
    }

    [Fact]
    public void TryDecode_FileOpenFailed_PathFlagsResult()
    {
        var ev = DecodeOk<FileOpenEvent>(FileOpen(Utf8("etc/shadow"), 7, 0x80000, 0, -13));

        Assert.Equal("etc/shadow", ev.Path);
        Assert.False(ev.IsAbsolute);
        Assert.Equal(7, ev.DirFd);
        Assert.Equal(0x80000, ev.Flags);
        Assert.Equal(0, ev.Mode);
        Assert.Equal(-13, ev.Result);
        Assert.False(ev.PathTruncated);
    }

    [Fact]
    public void TryDecode_FileOpenTruncatedPath_FlagSet()
    {
        var ev = DecodeOk<FileOpenEvent>(FileOpen(Utf8("/" + new string('p', 510)), -100, 0x241, 0x1b6, 3, fileFlags: 1));

        Assert.True(ev.PathTruncated);
        Assert.Equal(511, ev.Path.Length);
        Assert.Equal(0x1b6, ev.Mode);
        Assert.Equal(-100, ev.DirFd);
    }

    [Theory]
    [InlineData(EventKind.CgroupMkdir)]
    [InlineData(EventKind.CgroupRmdir)]
    public void TryDecode_Cgroup_KindIdLevelPath(EventKind kind)
    {
        var path = "/kubepods/besteffort/pod0a1b/" + new string('c', 64);

        var ev = DecodeOk<CgroupEvent>(Cgroup((ushort)kind, 123456, 4, Utf8(path)));

        Assert.Equal(kind, ev.Kind);
        Assert.Equal(123456ul, ev.TargetCgroupId);
        Assert.Equal(4, ev.Level);
        Assert.Equal(path, ev.Path);
    }

    [Fact]
    public void TryDecode_SampleLongerThanSize_DecodesSizeBytesOnly()
    {
        var record = FileOpen(Utf8("/a"), -100, 0, 0, 3);
        var padded = new byte[record.Length + 8];
        record.CopyTo(padded, 0);
        padded[^1] = 0x41;

        var ev = DecodeOk<FileOpenEvent>(padded);

        Assert.Equal("/a", ev.Path);
    }

    [Fact]
    public void TryDecode_ShorterThanHeader_Short()
    {
        Assert.Equal(DecodeResult.Short, Reject(new byte[31]));
        Assert.Equal(DecodeResult.Short, Reject([]));
    }

    [Fact]
    public void TryDecode_ShorterThanFixedPart_Short()
    {
        var record = Header(1, 80); // exec needs 112

        Assert.Equal(DecodeResult.Short, Reject(record));
    }

    [Fact]
    public void TryDecode_UnknownKind_UnknownKind()
    {
        Assert.Equal(DecodeResult.UnknownKind, Reject(Header(99, 64)));
        Assert.Equal(DecodeResult.UnknownKind, Reject(Header(0, 64)));
    }

    [Fact]
    public void TryDecode_OtherAbiVersion_UnsupportedVersion()
    {
        Assert.Equal(DecodeResult.UnsupportedVersion, Reject(Header(2, 64, version: 2)));
        Assert.Equal(DecodeResult.UnsupportedVersion, Reject(Header(2, 64, version: 0)));
    }

    [Fact]
    public void TryDecode_SizeFieldBeyondSample_SizeMismatch()
    {
        Assert.Equal(DecodeResult.SizeMismatch, Reject(Header(2, 64, size: 65)));
        Assert.Equal(DecodeResult.SizeMismatch, Reject(Header(2, 64, size: uint.MaxValue)));
    }

    [Fact]
    public void TryDecode_SizeFieldBelowHeader_SizeMismatch()
    {
        Assert.Equal(DecodeResult.SizeMismatch, Reject(Header(2, 64, size: 31)));
        Assert.Equal(DecodeResult.SizeMismatch, Reject(Header(2, 64, size: 0)));
    }

    [Fact]
    public void TryDecode_TrailingLengthsBeyondRecord_SizeMismatch()
    {
        var exec = Exec(Utf8("/bin/sh"), Utf8("sh\0"));
        U16(exec, 74, 5000); // argv_len
        var open = FileOpen(Utf8("/etc/passwd"), -100, 0, 0, 3);
        U16(open, 48, 12);   // path_len one more than present

        Assert.Equal(DecodeResult.SizeMismatch, Reject(exec));
        Assert.Equal(DecodeResult.SizeMismatch, Reject(open));
    }

    [Fact]
    public void Counters_MixedRecords_CountEachOutcome()
    {
        _decoder.TryDecode(Fork(1, 1, 2, 2, 3, 4), out _);
        _decoder.TryDecode(Exit(0, 1, 1), out _);
        _decoder.TryDecode(new byte[3], out _);
        _decoder.TryDecode(Header(42, 40), out _);
        _decoder.TryDecode(Header(2, 64, version: 9), out _);
        _decoder.TryDecode(Header(2, 64, size: 1000), out _);
        _decoder.TryDecode(Header(2, 64, size: 1000), out _);

        Assert.Equal(new NodeEventDecoderCounters(2, 1, 1, 1, 2), _decoder.Counters);
        Assert.Equal(5, _decoder.Counters.Rejected);
    }

    [Fact]
    public void Counters_ParallelDecoders_NoLostIncrements()
    {
        var good = Fork(1, 1, 2, 2, 3, 4);
        var bad = Header(42, 40);

        Parallel.For(0, 20_000, i => _decoder.TryDecode(i % 2 == 0 ? good : bad, out _));

        Assert.Equal(10_000, _decoder.Counters.Decoded);
        Assert.Equal(10_000, _decoder.Counters.UnknownKind);
    }

    [Fact]
    public void TryDecode_RandomBytes_NeverThrows()
    {
        var random = new Random(20261122);
        var kinds = new[] { 1, 2, 3, 4, 5, 6, 7 };
        for (var i = 0; i < 50_000; i++)
        {
            var buffer = new byte[random.Next(0, 700)];
            random.NextBytes(buffer);
            if (buffer.Length >= 32 && i % 2 == 0)
            {
                // Mostly-valid headers so the per-kind paths see hostile lengths too.
                U16(buffer, 0, (ushort)kinds[random.Next(kinds.Length)]);
                U16(buffer, 2, 1);
                U32(buffer, 4, (uint)random.Next(0, buffer.Length + 1));
            }

            var result = _decoder.TryDecode(buffer, out var ev);

            Assert.Equal(result == DecodeResult.Ok, ev is not null);
        }
        Assert.True(_decoder.Counters.Decoded > 0);
        Assert.Equal(50_000, _decoder.Counters.Decoded + _decoder.Counters.Rejected);
    }
}
