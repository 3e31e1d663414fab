using Ebpf.Core.Policy;
using static Ebpf.Core.Tests.Policy.PolicyTestData;

namespace Ebpf.Core.Tests.Policy;

public sealed class PolicyLinterTests
{
    private const string Header = "omitStages: [RequestReceived]\n";
    private const string CatchAll = "- level: Metadata\n";

    private static IReadOnlyList<PolicyFinding> Lint(string rules, string header = Header) => PolicyLinter.Lint(ParsePolicy(rules, header));

    private static PolicyFinding Single(IReadOnlyList<PolicyFinding> findings, string code) => Assert.Single(findings, f => f.Code == code);

    [Fact]
    public void Lint_GoodMinimalPolicy_NoFindings()
    {
        Assert.Empty(Lint(CatchAll));
    }

    [Fact]
    public void Lint_NoCatchAll_Warning()
    {
        var f = Single(Lint("- level: Metadata\n  resources: [{group: \"\"}]\n"), PolicyFindingCodes.NoCatchAll);
        Assert.Equal(PolicyFindingSeverity.Warning, f.Severity);
        Assert.Null(f.RuleIndex);
        Assert.Contains("- level: Metadata", f.Fix, StringComparison.Ordinal);
    }

    [Fact]
    public void Lint_SecretsAtRequestResponse_ErrorAtThatRuleWithFix()
    {
        var findings = Lint("- level: RequestResponse\n  resources: [{group: \"\", resources: [secrets]}]\n" + CatchAll);
        var f = Single(findings, PolicyFindingCodes.SecretPayload);
        Assert.Equal(PolicyFindingSeverity.Error, f.Severity);
        Assert.Equal(0, f.RuleIndex);
        Assert.Contains("secrets at RequestResponse", f.Message, StringComparison.Ordinal);
        Assert.Contains("insert before rule 0", f.Fix, StringComparison.Ordinal);
    }

    [Fact]
    public void Lint_SecretsReadsAtRequest_NoLeakBecauseReadsHaveNoRequestBody()
    {
        Assert.DoesNotContain(Lint("- level: Request\n  verbs: [get, list, watch]\n  resources: [{group: \"\", resources: [secrets]}]\n" + CatchAll),
            f => f.Code == PolicyFindingCodes.SecretPayload);
    }

    [Fact]
    public void Lint_ConfigMapsAtRequestViaGroupWideRule_ErrorFoundByEvaluation()
    {
        // No rule names configmaps: the leak comes from a group-wide rule and is found by evaluating requests.
        var leaks = Lint("- level: Request\n  resources: [{group: \"\"}]\n" + CatchAll).Where(f => f.Code == PolicyFindingCodes.SecretPayload).ToArray();
        Assert.Equal(2, leaks.Length); // secrets and configmaps via the same rule; serviceaccounts/token leaks only in responses
        Assert.Contains(leaks, f => f.Message.Contains("configmaps at Request", StringComparison.Ordinal));
    }

    [Fact]
    public void Lint_TokenReviewsAtRequest_Error()
    {
        var f = Single(Lint("- level: Request\n  resources: [{group: authentication.k8s.io}]\n" + CatchAll), PolicyFindingCodes.SecretPayload);
        Assert.Contains("tokenreviews", f.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Request", false)]
    [InlineData("RequestResponse", true)]
    public void Lint_ServiceAccountTokenRequest_LeaksOnlyWithResponseBody(string level, bool leaks)
    {
        var findings = Lint($"- level: {level}\n  resources: [{{group: \"\", resources: [serviceaccounts/token]}}]\n" + CatchAll);
        Assert.Equal(leaks, findings.Any(f => f.Code == PolicyFindingCodes.SecretPayload && f.Message.Contains("serviceaccounts/token", StringComparison.Ordinal)));
    }

    [Fact]
    public void Lint_RequestReceivedNotOmitted_WarningListsRules()
    {
        var f = Single(Lint("- level: None\n  users: [a]\n- level: Metadata\n  omitStages: [RequestReceived]\n- level: Metadata\n", header: ""), PolicyFindingCodes.RequestReceivedNotOmitted);
        Assert.Equal(PolicyFindingSeverity.Warning, f.Severity);
        Assert.Equal(2, f.RuleIndex);
        Assert.Contains("rules 2:", f.Message + ":", StringComparison.Ordinal);
    }

    [Fact]
    public void Lint_ExecDroppedBySubresourceWildcard_ErrorAtDroppingRule()
    {
        var findings = Lint("- level: None\n  resources: [{group: \"\", resources: [\"pods/*\"]}]\n" + CatchAll);
        var exec = Assert.Single(findings, f => f.Code == PolicyFindingCodes.CorrelationNotCaptured && f.Message.StartsWith("pods/exec", StringComparison.Ordinal));
        Assert.Equal(PolicyFindingSeverity.Error, exec.Severity);
        Assert.Equal(0, exec.RuleIndex);
        Assert.Equal(4, findings.Count(f => f.Code == PolicyFindingCodes.CorrelationNotCaptured)); // exec, attach, portforward, ephemeralcontainers; not serviceaccounts/token
    }

    [Fact]
    public void Lint_ExecDroppedOnlyForWebSocketVerb_StillError()
    {
        var f = Assert.Single(Lint("- level: None\n  verbs: [get]\n  resources: [{group: \"\", resources: [pods/exec]}]\n" + CatchAll),
            x => x.Code == PolicyFindingCodes.CorrelationNotCaptured);
        Assert.Contains("get core:pods/exec", f.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Lint_ExecResponseStartedOmitted_Warning()
    {
        var findings = Lint(CatchAll, header: "omitStages: [RequestReceived, ResponseStarted]\n");
        Assert.Equal(3, findings.Count(f => f.Code == PolicyFindingCodes.CorrelationStageOmitted));
    }

    [Fact]
    public void Lint_ServiceAccountsDropped_Warning()
    {
        var f = Single(Lint("- level: None\n  userGroups: [system:serviceaccounts]\n" + CatchAll), PolicyFindingCodes.ServiceAccountNotCaptured);
        Assert.Equal(0, f.RuleIndex);
    }

    [Theory]
    [InlineData("- level: Metadata\n  resources: [{group: \"\"}]\n- level: None\n  resources: [{group: \"\", resources: [pods/exec]}]\n", 1)]
    [InlineData("- level: None\n  users: [a, b]\n- level: Metadata\n  users: [a]\n  verbs: [get]\n", 1)]
    [InlineData("- level: None\n  resources: [{group: apps, resources: [\"*/scale\"]}]\n- level: Metadata\n  resources: [{group: apps, resources: [deployments/scale]}]\n", 1)]
    [InlineData("- level: None\n  resources: [{group: \"\", resources: [\"pods/*\"]}]\n- level: Metadata\n  resources: [{group: \"\", resources: [pods]}]\n", 1)]
    [InlineData("- level: None\n  nonResourceURLs: [\"/healthz*\"]\n- level: Metadata\n  nonResourceURLs: [/healthz/ready]\n", 1)]
    [InlineData("- level: None\n  namespaces: [kube-system, default]\n- level: Metadata\n  namespaces: [default]\n  resources: [{group: \"\", resources: [secrets]}]\n", 1)]
    public void Lint_RuleFullyShadowed_Warning(string rules, int shadowed)
    {
        var f = Single(Lint(rules + CatchAll), PolicyFindingCodes.ShadowedRule);
        Assert.Equal(shadowed, f.RuleIndex);
        Assert.Contains($"move rule {shadowed} before rule 0", f.Fix, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("- level: Metadata\n  users: [a]\n- level: None\n  users: [a, b]\n")]
    [InlineData("- level: Metadata\n  resources: [{group: \"\", resources: [pods]}]\n- level: None\n  resources: [{group: \"\", resources: [\"pods/*\"]}]\n")]
    [InlineData("- level: Metadata\n  resources: [{group: \"\", resources: [pods/exec]}]\n- level: None\n  resources: [{group: \"\"}]\n")]
    [InlineData("- level: Metadata\n  nonResourceURLs: [\"/healthz*\"]\n- level: None\n  users: [a]\n")]
    [InlineData("- level: Metadata\n  resources: [{group: \"\", resources: [configmaps], resourceNames: [a]}]\n- level: None\n  resources: [{group: \"\", resources: [configmaps]}]\n")]
    public void Lint_LaterRuleBroader_NotShadowed(string rules)
    {
        Assert.DoesNotContain(Lint(rules + CatchAll), f => f.Code == PolicyFindingCodes.ShadowedRule && f.RuleIndex == 1);
    }

    [Fact]
    public void Lint_CatchAllBeforeOtherRules_EveryLaterRuleShadowed()
    {
        var findings = Lint(CatchAll + "- level: None\n  users: [a]\n- level: None\n  nonResourceURLs: [/x]\n");
        Assert.Equal([1, 2], findings.Where(f => f.Code == PolicyFindingCodes.ShadowedRule).Select(f => f.RuleIndex!.Value));
    }

    [Theory]
    [InlineData("gett", "use \"get\"")]
    [InlineData("Delete", "use \"delete\"")]
    [InlineData("*", "remove 'verbs' from rule 0")]
    public void Lint_UnknownVerb_WarningWithSuggestion(string verb, string fix)
    {
        var f = Single(Lint($"- level: None\n  verbs: [\"{verb}\"]\n" + CatchAll), PolicyFindingCodes.UnknownVerb);
        Assert.Equal(fix, f.Fix[..Math.Min(f.Fix.Length, fix.Length)]);
    }

    [Theory]
    [InlineData("\"\"", "pod", PolicyFindingCodes.UnknownResource, "did you mean \"pods\"?")]
    [InlineData("\"\"", "secret", PolicyFindingCodes.UnknownResource, "did you mean \"secrets\"?")]
    [InlineData("\"\"", "pods/exce", PolicyFindingCodes.UnknownSubresource, "did you mean \"pods/exec\"?")]
    [InlineData("\"\"", "pod/exec", PolicyFindingCodes.UnknownResource, "did you mean \"pods/exec\"?")]
    [InlineData("\"\"", "deployments", PolicyFindingCodes.UnknownResource, "\"deployments\" is served by group \"apps\" or \"extensions\"")]
    [InlineData("apps", "deploymnets", PolicyFindingCodes.UnknownResource, "did you mean \"deployments\"?")]
    [InlineData("apps", "\"*/scael\"", PolicyFindingCodes.UnknownSubresource, "did you mean \"*/scale\"?")]
    [InlineData("\"\"", "secrets/exec", PolicyFindingCodes.UnknownSubresource, "\"secrets\" has no subresources")]
    public void Lint_MisspelledResource_WarningWithClosestName(string group, string resource, string code, string fixStart)
    {
        var f = Single(Lint($"- level: Metadata\n  resources: [{{group: {group}, resources: [{resource}]}}]\n" + CatchAll), code);
        Assert.Equal(PolicyFindingSeverity.Warning, f.Severity);
        Assert.StartsWith(fixStart, f.Fix, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("core", PolicyFindingSeverity.Warning, "group: \"\"")]
    [InlineData("rbac.authorizaton.k8s.io", PolicyFindingSeverity.Warning, "rbac.authorization.k8s.io")]
    [InlineData("widgets.example.com", PolicyFindingSeverity.Info, "CRD")]
    public void Lint_UnknownGroup_SeverityByLikelyTypo(string group, PolicyFindingSeverity severity, string fixContains)
    {
        var f = Single(Lint($"- level: Metadata\n  resources: [{{group: {group}, resources: [things]}}]\n" + CatchAll), PolicyFindingCodes.UnknownGroup);
        Assert.Equal(severity, f.Severity);
        Assert.Contains(fixContains, f.Fix, StringComparison.Ordinal);
    }

    [Fact]
    public void Lint_KnownResourcesAndPatterns_NoTypoFindings()
    {
        var rules = "- level: Metadata\n  resources:\n  - {group: \"\", resources: [pods, pods/exec, \"pods/*\", \"*/status\", \"*\", serviceaccounts/token]}\n" +
                    "  - {group: apps, resources: [deployments/scale, \"*/scale\"]}\n  - {group: rbac.authorization.k8s.io, resources: [clusterroles]}\n" + CatchAll;
        Assert.DoesNotContain(Lint(rules), f => f.Code is PolicyFindingCodes.UnknownResource or PolicyFindingCodes.UnknownSubresource or PolicyFindingCodes.UnknownGroup);
    }

    [Fact]
    public void Lint_DeployPolicy_NoFindings()
    {
        var findings = PolicyLinter.Lint(AuditPolicyLoader.LoadFile(DeployPolicy));
        Assert.True(findings.Count == 0, string.Join(Environment.NewLine, findings));
    }

    [Fact]
    public void Lint_DeployPolicy_CapturesCorrelationRequestsAtMetadataAndNoBodies()
    {
        var evaluator = new AuditPolicyEvaluator(AuditPolicyLoader.LoadFile(DeployPolicy));
        foreach (var sub in new[] { "exec", "attach", "portforward" })
        {
            var d = evaluator.Evaluate(Resource("create", "", "pods", sub, name: "web-0", user: "system:node:n1", groups: ["system:nodes", "system:authenticated"]));
            Assert.Equal((AuditPolicyLevel.Metadata, 0), (d.Level, d.RuleIndex));
            Assert.False(d.IsStageOmitted(AuditStageFlags.ResponseStarted));
            Assert.True(d.IsStageOmitted(AuditStageFlags.RequestReceived));
        }
        Assert.Equal(AuditPolicyLevel.Metadata, evaluator.Evaluate(Resource("get", "", "secrets", name: "db", user: "system:serviceaccount:prod:app", groups: ["system:serviceaccounts"])).Level);
        Assert.Equal(AuditPolicyLevel.None, evaluator.Evaluate(NonResource("get", "/healthz")).Level);
        Assert.Equal(AuditPolicyLevel.Metadata, evaluator.Evaluate(NonResource("get", "/healthz", user: "system:anonymous", groups: ["system:unauthenticated"])).Level);
        Assert.Equal(AuditPolicyLevel.None, evaluator.Evaluate(Resource("update", "coordination.k8s.io", "leases", ns: "kube-node-lease", name: "n1", user: "system:node:n1", groups: ["system:nodes"])).Level);
    }

    [Fact]
    public void Lint_FixturePolicies_ConcreteFindings()
    {
        static IReadOnlyList<PolicyFinding> LintFixture(string name) => PolicyLinter.Lint(AuditPolicyLoader.LoadFile(FixturePolicy(name)));

        // GKE's configure-helper policy keeps secrets/configmaps/tokens at Metadata and captures exec: clean.
        Assert.Empty(LintFixture("gce-configure-helper-audit-policy.yaml"));

        // The docs example logs kube-system configmap bodies at Request (its rule 5).
        var docs = LintFixture("kubernetes-docs-example-audit-policy.yaml");
        Assert.Equal([(PolicyFindingCodes.SecretPayload, (int?)5)], docs.Select(f => (f.Code, f.RuleIndex)));

        // Falco's policy puts "deployments" in the core group (never matches) and logs configmap bodies.
        var falco = LintFixture("falco-k8saudit-audit-policy.yaml");
        Assert.Contains(falco, f => f.Code == PolicyFindingCodes.UnknownResource && f.RuleIndex == 0 && f.Fix.Contains("\"apps\"", StringComparison.Ordinal));
        Assert.Equal([6, 7], falco.Where(f => f.Code == PolicyFindingCodes.SecretPayload).Select(f => f.RuleIndex!.Value).Order());

        // aks-engine logs secrets at Request (rule 5): secret values in create/update bodies.
        var aks = LintFixture("aks-engine-audit-policy.rendered-k8s-ge-1.16.yaml");
        Assert.Contains(aks, f => f.Code == PolicyFindingCodes.SecretPayload && f.RuleIndex == 5 && f.Message.Contains("secrets at Request", StringComparison.Ordinal));

        // audit2rbac's demo policy only audits four users: nothing else is captured.
        var demo = LintFixture("audit2rbac-demo-policy.yaml");
        Assert.Equal(5, demo.Count(f => f.Code == PolicyFindingCodes.CorrelationNotCaptured && f.Severity == PolicyFindingSeverity.Error));
        Assert.Contains(demo, f => f.Code == PolicyFindingCodes.NoCatchAll);
        Assert.Contains(demo, f => f.Code == PolicyFindingCodes.ServiceAccountNotCaptured);
    }
}
