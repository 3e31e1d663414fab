using System.Diagnostics;

namespace Ebpf.Events.Tests;

/// <summary>
/// A test that loads BPF programs: needs root, bpffs and the built object. Outside CI it is skipped when the machine
/// cannot run it; with CI=true it always runs and fails loudly.
/// </summary>
public sealed class KernelBpfFactAttribute : FactAttribute
{
    public KernelBpfFactAttribute()
    {
        if (RepoPaths.InCi)
            return;
        if (!Environment.IsPrivilegedProcess)
            Skip = "loading BPF programs needs root (CI=true makes this a failure)";
        else if (!File.Exists(RepoPaths.BpfObject))
            Skip = $"{RepoPaths.BpfObject} not built: run `make bpf` (CI=true makes this a failure)";
        else if (!Directory.Exists("/sys/fs/bpf"))
            Skip = "no /sys/fs/bpf on this machine (CI=true makes this a failure)";
    }
}

public sealed class KernelVerifierTests
{
    // bpftool opens the object with libbpf, applies the CO-RE relocations against /sys/kernel/btf/vmlinux and asks
    // the kernel verifier to accept every program: what the agent's load does, minus attaching.
    [KernelBpfFact]
    public void AgentObject_LoadAllOnRunningKernel_EveryProgramVerifies()
    {
        EnsureBpffs();
        var pinDir = $"/sys/fs/bpf/ebpf-events-tests-{Environment.ProcessId}-{Guid.NewGuid():N}";
        try
        {
            var (code, output) = Run(BtfTypes.FindBpftool(), "prog", "loadall", RepoPaths.BpfObject, pinDir);
            Assert.True(code == 0, $"bpftool prog loadall failed ({code}):\n{Tail(output)}");

            var pinned = Directory.GetFileSystemEntries(pinDir).Select(Path.GetFileName).Order();
            Assert.Equal(AgentObjectNames.Programs.Order(), pinned);
        }
        finally
        {
            if (Directory.Exists(pinDir))
            {
                foreach (var pin in Directory.GetFileSystemEntries(pinDir))
                    File.Delete(pin);
                Directory.Delete(pinDir);
            }
        }
    }

    private static void EnsureBpffs()
    {
        if (File.ReadAllText("/proc/mounts").Split('\n').Any(l => l.Split(' ') is [_, "/sys/fs/bpf", "bpf", ..]))
            return;
        var (code, output) = Run("mount", "-t", "bpf", "bpf", "/sys/fs/bpf");
        Assert.True(code == 0, $"bpffs is not mounted at /sys/fs/bpf and mounting it failed: {output}");
    }

    private static (int Code, string Output) Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout + stderr.Result);
    }

    // The verifier log of a rejected program is long; its end says why.
    private static string Tail(string s) => s.Length <= 4000 ? s : s[^4000..];
}
