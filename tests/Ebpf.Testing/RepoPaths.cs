namespace Ebpf.Testing;

/// <summary>Where the tests find the repository and the data beside it (CI clones the repo with shared/ next to it).</summary>
public static class RepoPaths
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
        throw new DirectoryNotFoundException($"no Ebpf.sln above {AppContext.BaseDirectory}");
    }
}

/// <summary>The shared real-data audit fixtures: &lt;repo root&gt;/../shared/fixtures/audit.</summary>
public static class AuditFixtures
{
    public static string Root { get; } = Locate();

    public static string Falco => Path.Combine(Root, "falcosecurity-falco/test/trace_files/k8s_audit");

    public static string Path_(string relative) => Path.Combine(Root, relative);

    public static IEnumerable<string> EventFiles()
        => Directory.EnumerateFiles(Root, "*", SearchOption.AllDirectories)
            .Where(f => f.EndsWith(".json", StringComparison.Ordinal) || f.EndsWith(".log", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal);

    private static string Locate()
    {
        string root = Path.GetFullPath(Path.Combine(RepoPaths.Root, "..", "shared", "fixtures", "audit"));
        return Directory.Exists(root)
            ? root
            : throw new DirectoryNotFoundException($"Audit fixtures not found at {root} (expected shared/ beside the repository).");
    }
}
