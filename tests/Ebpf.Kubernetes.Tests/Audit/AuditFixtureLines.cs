namespace Ebpf.Kubernetes.Tests.Audit;

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
