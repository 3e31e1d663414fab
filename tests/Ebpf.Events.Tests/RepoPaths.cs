namespace Ebpf.Events.Tests;

internal static class RepoPaths
{
    /// <summary>The repository root: the first directory above the test binaries that holds Ebpf.sln.</summary>
    public static string Root { get; } = FindRoot();

    public static string BpfObject => Path.Combine(Root, "build", "bpf", "agent.bpf.o");

    public static bool InCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Ebpf.sln")))
                return dir.FullName;
        }
        throw new InvalidOperationException($"no Ebpf.sln above {AppContext.BaseDirectory}");
    }
}

/// <summary>
/// A test that needs the compiled BPF object. Outside CI it is skipped (with the command to run) when the object
/// has not been built; with CI=true it always runs, so a missing object fails loudly.
/// </summary>
public sealed class BpfObjectFactAttribute : FactAttribute
{
    public BpfObjectFactAttribute()
    {
        if (!RepoPaths.InCi && !File.Exists(RepoPaths.BpfObject))
            Skip = $"{RepoPaths.BpfObject} not built: run `make bpf` (CI=true makes this a failure)";
    }
}
