using Ebpf.Core.Policy;

namespace Ebpf.Core.Tests.Policy;

/// <summary>Paths to the shared real-data fixtures and the repository, and request builders for policy tests.</summary>
internal static class PolicyTestData
{
    public static string RepoRoot => RepoPaths.Root;

    public static string FixtureRoot => AuditFixtures.Root;

    public static string FixturePolicy(string name) => Path.Combine(FixtureRoot, "policies", name);

    public static string Falco(string name) => Path.Combine(AuditFixtures.Falco, name);

    public static string DeployPolicy => Path.Combine(RepoRoot, "deploy", "audit", "policy.yaml");

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
