namespace Ebpf.Kubernetes.Tests.Audit;

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

internal static class AuditFixtureLines
{
    /// <summary>The 37 JSON lines of audit2rbac's demo.log (real events from a 1.8-era cluster, unique dedupe keys).</summary>
    public static IReadOnlyList<string> Demo { get; } = File.ReadAllLines(AuditFixtures.Path_("liggitt-audit2rbac/testdata/demo.log")).Where(l => l.Length > 0).ToList();

    /// <summary>Every single-event falco file, as one line each.</summary>
    public static IReadOnlyList<string> Falco { get; } = Directory.EnumerateFiles(AuditFixtures.Falco, "*.json").Order(StringComparer.Ordinal)
        .SelectMany(File.ReadAllLines).Where(l => l.Length > 0 && l.Contains("auditID", StringComparison.Ordinal)).ToList();

    public static string EventList(IEnumerable<string> items)
        => "{\"kind\":\"EventList\",\"apiVersion\":\"audit.k8s.io/v1\",\"metadata\":{},\"items\":[" + string.Join(",", items) + "]}";
}
