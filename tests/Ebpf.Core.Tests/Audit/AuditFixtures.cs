namespace Ebpf.Core.Tests.Audit;

/// <summary>Locates the shared real-data fixtures: &lt;repo root&gt;/../shared/fixtures/audit, repo root being the directory holding Ebpf.sln.</summary>
internal static class AuditFixtures
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
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Ebpf.sln")))
            {
                var root = Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared", "fixtures", "audit"));
                if (Directory.Exists(root))
                {
                    return root;
                }

                throw new DirectoryNotFoundException($"Audit fixtures not found at {root} (expected shared/ beside the repository).");
            }
        }

        throw new DirectoryNotFoundException("Ebpf.sln not found above " + AppContext.BaseDirectory);
    }
}
