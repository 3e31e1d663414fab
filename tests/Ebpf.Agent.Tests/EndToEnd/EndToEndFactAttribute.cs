using Ebpf.Interop;
using Ebpf.Testing.Runc;

namespace Ebpf.Agent.Tests.EndToEnd;

/// <summary>
/// An end-to-end test: the real agent process with real BPF, runc and HTTP. Skipped with the reason when this machine
/// cannot run it (not root, no BTF, no runc/busybox, agent not built); with CI=true it always runs, and fails loudly.
/// </summary>
public sealed class EndToEndFactAttribute : FactAttribute
{
    public EndToEndFactAttribute()
    {
        if (string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
            return;
        var reason = UnavailableReason();
        if (reason is not null)
            Skip = reason;
    }

    public static string? UnavailableReason()
    {
        if (!OperatingSystem.IsLinux())
            return "the agent's kernel capture needs Linux";
        if (!File.Exists(KernelPreflight.BtfPath))
            return $"no kernel BTF at {KernelPreflight.BtfPath}";
        var missing = KernelPreflight.MissingCapabilities(File.ReadAllText("/proc/self/status"));
        if (missing.Count > 0)
            return "not root: missing " + string.Join(", ", missing);
        if (RuncContainer.UnavailableReason() is { } runc)
            return runc;
        if (!File.Exists(AgentProcess.AgentDll))
            return $"the agent is not built ({AgentProcess.AgentDll}); run dotnet build -c Release";
        return null;
    }
}

/// <summary>One agent at a time: each test starts its own, and the machine is shared.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class EndToEndCollection
{
    public const string Name = "end-to-end";
}
