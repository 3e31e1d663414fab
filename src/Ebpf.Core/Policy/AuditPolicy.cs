namespace Ebpf.Core.Policy;

/// <summary>Audit level of a policy rule (audit.k8s.io/v1 <c>Level</c>), ordered from least to most verbose.</summary>
public enum AuditPolicyLevel : byte
{
    None = 0,
    Metadata = 1,
    Request = 2,
    RequestResponse = 3,
}

/// <summary>
/// Set of audit stages (audit.k8s.io/v1 <c>Stage</c>) as flags so that the union the API server computes
/// (checker.go <c>NewChecker</c>/<c>unionStages</c>) is a single OR.
/// </summary>
[Flags]
public enum AuditStageFlags : byte
{
    None = 0,
    RequestReceived = 1,
    ResponseStarted = 2,
    ResponseComplete = 4,
    Panic = 8,
}

/// <summary>One <c>GroupResources</c> entry of a rule: an API group and optional resource and name filters.</summary>
public sealed record AuditPolicyGroupResources
{
    /// <summary>API group name; "" is the core group. Never contains a version.</summary>
    public string Group { get; init; } = "";

    /// <summary>Resource patterns: <c>pods</c>, <c>pods/exec</c>, <c>pods/*</c>, <c>*/scale</c>, <c>*</c>. Empty matches every resource of the group.</summary>
    public IReadOnlyList<string> Resources { get; init; } = [];

    /// <summary>Object names; empty matches any name. Requests without a name only match when "" is listed.</summary>
    public IReadOnlyList<string> ResourceNames { get; init; } = [];
}

/// <summary>One rule of an audit policy (audit.k8s.io/v1 <c>PolicyRule</c>).</summary>
public sealed record AuditPolicyRule
{
    /// <summary>Zero-based position in <c>rules</c>: first match wins, so the index is the rule's identity.</summary>
    public int Index { get; init; }

    /// <summary>1-based line of the rule in the source YAML (0 when built in code).</summary>
    public int Line { get; init; }

    public AuditPolicyLevel Level { get; init; }
    public IReadOnlyList<string> Users { get; init; } = [];
    public IReadOnlyList<string> UserGroups { get; init; } = [];
    public IReadOnlyList<string> Verbs { get; init; } = [];
    public IReadOnlyList<AuditPolicyGroupResources> Resources { get; init; } = [];
    public IReadOnlyList<string> Namespaces { get; init; } = [];
    public IReadOnlyList<string> NonResourceUrls { get; init; } = [];

    /// <summary>Stages omitted by this rule alone (the policy-level stages are added by the evaluator).</summary>
    public AuditStageFlags OmitStages { get; init; }

    /// <summary>Overrides <see cref="AuditPolicy.OmitManagedFields"/> when set.</summary>
    public bool? OmitManagedFields { get; init; }

    /// <summary>True when the rule restricts resource requests (checker.go <c>ruleMatches</c> takes the resource branch).</summary>
    public bool IsResourceRule => Namespaces.Count > 0 || Resources.Count > 0;

    /// <summary>True when the rule only matches non-resource URLs.</summary>
    public bool IsNonResourceRule => !IsResourceRule && NonResourceUrls.Count > 0;

    /// <summary>A one-line human summary, e.g. <c>Metadata users=[a] resources=[""/pods/exec]</c>.</summary>
    public string Summary()
    {
        var parts = new List<string> { Level.ToString() };
        if (Users.Count > 0) parts.Add($"users=[{string.Join(",", Users)}]");
        if (UserGroups.Count > 0) parts.Add($"userGroups=[{string.Join(",", UserGroups)}]");
        if (Verbs.Count > 0) parts.Add($"verbs=[{string.Join(",", Verbs)}]");
        if (Namespaces.Count > 0) parts.Add($"namespaces=[{string.Join(",", Namespaces.Select(n => n.Length == 0 ? "\"\"" : n))}]");
        if (Resources.Count > 0)
        {
            parts.Add("resources=[" + string.Join(" ", Resources.Select(gr =>
            {
                var group = gr.Group.Length == 0 ? "core" : gr.Group;
                var res = gr.Resources.Count == 0 ? "*" : string.Join(",", gr.Resources);
                var names = gr.ResourceNames.Count == 0 ? "" : $"(names={string.Join(",", gr.ResourceNames)})";
                return $"{group}:{res}{names}";
            })) + "]");
        }
        if (NonResourceUrls.Count > 0) parts.Add($"nonResourceURLs=[{string.Join(",", NonResourceUrls)}]");
        if (OmitStages != AuditStageFlags.None) parts.Add($"omitStages=[{AuditPolicyNames.Format(OmitStages)}]");
        if (OmitManagedFields is { } omf) parts.Add($"omitManagedFields={(omf ? "true" : "false")}");
        if (parts.Count == 1) parts.Add("(catch-all)");
        return string.Join(" ", parts);
    }
}

/// <summary>An audit.k8s.io/v1 <c>Policy</c>: ordered rules, policy-wide omitted stages and managed-fields default.</summary>
public sealed record AuditPolicy
{
    public IReadOnlyList<AuditPolicyRule> Rules { get; init; } = [];
    public AuditStageFlags OmitStages { get; init; }
    public bool OmitManagedFields { get; init; }
}

/// <summary>Names of audit stages and levels as spelled on the wire.</summary>
public static class AuditPolicyNames
{
    public static readonly IReadOnlyList<(string Name, AuditStageFlags Flag)> All =
    [
        ("RequestReceived", AuditStageFlags.RequestReceived),
        ("ResponseStarted", AuditStageFlags.ResponseStarted),
        ("ResponseComplete", AuditStageFlags.ResponseComplete),
        ("Panic", AuditStageFlags.Panic),
    ];

    /// <summary>Parses a wire stage name (case-sensitive, as the API server's decoder is).</summary>
    public static bool TryParse(ReadOnlySpan<char> name, out AuditStageFlags stage)
    {
        stage = name switch
        {
            "RequestReceived" => AuditStageFlags.RequestReceived,
            "ResponseStarted" => AuditStageFlags.ResponseStarted,
            "ResponseComplete" => AuditStageFlags.ResponseComplete,
            "Panic" => AuditStageFlags.Panic,
            _ => AuditStageFlags.None,
        };
        return stage != AuditStageFlags.None;
    }

    public static IReadOnlyList<string> Names(AuditStageFlags stages) =>
        All.Where(s => (stages & s.Flag) != 0).Select(s => s.Name).ToArray();

    public static string Format(AuditStageFlags stages) => string.Join(",", Names(stages));

    public static bool TryParseLevel(ReadOnlySpan<char> name, out AuditPolicyLevel level)
    {
        switch (name)
        {
            case "None": level = AuditPolicyLevel.None; return true;
            case "Metadata": level = AuditPolicyLevel.Metadata; return true;
            case "Request": level = AuditPolicyLevel.Request; return true;
            case "RequestResponse": level = AuditPolicyLevel.RequestResponse; return true;
            default: level = AuditPolicyLevel.None; return false;
        }
    }
}
