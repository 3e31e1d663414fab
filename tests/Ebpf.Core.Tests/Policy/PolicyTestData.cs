using Ebpf.Core.Policy;

namespace Ebpf.Core.Tests.Policy;

/// <summary>Paths to the shared real-data fixtures and the repository, and request builders for policy tests.</summary>
internal static class PolicyTestData
{
    public static string RepoRoot { get; } = LocateRepoRoot();

    public static string FixtureRoot => Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared", "fixtures", "audit"));

    public static string FixturePolicy(string name) => Path.Combine(FixtureRoot, "policies", name);

    public static string Falco(string name) => Path.Combine(FixtureRoot, "falcosecurity-falco/test/trace_files/k8s_audit", name);

    public static string DeployPolicy => Path.Combine(RepoRoot, "deploy", "audit", "policy.yaml");

    private static string LocateRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Ebpf.sln")))
                return dir.FullName;
        }
        throw new DirectoryNotFoundException("Ebpf.sln not found above " + AppContext.BaseDirectory);
    }

    public static AuditPolicy ParsePolicy(string rulesYaml, string header = "") =>
        AuditPolicyLoader.Load($"apiVersion: audit.k8s.io/v1\nkind: Policy\n{header}rules:\n{rulesYaml}");

    public static PolicyRequest Resource(string verb, string group, string resource, string subresource = "", string ns = "default", string name = "",
        string user = "alice", params string[] groups) => new()
    {
        User = user,
        Groups = groups.Length == 0 ? ["system:authenticated"] : groups,
        Verb = verb,
        IsResourceRequest = true,
        ApiGroup = group,
        ApiVersion = "v1",
        Resource = resource,
        Subresource = subresource,
        Namespace = ns,
        Name = name,
        Path = "/api/v1/" + resource,
    };

    public static PolicyRequest NonResource(string verb, string path, string user = "alice", params string[] groups) => new()
    {
        User = user,
        Groups = groups.Length == 0 ? ["system:authenticated"] : groups,
        Verb = verb,
        IsResourceRequest = false,
        Path = path,
    };
}
