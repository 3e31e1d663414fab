using System.Globalization;
using System.Text;
using Ebpf.Core.Processes;
using Ebpf.Interop;
using Ebpf.Kubernetes.Cgroups;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ebpf.Kubernetes.Processes;

/// <summary>
/// Reads the processes running now from /proc, to seed the process table before kernel records take over.
/// Every file can vanish mid-scan (the process exits) or be odd (kernel threads have no exe or cmdline):
/// such processes are skipped or read partially, and counted.
/// </summary>
public sealed partial class ProcScanner
{
    /// <summary>Longest cmdline read; longer ones are cut (the kernel's own limit is much larger).</summary>
    public const int MaxCmdlineBytes = 64 * 1024;

    private readonly string _procRoot;
    private readonly string? _cgroupMount;
    private readonly ILogger _logger;
    private long _skipped;

    /// <param name="cgroupMount">The cgroup v2 mount (CgroupHierarchy.MountPoint) to resolve ids; null: ids stay 0.</param>
    public ProcScanner(string procRoot = "/proc", string? cgroupMount = null, ILogger<ProcScanner>? logger = null)
    {
        _procRoot = procRoot;
        _cgroupMount = cgroupMount;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    /// <summary>Processes skipped because they vanished or their stat was malformed.</summary>
    public long Skipped => Interlocked.Read(ref _skipped);

    public IReadOnlyList<ProcessSeed> Scan() => Scan(EnumeratePids());

    public IReadOnlyList<ProcessSeed> Scan(IEnumerable<int> pids)
    {
        var bootTime = ReadBootTime();
        var cgroupIds = new Dictionary<string, ulong>(StringComparer.Ordinal);
        var result = new List<ProcessSeed>();
        foreach (var pid in pids)
        {
            var seed = TryRead(pid, bootTime, cgroupIds);
            if (seed is null) Interlocked.Increment(ref _skipped);
            else result.Add(seed);
        }
        return result;
    }

    public ProcessSeed? TryRead(int pid) => TryRead(pid, ReadBootTime(), new Dictionary<string, ulong>(StringComparer.Ordinal));

    private ProcessSeed? TryRead(int pid, DateTimeOffset? bootTime, Dictionary<string, ulong> cgroupIds)
    {
        string dir = Path.Combine(_procRoot, pid.ToString(CultureInfo.InvariantCulture));
        string? stat = ReadText(Path.Combine(dir, "stat"), 4096);
        if (stat is null) return null;
        if (!TryParseStat(stat, out int ppid, out ulong startTicks))
        {
            LogMalformedStat(_logger, pid);
            return null;
        }
        string cgroupPath = ParseCgroupV2Path(ReadText(Path.Combine(dir, "cgroup"), 64 * 1024));
        ulong cgroupId = 0;
        if (_cgroupMount is not null && cgroupPath.Length > 0 && !cgroupIds.TryGetValue(cgroupPath, out cgroupId))
        {
            cgroupId = CgroupV2.TryGetCgroupId(_cgroupMount + (cgroupPath == "/" ? "" : cgroupPath));
            cgroupIds[cgroupPath] = cgroupId;
        }
        return new ProcessSeed
        {
            Tgid = pid,
            ParentTgid = ppid,
            StartTicks = startTicks,
            Exe = ReadLink(Path.Combine(dir, "exe")),
            Cwd = ReadLink(Path.Combine(dir, "cwd")),
            Argv = ParseCmdline(ReadBytes(Path.Combine(dir, "cmdline"), MaxCmdlineBytes)),
            Uid = ParseUid(ReadText(Path.Combine(dir, "status"), 64 * 1024)),
            CgroupPath = cgroupPath,
            CgroupId = cgroupId,
            StartTime = bootTime?.AddTicks((long)startTicks * (TimeSpan.TicksPerSecond / 100)),
        };
    }

    /// <summary>
    /// Parses /proc/&lt;pid&gt;/stat: ppid is field 4, starttime field 22 (proc(5)). comm (field 2) is in
    /// parentheses and may itself contain spaces and ')', so fields are counted from the last ')'.
    /// </summary>
    public static bool TryParseStat(ReadOnlySpan<char> stat, out int ppid, out ulong startTicks)
    {
        ppid = 0;
        startTicks = 0;
        int close = stat.LastIndexOf(')');
        if (close < 0) return false;
        var rest = stat[(close + 1)..];
        int field = 2;
        foreach (var range in rest.Split(' '))
        {
            var token = rest[range];
            if (token.IsEmpty) continue;
            field++;
            if (field == 4 && !int.TryParse(token, NumberStyles.None, CultureInfo.InvariantCulture, out ppid)) return false;
            if (field == 22) return ulong.TryParse(token, NumberStyles.None, CultureInfo.InvariantCulture, out startTicks);
        }
        return false;
    }

    /// <summary>The "0::&lt;path&gt;" line of /proc/&lt;pid&gt;/cgroup (the v2 hierarchy), "" when absent.</summary>
    public static string ParseCgroupV2Path(string? cgroupFile)
    {
        if (cgroupFile is null) return "";
        foreach (var line in cgroupFile.Split('\n'))
            if (line.StartsWith("0::", StringComparison.Ordinal)) return line[3..].TrimEnd();
        return "";
    }

    /// <summary>cmdline is NUL-separated with a trailing NUL (processes may rewrite it; then anything goes).</summary>
    public static IReadOnlyList<string> ParseCmdline(byte[]? bytes)
    {
        if (bytes is null || bytes.Length == 0) return [];
        var span = bytes.AsSpan();
        if (span[^1] == 0) span = span[..^1];
        var args = new List<string>();
        foreach (var range in span.Split((byte)0)) args.Add(Encoding.UTF8.GetString(span[range]));
        return args;
    }

    private static uint ParseUid(string? status)
    {
        if (status is null) return 0;
        foreach (var line in status.Split('\n'))
        {
            if (!line.StartsWith("Uid:", StringComparison.Ordinal)) continue;
            var parts = line[4..].Split('\t', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            return parts.Length > 0 && uint.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var uid) ? uid : 0;
        }
        return 0;
    }

    private DateTimeOffset? ReadBootTime()
    {
        var stat = ReadText(Path.Combine(_procRoot, "stat"), 1 << 20);
        if (stat is null) return null;
        foreach (var line in stat.Split('\n'))
            if (line.StartsWith("btime ", StringComparison.Ordinal)
                && long.TryParse(line.AsSpan(6).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var seconds))
                return DateTimeOffset.FromUnixTimeSeconds(seconds);
        return null;
    }

    private IEnumerable<int> EnumeratePids()
    {
        foreach (var entry in Directory.EnumerateDirectories(_procRoot))
            if (int.TryParse(Path.GetFileName(entry.AsSpan()), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
                yield return pid;
    }

    private static string? ReadText(string path, int maxBytes)
    {
        var bytes = ReadBytes(path, maxBytes);
        return bytes is null ? null : Encoding.UTF8.GetString(bytes);
    }

    private static byte[]? ReadBytes(string path, int maxBytes)
    {
        try
        {
            // procfs reports size 0: read until EOF, never trusting the length.
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.None);
            var buffer = new byte[Math.Min(maxBytes, 4096)];
            int total = 0;
            while (true)
            {
                if (total == buffer.Length)
                {
                    if (buffer.Length >= maxBytes) break;
                    Array.Resize(ref buffer, Math.Min(maxBytes, buffer.Length * 2));
                }
                int read = stream.Read(buffer, total, buffer.Length - total);
                if (read == 0) break;
                total += read;
            }
            return buffer[..total];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static string ReadLink(string path)
    {
        try
        {
            return new FileInfo(path).LinkTarget ?? "";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "";
        }
    }

    [LoggerMessage(EventId = 2200, Level = LogLevel.Debug, Message = "skipping pid {Pid}: malformed /proc/<pid>/stat")]
    private static partial void LogMalformedStat(ILogger logger, int pid);
}
