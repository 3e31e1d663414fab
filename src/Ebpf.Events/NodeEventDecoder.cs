using System.Net;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Ebpf.Events.Native;
using System.Text;

namespace Ebpf.Events;

/// <summary>Outcome of decoding one ring-buffer record.</summary>
public enum DecodeResult
{
    Ok = 0,
    /// <summary>Fewer bytes than the header, or than the fixed part of the record's kind.</summary>
    Short,
    /// <summary>A kind this decoder does not know (a newer producer, or garbage).</summary>
    UnknownKind,
    /// <summary>header.abi_version is not the one this decoder reads.</summary>
    UnsupportedVersion,
    /// <summary>header.size is below the header, beyond the sample, or the trailing lengths do not fit in it.</summary>
    SizeMismatch,
}

/// <summary>A snapshot of <see cref="NodeEventDecoder"/>'s counters.</summary>
public readonly record struct NodeEventDecoderCounters(
    long Decoded, long Short, long UnknownKind, long UnsupportedVersion, long SizeMismatch)
{
    public long Rejected => Short + UnknownKind + UnsupportedVersion + SizeMismatch;
}

/// <summary>
/// Decodes one record of the kernel ABI (bpf/include/events.h, docs/abi.md) into a <see cref="NodeEvent"/>.
/// Never throws on record content: every malformed record is reported by its <see cref="DecodeResult"/> and
/// counted. Thread-safe (counters use <see cref="Interlocked"/>). <see cref="NodeEvent.Time"/> is left unset.
/// </summary>
public sealed class NodeEventDecoder
{
    private const int HeaderSize = 32;

    // UTF8Encoding replaces invalid sequences with U+FFFD instead of throwing (throwOnInvalidBytes: false).
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false);

    private long _decoded;
    private long _short;
    private long _unknownKind;
    private long _unsupportedVersion;
    private long _sizeMismatch;

    public NodeEventDecoderCounters Counters => new(
        Interlocked.Read(ref _decoded),
        Interlocked.Read(ref _short),
        Interlocked.Read(ref _unknownKind),
        Interlocked.Read(ref _unsupportedVersion),
        Interlocked.Read(ref _sizeMismatch));

    /// <summary>
    /// Decodes <paramref name="record"/> (one ring-buffer sample; it may be longer than header.size).
    /// On anything but <see cref="DecodeResult.Ok"/>, <paramref name="nodeEvent"/> is null.
    /// </summary>
    public DecodeResult TryDecode(ReadOnlySpan<byte> record, out NodeEvent? nodeEvent)
    {
        var result = Decode(record, out nodeEvent);
        switch (result)
        {
            case DecodeResult.Ok: Interlocked.Increment(ref _decoded); break;
            case DecodeResult.Short: Interlocked.Increment(ref _short); break;
            case DecodeResult.UnknownKind: Interlocked.Increment(ref _unknownKind); break;
            case DecodeResult.UnsupportedVersion: Interlocked.Increment(ref _unsupportedVersion); break;
            default: Interlocked.Increment(ref _sizeMismatch); break;
        }
        return result;
    }

    private static DecodeResult Decode(ReadOnlySpan<byte> record, out NodeEvent? nodeEvent)
    {
        nodeEvent = null;
        if (record.Length < HeaderSize)
            return DecodeResult.Short;
        var header = MemoryMarshal.Read<EventHeaderRecord>(record);
        if (header.AbiVersion != (ushort)EventAbi.EventAbiVersion)
            return DecodeResult.UnsupportedVersion;
        if (header.Size < HeaderSize || header.Size > (uint)record.Length)
            return DecodeResult.SizeMismatch;
        var data = record[..(int)header.Size];

        return (EventKind)header.Kind switch
        {
            EventKind.Exec => DecodeExec(data, header, out nodeEvent),
            EventKind.Fork => DecodeFork(data, header, out nodeEvent),
            EventKind.Exit => DecodeExit(data, header, out nodeEvent),
            EventKind.Connect => DecodeConnect(data, header, out nodeEvent),
            EventKind.FileOpen => DecodeFileOpen(data, header, out nodeEvent),
            EventKind.CgroupMkdir or EventKind.CgroupRmdir => DecodeCgroup(data, header, out nodeEvent),
            _ => DecodeResult.UnknownKind,
        };
    }

    /// <summary>
    /// Reads the fixed part of a record. A newer producer may have appended fields: the prefix we know is read
    /// and the rest ignored. Trailing bytes start where the producer's fixed part ends, which is the record size
    /// minus the trailing lengths (docs/abi.md, Versioning).
    /// </summary>
    private static bool TryReadFixed<T>(ReadOnlySpan<byte> data, out T fixedPart) where T : unmanaged
    {
        if (data.Length < Unsafe.SizeOf<T>())
        {
            fixedPart = default;
            return false;
        }
        fixedPart = MemoryMarshal.Read<T>(data);
        return true;
    }

    private static bool TryTrailing(ReadOnlySpan<byte> data, int knownFixedSize, int trailingLength, out ReadOnlySpan<byte> trailing)
    {
        var producerFixedSize = data.Length - trailingLength;
        if (producerFixedSize < knownFixedSize)
        {
            trailing = default;
            return false;
        }
        trailing = data[producerFixedSize..];
        return true;
    }

    private static DecodeResult DecodeExec(ReadOnlySpan<byte> data, in EventHeaderRecord h, out NodeEvent? nodeEvent)
    {
        nodeEvent = null;
        if (!TryReadFixed<ExecRecord>(data, out var r))
            return DecodeResult.Short;
        int filenameLen = r.FilenameLen, argvLen = r.ArgvLen, cwdLen = r.CwdLen;
        if (!TryTrailing(data, Unsafe.SizeOf<ExecRecord>(), filenameLen + argvLen + cwdLen, out var trailing))
            return DecodeResult.SizeMismatch;

        var flags = (ExecFlags)r.Flags;
        var prevKnown = (flags & ExecFlags.PrevCommKnown) != 0;
        nodeEvent = new ExecEvent
        {
            BootTimeNs = h.BootNs,
            CgroupId = h.CgroupId,
            Tgid = (int)h.Tgid,
            Tid = (int)h.Tid,
            ParentTgid = (int)r.Ppid,
            Uid = r.Uid,
            Gid = r.Gid,
            LoginUid = r.Loginuid,
            StartBootTimeNs = r.StartBoottime,
            Filename = CString(trailing[..filenameLen]),
            Argv = SplitArgv(trailing.Slice(filenameLen, argvLen)),
            ArgvTruncated = (flags & ExecFlags.ArgvTruncated) != 0,
            ArgvOriginalLength = (int)Math.Min(r.ArgvOriginalLen, int.MaxValue),
            Cwd = CString(trailing.Slice(filenameLen + argvLen, cwdLen)),
            Comm = CString(r.Comm),
            PreviousComm = prevKnown ? CString(r.PrevComm) : "",
            PreviousImageWasRuntime = (flags & ExecFlags.PrevRuntime) != 0,
            PidNamespaceInode = r.PidNsInum,
            MountNamespaceInode = r.MntNsInum,
        };
        return DecodeResult.Ok;
    }

    private static DecodeResult DecodeFork(ReadOnlySpan<byte> data, in EventHeaderRecord h, out NodeEvent? nodeEvent)
    {
        nodeEvent = null;
        if (!TryReadFixed<ForkRecord>(data, out var r))
            return DecodeResult.Short;
        nodeEvent = new ForkEvent
        {
            BootTimeNs = h.BootNs,
            CgroupId = h.CgroupId,
            Tgid = (int)h.Tgid,
            Tid = (int)h.Tid,
            ParentTgid = (int)r.ParentTgid,
            ParentPid = (int)r.ParentPid,
            ChildTgid = (int)r.ChildTgid,
            ChildPid = (int)r.ChildPid,
            ChildStartBootTimeNs = r.ChildStartBoottime,
            ChildCgroupId = r.ChildCgroupId,
        };
        return DecodeResult.Ok;
    }

    private static DecodeResult DecodeExit(ReadOnlySpan<byte> data, in EventHeaderRecord h, out NodeEvent? nodeEvent)
    {
        nodeEvent = null;
        if (!TryReadFixed<ExitRecord>(data, out var r))
            return DecodeResult.Short;
        nodeEvent = new ExitEvent
        {
            BootTimeNs = h.BootNs,
            CgroupId = h.CgroupId,
            Tgid = (int)h.Tgid,
            Tid = (int)h.Tid,
            WaitStatus = r.ExitCode,
            GroupDead = r.GroupDead != 0,
            StartBootTimeNs = r.StartBoottime,
        };
        return DecodeResult.Ok;
    }

    private static DecodeResult DecodeConnect(ReadOnlySpan<byte> data, in EventHeaderRecord h, out NodeEvent? nodeEvent)
    {
        nodeEvent = null;
        if (!TryReadFixed<ConnectRecord>(data, out var r))
            return DecodeResult.Short;
        var family = (SocketFamily)r.Family;
        ReadOnlySpan<byte> addr = r.Addr;
        IPAddress? address = family switch
        {
            SocketFamily.Inet => new IPAddress(addr[..4]),
            SocketFamily.Inet6 => new IPAddress(addr),
            _ => null,
        };
        var unixPath = family == SocketFamily.Unix
            ? UnixPath(((ReadOnlySpan<byte>)r.UnixPath)[..Math.Min((int)r.UnixPathLen, (int)EventCaps.UnixPathCap)])
            : "";
        nodeEvent = new ConnectEvent
        {
            BootTimeNs = h.BootNs,
            CgroupId = h.CgroupId,
            Tgid = (int)h.Tgid,
            Tid = (int)h.Tid,
            Family = family,
            Address = address,
            Port = family is SocketFamily.Inet or SocketFamily.Inet6 ? r.Port : (ushort)0,
            UnixPath = unixPath,
            Fd = r.Fd,
            Result = r.Result,
        };
        return DecodeResult.Ok;
    }

    private static DecodeResult DecodeFileOpen(ReadOnlySpan<byte> data, in EventHeaderRecord h, out NodeEvent? nodeEvent)
    {
        nodeEvent = null;
        if (!TryReadFixed<FileOpenRecord>(data, out var r))
            return DecodeResult.Short;
        if (!TryTrailing(data, Unsafe.SizeOf<FileOpenRecord>(), r.PathLen, out var path))
            return DecodeResult.SizeMismatch;
        nodeEvent = new FileOpenEvent
        {
            BootTimeNs = h.BootNs,
            CgroupId = h.CgroupId,
            Tgid = (int)h.Tgid,
            Tid = (int)h.Tid,
            Path = CString(path),
            PathTruncated = ((FileOpenFlags)r.FileFlags & FileOpenFlags.PathTruncated) != 0,
            DirFd = r.Dirfd,
            Flags = r.Flags,
            Mode = (int)r.Mode,
            Result = r.Result,
        };
        return DecodeResult.Ok;
    }

    private static DecodeResult DecodeCgroup(ReadOnlySpan<byte> data, in EventHeaderRecord h, out NodeEvent? nodeEvent)
    {
        nodeEvent = null;
        if (!TryReadFixed<CgroupRecord>(data, out var r))
            return DecodeResult.Short;
        if (!TryTrailing(data, Unsafe.SizeOf<CgroupRecord>(), r.PathLen, out var path))
            return DecodeResult.SizeMismatch;
        nodeEvent = new CgroupEvent((EventKind)h.Kind)
        {
            BootTimeNs = h.BootNs,
            CgroupId = h.CgroupId,
            Tgid = (int)h.Tgid,
            Tid = (int)h.Tid,
            TargetCgroupId = r.TargetCgroupId,
            Level = (int)Math.Min(r.Level, int.MaxValue),
            Path = CString(path),
        };
        return DecodeResult.Ok;
    }

    /// <summary>The bytes up to the first NUL (or all of them), as UTF-8 with U+FFFD for invalid sequences.</summary>
    private static string CString(ReadOnlySpan<byte> bytes)
    {
        var nul = bytes.IndexOf((byte)0);
        if (nul >= 0)
            bytes = bytes[..nul];
        return bytes.IsEmpty ? "" : Utf8.GetString(bytes);
    }

    /// <summary>
    /// The NUL-separated block of mm->arg_start..arg_end. Each argument ends with a NUL; a truncated block's
    /// last argument may not, and is kept as it is.
    /// </summary>
    private static string[] SplitArgv(ReadOnlySpan<byte> block)
    {
        if (block.IsEmpty)
            return [];
        if (block[^1] == 0)
            block = block[..^1];
        var count = block.Count((byte)0) + 1;
        var argv = new string[count];
        for (var i = 0; i < count; i++)
        {
            var nul = block.IndexOf((byte)0);
            var arg = nul >= 0 ? block[..nul] : block;
            argv[i] = arg.IsEmpty ? "" : Utf8.GetString(arg);
            block = nul >= 0 ? block[(nul + 1)..] : default;
        }
        return argv;
    }

    /// <summary>
    /// sun_path as connect(2) received it: a leading NUL marks an abstract name (shown with '@', as ss and
    /// /proc/net/unix do), whose bytes all count; a filesystem path ends at its first NUL.
    /// </summary>
    private static string UnixPath(ReadOnlySpan<byte> sunPath)
    {
        if (sunPath.IsEmpty)
            return "";
        if (sunPath[0] != 0)
            return CString(sunPath);
        var name = sunPath[1..].TrimEnd((byte)0);
        return "@" + Utf8.GetString(name);
    }
}
