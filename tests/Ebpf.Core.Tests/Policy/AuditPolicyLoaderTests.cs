using System.Text;
using Ebpf.Core.Policy;
using static Ebpf.Core.Tests.Policy.PolicyTestData;

namespace Ebpf.Core.Tests.Policy;

public sealed class AuditPolicyLoaderTests
{
    private static AuditPolicyException LoadFails(string yaml, AuditPolicyLoaderOptions? options = null) =>
        Assert.Throws<AuditPolicyException>(() => AuditPolicyLoader.Load(yaml, options));

    [Fact]
    public void LoadFile_EksV1Beta1Policy_RejectedWithApiServerMessageAndFix()
    {
        var ex = Assert.Throws<AuditPolicyException>(() => AuditPolicyLoader.LoadFile(FixturePolicy("eks-audit-policy.yaml")));
        var error = Assert.Single(ex.Errors);
        Assert.Equal((1, 13), (error.Line, error.Column));
        Assert.Equal("apiVersion", error.Path);
        Assert.StartsWith("failed decoding: no kind \"Policy\" is registered for version \"audit.k8s.io/v1beta1\" in scheme \"k8s.io/apiserver/pkg/audit/scheme.go:30\"", error.Message, StringComparison.Ordinal);
        Assert.Contains("change apiVersion to audit.k8s.io/v1", error.Fix, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_V1Alpha1_RejectedWithApiServerMessage()
    {
        var ex = LoadFails("apiVersion: audit.k8s.io/v1alpha1\nkind: Policy\nrules:\n- level: Metadata\n");
        Assert.Contains("no kind \"Policy\" is registered for version \"audit.k8s.io/v1alpha1\"", ex.Message, StringComparison.Ordinal);
        Assert.Contains("audit.k8s.io/v1", ex.Errors[0].Fix, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_EksPolicyWithVersionFixed_LoadsAllRules()
    {
        // The suggested fix is sufficient: the v1beta1 body is a valid v1 policy.
        var text = File.ReadAllText(FixturePolicy("eks-audit-policy.yaml")).Replace("audit.k8s.io/v1beta1", "audit.k8s.io/v1", StringComparison.Ordinal);
        var policy = AuditPolicyLoader.Load(text);
        Assert.True(policy.Rules.Count > 10);
        Assert.Equal(AuditPolicyLevel.RequestResponse, policy.Rules[0].Level);
        Assert.Equal(["aws-auth"], policy.Rules[0].Resources[0].ResourceNames);
    }

    [Theory]
    [InlineData("kubernetes-docs-example-audit-policy.yaml", 9)]
    [InlineData("gce-configure-helper-audit-policy.yaml", 17)]
    [InlineData("falco-k8saudit-audit-policy.yaml", 11)]
    [InlineData("aks-engine-audit-policy.rendered-k8s-ge-1.16.yaml", 8)]
    [InlineData("audit2rbac-demo-policy.yaml", 1)]
    public void LoadFile_RealV1Policies_LoadWithEveryRule(string file, int rules)
    {
        var policy = AuditPolicyLoader.LoadFile(FixturePolicy(file));
        Assert.Equal(rules, policy.Rules.Count);
        Assert.Equal(Enumerable.Range(0, rules), policy.Rules.Select(r => r.Index));
    }

    [Fact]
    public void LoadFile_DocsExample_FieldsMappedExactly()
    {
        var policy = AuditPolicyLoader.LoadFile(FixturePolicy("kubernetes-docs-example-audit-policy.yaml"));
        Assert.Equal(AuditStageFlags.RequestReceived, policy.OmitStages);
        var kubeProxy = policy.Rules[3];
        Assert.Equal(AuditPolicyLevel.None, kubeProxy.Level);
        Assert.Equal(["system:kube-proxy"], kubeProxy.Users);
        Assert.Equal(["watch"], kubeProxy.Verbs);
        Assert.Equal("", kubeProxy.Resources[0].Group);
        Assert.Equal(["endpoints", "services"], kubeProxy.Resources[0].Resources);
        Assert.Equal(["/api*", "/version"], policy.Rules[4].NonResourceUrls);
        Assert.Equal(["kube-system"], policy.Rules[5].Namespaces);
        Assert.Equal(["", "extensions"], policy.Rules[7].Resources.Select(r => r.Group));
        Assert.Equal(AuditStageFlags.RequestReceived, policy.Rules[8].OmitStages);
        Assert.Equal(64, policy.Rules[8].Line);
    }

    [Fact]
    public void LoadFile_AksTemplate_RejectedAsUnknownVersion()
    {
        // The unrendered Go template is not a valid apiVersion; the error says what was found.
        var ex = Assert.Throws<AuditPolicyException>(() => AuditPolicyLoader.LoadFile(FixturePolicy("aks-engine-audit-policy.yaml.tmpl")));
        Assert.Equal("apiVersion", ex.Errors[0].Path);
        Assert.Contains("{{", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("rules:\n- level: Metadata\n", "apiVersion", "Object 'apiVersion' is missing")]
    [InlineData("apiVersion: audit.k8s.io/v1\nrules:\n- level: Metadata\n", "kind", "Object 'Kind' is missing")]
    [InlineData("apiVersion: audit.k8s.io/v1\nkind: EventList\nrules:\n- level: Metadata\n", "kind", "kind must be Policy")]
    [InlineData("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n", "rules", "loaded illegal policy with 0 rules")]
    [InlineData("apiVersion: audit.k8s.io/v1\nkind: Policy\n", "rules", "loaded illegal policy with 0 rules")]
    [InlineData("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: metadata\n", "rules[0].level", "Unsupported value: \"metadata\"")]
    [InlineData("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- users: [a]\n", "rules[0].level", "Required value")]
    [InlineData("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  omitStages: [RequestRecieved]\n", "rules[0].omitStages[0]", "allowed stages are")]
    [InlineData("apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [Done]\nrules:\n- level: Metadata\n", "omitStages[0]", "allowed stages are")]
    [InlineData("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  resource: [{group: \"\"}]\n", "rules[0].resource", "unknown field \"resource\"")]
    [InlineData("apiVersion: audit.k8s.io/v1\nkind: Policy\nrule:\n- level: Metadata\n", "rule", "unknown field \"rule\"")]
    [InlineData("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  resources: [{group: \"\", resource: [pods]}]\n", "rules[0].resources[0].resource", "unknown field")]
    [InlineData("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  resources: [{group: rbac.authorization.k8s.io/v1}]\n", "rules[0].resources[0].group", "RFC 1123 subdomain")]
    [InlineData("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  resources: [{group: \"\", resourceNames: [x]}]\n", "rules[0].resources[0].resourceNames", "requires at least one resource")]
    [InlineData("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  nonResourceURLs: [healthz]\n", "rules[0].nonResourceURLs[0]", "must begin with a '/'")]
    [InlineData("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  nonResourceURLs: [\"/a*/b\"]\n", "rules[0].nonResourceURLs[0]", "must be the final character")]
    [InlineData("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  namespaces: [a]\n  nonResourceURLs: [/healthz]\n", "rules[0].nonResourceURLs", "cannot apply to both")]
    [InlineData("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  users: alice\n", "rules[0].users", "must be a list of strings")]
    [InlineData("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  omitManagedFields: \"yes\"\n", "rules[0].omitManagedFields", "must be true or false")]
    [InlineData("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: {level: Metadata}\n", "rules", "rules must be a list")]
    public void Load_InvalidPolicy_ClearErrorAtField(string yaml, string path, string message)
    {
        var ex = LoadFails(yaml);
        var error = Assert.Single(ex.Errors, e => e.Path == path);
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
        Assert.True(error.Line > 0, "every error has a line");
    }

    [Fact]
    public void Load_UnknownFieldTypo_SuggestsField()
    {
        var ex = LoadFails("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  userGroup: [x]\n");
        var error = Assert.Single(ex.Errors);
        Assert.Equal((5, 3), (error.Line, error.Column));
        Assert.Contains("userGroups", error.Fix, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_SeveralProblems_AllReported()
    {
        var ex = LoadFails("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Loud\n- level: Metadata\n  verb: [get]\n");
        Assert.Equal(["rules[0].level", "rules[1].verb"], ex.Errors.Select(e => e.Path));
        Assert.Equal("use one of None, Metadata, Request, RequestResponse", ex.Errors[0].Fix);
    }

    [Fact]
    public void Load_InvalidYaml_ErrorWithPosition()
    {
        var ex = LoadFails("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: [Metadata\n");
        Assert.StartsWith("invalid YAML", ex.Errors[0].Message, StringComparison.Ordinal);
        Assert.True(ex.Errors[0].Line >= 4);
    }

    [Fact]
    public void Load_EmptyDocument_ClearError()
    {
        Assert.Contains("empty", LoadFails("").Message, StringComparison.Ordinal);
        Assert.Contains("must be a YAML mapping", LoadFails("just a string").Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_TwoDocuments_Rejected()
    {
        var doc = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n";
        Assert.Contains("more than one YAML document", LoadFails(doc + "---\n" + doc).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_DuplicateKey_Rejected()
    {
        var ex = LoadFails("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  level: None\n");
        Assert.Contains("duplicate key 'level' (first at line 4)", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_BillionLaughs_RejectedAtFirstAnchorWithoutExpansion()
    {
        var sb = new StringBuilder("apiVersion: audit.k8s.io/v1\nkind: Policy\nx0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for (var i = 1; i < 30; i++)
            sb.Append($"x{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]\n");
        sb.Append("rules:\n- level: Metadata\n  users: *a29\n");
        var ex = LoadFails(sb.ToString());
        Assert.Contains("anchor '&a0' is not allowed", ex.Message, StringComparison.Ordinal);
        Assert.Equal(3, ex.Errors[0].Line);
    }

    [Fact]
    public void Load_AliasOfScalar_Rejected()
    {
        var ex = LoadFails("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: &lvl Metadata\n- level: *lvl\n");
        Assert.Contains("anchor", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_DeepNesting_RejectedCleanly()
    {
        var deep = new string('[', 50_000) + new string(']', 50_000);
        var ex = LoadFails($"apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: {deep}\n");
        Assert.Contains("nesting is deeper than 32 levels", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_HugeDocument_RejectedBeforeParsing()
    {
        var huge = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n" + string.Concat(Enumerable.Repeat("- level: Metadata\n  users: [someone-with-a-long-name]\n", 40_000));
        var ex = LoadFails(huge);
        Assert.Contains("larger than the 1048576-byte limit", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_TooManyNodes_RejectedCleanly()
    {
        var many = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n  users: [" + string.Join(",", Enumerable.Repeat("a", 5000)) + "]\n";
        var ex = LoadFails(many, new AuditPolicyLoaderOptions { MaxNodes = 1000 });
        Assert.Contains("more than 1000 YAML nodes", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LoadFile_MissingFile_ClearError()
    {
        var ex = Assert.Throws<AuditPolicyException>(() => AuditPolicyLoader.LoadFile("/nonexistent/policy.yaml"));
        Assert.Contains("does not exist", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_NullListsAndQuotedEmptyGroup_TreatedAsUpstream()
    {
        var policy = AuditPolicyLoader.Load("apiVersion: audit.k8s.io/v1\nkind: Policy\nmetadata:\n  name: p\nrules:\n- level: None\n  users: ~\n  resources:\n  - group: \"\"\n    resources: [pods]\n");
        Assert.Empty(policy.Rules[0].Users);
        Assert.Equal("", policy.Rules[0].Resources[0].Group);
    }
}
