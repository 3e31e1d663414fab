using Ebpf.Interop;
using Ebpf.Testing.Runc;

namespace Ebpf.Interop.Tests;

/// <summary>
/// A test that needs root, BTF and runc. Skipped with the reason when this machine cannot run it, except when
/// CI=true: then it always runs and fails loudly on whatever is missing.
/// </summary>
public sealed class KernelFactAttribute : FactAttribute
{
    public KernelFactAttribute()
    {
        if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
            return;
        var reason = KernelEnvironment.UnavailableReason();
        if (reason is not null)
            Skip = reason;
    }
}

public static class KernelEnvironment
{
    public static string? UnavailableReason()
    {
        if (!OperatingSystem.IsLinux())
            return "kernel capture needs Linux";
        if (!File.Exists(KernelPreflight.BtfPath))
            return $"no kernel BTF at {KernelPreflight.BtfPath}";
        var missing = KernelPreflight.MissingCapabilities(File.ReadAllText("/proc/self/status"));
        if (missing.Count > 0)
            return "not root: missing " + string.Join(", ", missing);
        return RuncContainer.UnavailableReason();
    }
}
