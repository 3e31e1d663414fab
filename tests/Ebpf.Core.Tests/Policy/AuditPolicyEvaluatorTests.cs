using Ebpf.Core.Policy;
using static Ebpf.Core.Tests.Policy.PolicyTestData;

namespace Ebpf.Core.Tests.Policy;

/// <summary>
/// One row per matching rule of k8s.io/apiserver/pkg/audit/policy/checker.go. Each row: a policy whose first rule
/// is the rule under test followed by a catch-all at Metadata (so "no match of rule 0" is visible as rule 1), a
/// request, and whether rule 0 decides.
/// </summary>
public sealed class AuditPolicyEvaluatorTests
{
    public sealed record Case(string Name, string Rule, PolicyRequest Request, bool RuleZeroMatches)
    {
        public override string ToString() => Name;
    }

    private static readonly Case[] Cases =
    [
        // users: exact, case-sensitive
        new("users_exact_match", "users: [alice]", Resource("get", "", "pods"), true),
        new("users_other_user_no_match", "users: [bob]", Resource("get", "", "pods"), false),
        new("users_case_sensitive_no_match", "users: [Alice]", Resource("get", "", "pods"), false),
        new("users_no_user_info_no_match", "users: [alice]", Resource("get", "", "pods") with { User = null }, false),
        // userGroups: any of the request's groups
        new("userGroups_any_of_matches_second_group", "userGroups: [system:masters]", Resource("get", "", "pods", groups: ["system:authenticated", "system:masters"]), true),
        new("userGroups_none_in_common_no_match", "userGroups: [system:nodes]", Resource("get", "", "pods", groups: ["system:authenticated"]), false),
        new("userGroups_request_without_groups_no_match", "userGroups: [system:authenticated]", Resource("get", "", "pods") with { Groups = [] }, false),
        // verbs: exact, no wildcard
        new("verbs_exact_match", "verbs: [get, list]", Resource("list", "", "pods"), true),
        new("verbs_other_verb_no_match", "verbs: [get]", Resource("watch", "", "pods"), false),
        new("verbs_star_is_literal_no_match", "verbs: [\"*\"]", Resource("get", "", "pods"), false),
        // group: must equal the request's API group; "" is core
        new("group_core_matches_core", "resources: [{group: \"\", resources: [pods]}]", Resource("get", "", "pods"), true),
        new("group_core_does_not_match_apps", "resources: [{group: \"\", resources: [deployments]}]", Resource("get", "apps", "deployments"), false),
        new("group_apps_does_not_match_core", "resources: [{group: apps, resources: [pods]}]", Resource("get", "", "pods"), false),
        new("group_without_resources_matches_every_resource_in_group", "resources: [{group: apps}]", Resource("delete", "apps", "statefulsets", name: "db"), true),
        new("group_without_resources_matches_subresources_too", "resources: [{group: \"\"}]", Resource("create", "", "pods", "exec", name: "p"), true),
        new("group_without_resources_other_group_no_match", "resources: [{group: apps}]", Resource("get", "batch", "jobs"), false),
        // resource patterns
        new("resource_pods_matches_pods", "resources: [{group: \"\", resources: [pods]}]", Resource("get", "", "pods", name: "p"), true),
        new("resource_pods_does_not_match_pods_exec", "resources: [{group: \"\", resources: [pods]}]", Resource("create", "", "pods", "exec", name: "p"), false),
        new("resource_pods_exec_matches_pods_exec", "resources: [{group: \"\", resources: [pods/exec]}]", Resource("create", "", "pods", "exec", name: "p"), true),
        new("resource_pods_exec_does_not_match_pods", "resources: [{group: \"\", resources: [pods/exec]}]", Resource("get", "", "pods", name: "p"), false),
        new("resource_pods_exec_does_not_match_pods_attach", "resources: [{group: \"\", resources: [pods/exec]}]", Resource("create", "", "pods", "attach", name: "p"), false),
        new("resource_pods_star_matches_subresource", "resources: [{group: \"\", resources: [\"pods/*\"]}]", Resource("create", "", "pods", "portforward", name: "p"), true),
        new("resource_pods_star_matches_pods_itself_upstream_quirk", "resources: [{group: \"\", resources: [\"pods/*\"]}]", Resource("get", "", "pods", name: "p"), true),
        new("resource_pods_star_does_not_match_services_proxy", "resources: [{group: \"\", resources: [\"pods/*\"]}]", Resource("get", "", "services", "proxy", name: "s"), false),
        new("resource_star_scale_matches_deployments_scale", "resources: [{group: apps, resources: [\"*/scale\"]}]", Resource("update", "apps", "deployments", "scale", name: "d"), true),
        new("resource_star_scale_does_not_match_deployments", "resources: [{group: apps, resources: [\"*/scale\"]}]", Resource("update", "apps", "deployments", name: "d"), false),
        new("resource_star_scale_does_not_match_status", "resources: [{group: apps, resources: [\"*/scale\"]}]", Resource("update", "apps", "deployments", "status", name: "d"), false),
        new("resource_star_matches_everything_in_group", "resources: [{group: \"\", resources: [\"*\"]}]", Resource("create", "", "serviceaccounts", "token", name: "sa"), true),
        new("resource_star_only_within_group", "resources: [{group: \"\", resources: [\"*\"]}]", Resource("get", "apps", "deployments"), false),
        new("resource_case_sensitive", "resources: [{group: \"\", resources: [Pods]}]", Resource("get", "", "pods"), false),
        // resourceNames
        new("resourceNames_matching_name", "resources: [{group: \"\", resources: [configmaps], resourceNames: [controller-leader]}]", Resource("update", "", "configmaps", ns: "kube-system", name: "controller-leader"), true),
        new("resourceNames_other_name_no_match", "resources: [{group: \"\", resources: [configmaps], resourceNames: [controller-leader]}]", Resource("update", "", "configmaps", ns: "kube-system", name: "other"), false),
        new("resourceNames_request_without_name_no_match", "resources: [{group: \"\", resources: [configmaps], resourceNames: [controller-leader]}]", Resource("list", "", "configmaps", ns: "kube-system"), false),
        new("resourceNames_listing_empty_name_matches_unnamed", "resources: [{group: \"\", resources: [configmaps], resourceNames: [\"\"]}]", Resource("list", "", "configmaps"), true),
        // namespaces
        new("namespaces_match", "namespaces: [kube-system]", Resource("get", "", "configmaps", ns: "kube-system"), true),
        new("namespaces_other_namespace_no_match", "namespaces: [kube-system]", Resource("get", "", "configmaps", ns: "default"), false),
        new("namespaces_empty_string_matches_cluster_scoped", "namespaces: [\"\"]", Resource("get", "", "nodes", ns: ""), true),
        new("namespaces_empty_string_does_not_match_namespaced", "namespaces: [\"\"]", Resource("get", "", "pods", ns: "default"), false),
        new("namespaces_only_rule_never_matches_non_resource", "namespaces: [\"\"]", NonResource("get", "/healthz"), false),
        new("namespaces_and_resources_both_required", "namespaces: [kube-system]\n  resources: [{group: \"\", resources: [secrets]}]", Resource("get", "", "secrets", ns: "default"), false),
        // nonResourceURLs
        new("nonResourceURLs_exact", "nonResourceURLs: [/version]", NonResource("get", "/version"), true),
        new("nonResourceURLs_exact_no_prefix_without_star", "nonResourceURLs: [/version]", NonResource("get", "/version/extra"), false),
        new("nonResourceURLs_trailing_star_prefix", "nonResourceURLs: [\"/api*\"]", NonResource("get", "/apis/apps/v1"), true),
        new("nonResourceURLs_trailing_star_matches_prefix_itself", "nonResourceURLs: [\"/healthz*\"]", NonResource("get", "/healthz"), true),
        new("nonResourceURLs_star_alone_matches_any_path", "nonResourceURLs: [\"*\"]", NonResource("get", "/metrics"), true),
        new("nonResourceURLs_prefix_mismatch", "nonResourceURLs: [\"/api*\"]", NonResource("get", "/healthz"), false),
        new("nonResourceURLs_never_match_resource_requests", "nonResourceURLs: [\"*\"]", Resource("get", "", "pods"), false),
        new("resource_rule_never_matches_non_resource_request", "resources: [{group: \"\"}]", NonResource("get", "/api/v1"), false),
        // empty selectors: a catch-all matches both kinds
        new("catch_all_matches_resource_request", "{}", Resource("get", "", "pods"), true),
        new("catch_all_matches_non_resource_request", "{}", NonResource("get", "/metrics"), true),
        new("users_only_rule_matches_non_resource_request", "users: [alice]", NonResource("get", "/metrics"), true),
    ];

    // Rows are passed by name so that each one shows up as its own test case.
    public static TheoryData<string> AllCases()
    {
        var data = new TheoryData<string>();
        foreach (var c in Cases)
            data.Add(c.Name);
        return data;
    }

    [Theory]
    [MemberData(nameof(AllCases))]
    public void Evaluate_SemanticsTable_MatchesUpstreamChecker(string name)
    {
        var c = Cases.Single(x => x.Name == name);
        var rule = c.Rule == "{}" ? "- level: RequestResponse\n" : $"- level: RequestResponse\n  {c.Rule}\n";
        var policy = ParsePolicy(rule + "- level: Metadata\n");
        var decision = new AuditPolicyEvaluator(policy).Evaluate(c.Request);
        if (c.RuleZeroMatches)
        {
            Assert.Equal(0, decision.RuleIndex);
            Assert.Equal(AuditPolicyLevel.RequestResponse, decision.Level);
        }
        else
        {
            Assert.Equal(1, decision.RuleIndex);
            Assert.Equal(AuditPolicyLevel.Metadata, decision.Level);
        }
    }

    [Fact]
    public void Evaluate_FirstMatchingRuleWins_LaterBroaderRuleIgnored()
    {
        var policy = ParsePolicy("- level: None\n  resources: [{group: \"\", resources: [pods/exec]}]\n- level: RequestResponse\n  resources: [{group: \"\"}]\n");
        var decision = new AuditPolicyEvaluator(policy).Evaluate(Resource("create", "", "pods", "exec", name: "p"));
        Assert.Equal((AuditPolicyLevel.None, 0), (decision.Level, decision.RuleIndex));
    }

    [Fact]
    public void Evaluate_NoRuleMatches_LevelNoneWithPolicyStagesAndNoRule()
    {
        var policy = ParsePolicy("- level: Metadata\n  users: [bob]\n  omitStages: [ResponseStarted]\n", "omitStages: [RequestReceived]\nomitManagedFields: true\n");
        var decision = new AuditPolicyEvaluator(policy).Evaluate(Resource("get", "", "pods"));
        Assert.False(decision.Matched);
        Assert.Equal(-1, decision.RuleIndex);
        Assert.Equal(AuditPolicyLevel.None, decision.Level);
        Assert.Equal(AuditStageFlags.RequestReceived, decision.OmitStages);
        Assert.True(decision.OmitManagedFields);
    }

    [Fact]
    public void Evaluate_OmitStages_IsUnionOfPolicyAndRule()
    {
        var policy = ParsePolicy("- level: Metadata\n  omitStages: [ResponseStarted, Panic]\n", "omitStages: [RequestReceived]\n");
        var decision = new AuditPolicyEvaluator(policy).Evaluate(Resource("get", "", "pods"));
        Assert.Equal(AuditStageFlags.RequestReceived | AuditStageFlags.ResponseStarted | AuditStageFlags.Panic, decision.OmitStages);
        Assert.False(decision.IsStageOmitted(AuditStageFlags.ResponseComplete));
    }

    [Theory]
    [InlineData("omitManagedFields: true\n", "", true)]
    [InlineData("omitManagedFields: true\n", "  omitManagedFields: false\n", false)]
    [InlineData("omitManagedFields: false\n", "  omitManagedFields: true\n", true)]
    [InlineData("", "", false)]
    [InlineData("", "  omitManagedFields: true\n", true)]
    public void Evaluate_OmitManagedFields_RuleOverridesPolicy(string policyLevel, string ruleLevel, bool expected)
    {
        var policy = ParsePolicy("- level: RequestResponse\n" + ruleLevel, policyLevel);
        Assert.Equal(expected, new AuditPolicyEvaluator(policy).Evaluate(Resource("get", "", "pods")).OmitManagedFields);
    }

    [Theory]
    [InlineData("Request")]
    [InlineData("RequestResponse")]
    public void Evaluate_RequestLevelForNonResourceRequest_ReturnedUnchangedLikeUpstream(string level)
    {
        // checker.go returns the rule's level as-is; bodies simply do not exist for non-resource requests.
        var policy = ParsePolicy($"- level: {level}\n  nonResourceURLs: [\"/metrics\"]\n");
        var decision = new AuditPolicyEvaluator(policy).Evaluate(NonResource("get", "/metrics"));
        Assert.Equal(Enum.Parse<AuditPolicyLevel>(level), decision.Level);
    }

    [Fact]
    public void Evaluate_AllocationFree_OnRepeatedEvaluation()
    {
        var policy = AuditPolicyLoader.LoadFile(FixturePolicy("gce-configure-helper-audit-policy.yaml"));
        var evaluator = new AuditPolicyEvaluator(policy);
        var request = Resource("create", "", "pods", "exec", ns: "default", name: "web-0", user: "alice", groups: ["system:authenticated"]);
        evaluator.Evaluate(request);
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
            evaluator.Evaluate(request);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
