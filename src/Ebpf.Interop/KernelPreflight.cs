using System.Globalization;
using System.Runtime.InteropServices;
using Ebpf.Interop.Native;

namespace Ebpf.Interop;

/// <summary>One preflight finding: what is missing and how to fix it.</summary>
public sealed record PreflightProblem(string Check, string Message);

/// <summary>
/// Checks that this host and process can load and attach the agent's programs, with messages that say what to do.
/// Tracepoint attachment goes through tracefs (libbpf reads the tracepoint id from
/// /sys/kernel/tracing/events/&lt;category&gt;/&lt;name&gt;/id), so a missing tracefs mount is fixed by mounting it.
/// </summary>
public static unsafe class KernelPreflight
{
    public const string BtfPath = "/sys/kernel/btf/vmlinux";
    public const string TracefsPath = "/sys/kernel/tracing";

    // include/uapi/linux/capability.h
    private const int CapSysAdmin = 21;
    private const int CapPerfmon = 38;
    private const int CapBpf = 39;

    /// <summary>Runs every check; an empty list means the capture can start. Tries to mount tracefs when absent.</summary>
    public static IReadOnlyList<PreflightProblem> Run(bool mountTracefs = true)
    {
        var problems = new List<PreflightProblem>();
        if (!File.Exists(BtfPath))
            problems.Add(new("btf", $"Kernel BTF is missing ({BtfPath}): CO-RE programs cannot be relocated. Use a kernel built with CONFIG_DEBUG_INFO_BTF=y."));

        var missing = MissingCapabilities(File.Exists("/proc/self/status") ? File.ReadAllText("/proc/self/status") : "");
        if (missing.Count > 0)
            problems.Add(new("capabilities", $"Missing capabilities: {string.Join(", ", missing)}. Run as root or grant CAP_BPF and CAP_PERFMON (kernel >= 5.8), or CAP_SYS_ADMIN."));

        var tracefs = EnsureTracefs(mountTracefs);
        if (tracefs is not null)
            problems.Add(new("tracefs", tracefs));

        var probe = LibBpf.libbpf_probe_bpf_map_type(LibBpf.BPF_MAP_TYPE_RINGBUF, null);
        if (probe == 0)
            problems.Add(new("ringbuf", "The kernel does not support BPF ring buffers (BPF_MAP_TYPE_RINGBUF, Linux >= 5.8)."));
        else if (probe < 0 && missing.Count == 0)
            problems.Add(new("ringbuf", $"Probing BPF ring buffer support failed: {Marshal.GetPInvokeErrorMessage(-probe)} (errno {-probe})."));
        return problems;
    }

    /// <summary>Throws <see cref="InvalidOperationException"/> listing every problem when any check fails.</summary>
    public static void ThrowIfNotReady(bool mountTracefs = true)
    {
        var problems = Run(mountTracefs);
        if (problems.Count > 0)
            throw new InvalidOperationException("Kernel capture cannot start:" + string.Concat(problems.Select(p => Environment.NewLine + " - " + p.Message)));
    }

    /// <summary>
    /// Capabilities missing from CapEff in a /proc/&lt;pid&gt;/status text. CAP_SYS_ADMIN alone also suffices
    /// (it implied BPF and perf before 5.8 split them out).
    /// </summary>
    public static IReadOnlyList<string> MissingCapabilities(string procStatus)
    {
        var line = procStatus.Split('\n').FirstOrDefault(l => l.StartsWith("CapEff:", StringComparison.Ordinal));
        if (line is null || !ulong.TryParse(line["CapEff:".Length..].Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var capEff))
            return ["CapEff unreadable in /proc/self/status"];
        bool Has(int cap) => (capEff & (1UL << cap)) != 0;
        if (Has(CapBpf) && Has(CapPerfmon))
            return [];
        if (Has(CapSysAdmin))
            return [];
        var missing = new List<string>();
        if (!Has(CapBpf))
            missing.Add("CAP_BPF");
        if (!Has(CapPerfmon))
            missing.Add("CAP_PERFMON");
        return missing;
    }

    /// <summary>Null when tracefs is usable (already mounted, or mounted now); else what to do.</summary>
    public static string? EnsureTracefs(bool mount)
    {
        if (Directory.Exists(Path.Combine(TracefsPath, "events")))
            return null;
        if (!Directory.Exists(TracefsPath))
            return $"{TracefsPath} does not exist: the kernel lacks CONFIG_TRACING or sysfs is not mounted.";
        if (mount)
        {
            if (LibC.mount("tracefs", TracefsPath, "tracefs", 0, IntPtr.Zero) == 0 || Directory.Exists(Path.Combine(TracefsPath, "events")))
                return null;
            var errno = Marshal.GetLastPInvokeError();
            return $"tracefs is not mounted at {TracefsPath} and mounting it failed ({Marshal.GetPInvokeErrorMessage(errno)}). Run `mount -t tracefs tracefs {TracefsPath}` as root (or mount it into the agent's container).";
        }
        return $"tracefs is not mounted at {TracefsPath}. Run `mount -t tracefs tracefs {TracefsPath}` as root.";
    }
}
