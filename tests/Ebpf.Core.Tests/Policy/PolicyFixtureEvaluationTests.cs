using Ebpf.Core.Audit;
using Ebpf.Core.Policy;
using static Ebpf.Core.Tests.Policy.PolicyTestData;

namespace Ebpf.Core.Tests.Policy;

/// <summary>Real policies evaluated against real recorded events.</summary>
public sealed class PolicyFixtureEvaluationTests
{
    private static readonly AuditEventParser Parser = new();

    private static AuditEvent Event(string path) =>
        Assert.Single(Parser.ParseDocument(File.ReadAllBytes(path), Path.GetFileName(path)).Events);

    private static PolicyDecision Evaluate(string policyFile, AuditEvent auditEvent) =>
        new AuditPolicyEvaluator(AuditPolicyLoader.LoadFile(policyFile)).Evaluate(PolicyRequest.FromAuditEvent(auditEvent));

    [Fact]
    public void Evaluate_FalcoTracesWithFalcoPolicy_ReproduceRecordedLevels()
    {
        // The falco traces were recorded by an API server running falco's k8saudit policy, so each event's
        // recorded "level" is what that policy decided for it: evaluating the same policy must agree on every one.
        var evaluator = new AuditPolicyEvaluator(AuditPolicyLoader.LoadFile(FixturePolicy("falco-k8saudit-audit-policy.yaml")));
        var checkedEvents = 0;
        foreach (var file in Directory.EnumerateFiles(Falco(""), "*.json").Order(StringComparer.Ordinal))
        {
            foreach (var e in Parser.ParseDocument(File.ReadAllBytes(file), Path.GetFileName(file)).Events)
            {
                var decision = evaluator.Evaluate(PolicyRequest.FromAuditEvent(e));
                Assert.True(decision.Level.ToString() == e.Level, $"{Path.GetFileName(file)}: recorded {e.Level}, evaluated {decision.Level} by rule {decision.RuleIndex}");
                Assert.False(decision.IsStageOmitted(AuditPolicyNames.TryParse(e.Stage, out var s) ? s : AuditStageFlags.None), $"{file}: recorded stage {e.Stage} would be omitted");
                checkedEvents++;
            }
        }
        Assert.Equal(51, checkedEvents); // 45 single-event files + 6 lines of create_configmap_sensitive_values.json (fal_01_003.json is not an event)
    }

    [Fact]
    public void Evaluate_ExecPodWithDocsExample_RequestByCoreGroupRule()
    {
        // Rule 0 names "pods", which does not match the pods/exec subresource; the first match is rule 7,
        // "all other resources in core and extensions at the Request level".
        var d = Evaluate(FixturePolicy("kubernetes-docs-example-audit-policy.yaml"), Event(Falco("exec_pod.json")));
        Assert.Equal((AuditPolicyLevel.Request, 7), (d.Level, d.RuleIndex));
        Assert.True(d.IsStageOmitted(AuditStageFlags.RequestReceived));
    }

    [Fact]
    public void Evaluate_ExecPodWithGcePolicy_RequestResponseForCreateInKnownGroup()
    {
        // SPDY exec is verb create: not the get/list/watch rule 14, so the "known APIs" rule 15 decides.
        var d = Evaluate(FixturePolicy("gce-configure-helper-audit-policy.yaml"), Event(Falco("exec_pod.json")));
        Assert.Equal((AuditPolicyLevel.RequestResponse, 15), (d.Level, d.RuleIndex));
    }

    [Fact]
    public void Evaluate_AttachPodWithDeployPolicy_MetadataByCorrelationRule()
    {
        var d = Evaluate(DeployPolicy, Event(Falco("attach_pod.json")));
        Assert.Equal((AuditPolicyLevel.Metadata, 0), (d.Level, d.RuleIndex));
        Assert.False(d.IsStageOmitted(AuditStageFlags.ResponseStarted)); // the recorded event is the ResponseStarted one
    }

    [Fact]
    public void Evaluate_ExecPodWithAudit2RbacPolicy_NoneBecauseUserNotListed()
    {
        var d = Evaluate(FixturePolicy("audit2rbac-demo-policy.yaml"), Event(Falco("exec_pod.json")));
        Assert.False(d.Matched);
        Assert.Equal(AuditPolicyLevel.None, d.Level);
    }

    [Fact]
    public void Evaluate_CreateSecretWithAksPolicy_RequestLevelLeaksSecretBody()
    {
        var d = Evaluate(FixturePolicy("aks-engine-audit-policy.rendered-k8s-ge-1.16.yaml"), Event(Falco("create_secret.json")));
        Assert.Equal((AuditPolicyLevel.Request, 5), (d.Level, d.RuleIndex));
    }

    [Fact]
    public void Evaluate_KubeSystemConfigMapWithGcePolicy_NodeReadDroppedButSecretMetadata()
    {
        var gce = FixturePolicy("gce-configure-helper-audit-policy.yaml");
        // create_nginx_pod_unsensitive_mount.json: system:node:minikube (group system:nodes) gets a pod: not in
        // the system:nodes rule (only nodes, nodes/status), so the get rule 14 logs it at Request.
        var d = Evaluate(gce, Event(Falco("create_nginx_pod_unsensitive_mount.json")));
        Assert.Equal((AuditPolicyLevel.Request, 14), (d.Level, d.RuleIndex));
        // create_service_account_token_secret.json: controller-manager creates a secret: rule 13, Metadata.
        d = Evaluate(gce, Event(Falco("create_service_account_token_secret.json")));
        Assert.Equal((AuditPolicyLevel.Metadata, 13), (d.Level, d.RuleIndex));
    }

    [Fact]
    public void Evaluate_Audit2RbacDemoLog_AllMetadataAsRecorded()
    {
        var evaluator = new AuditPolicyEvaluator(AuditPolicyLoader.LoadFile(FixturePolicy("audit2rbac-demo-policy.yaml")));
        var events = Parser.ParseDocument(File.ReadAllBytes(Path.Combine(FixtureRoot, "liggitt-audit2rbac/testdata/demo.log")), "demo.log").Events;
        Assert.Equal(37, events.Count);
        Assert.All(events, e =>
        {
            var d = evaluator.Evaluate(PolicyRequest.FromAuditEvent(e));
            Assert.Equal(e.Level, d.Level.ToString());
            Assert.Equal(0, d.RuleIndex);
        });
    }

    [Fact]
    public void FromAuditEvent_ImpersonatedRequest_PolicySeesAuthenticatedUser()
    {
        // demo.log line 1: user system:admin impersonating bob. WithAudit runs before WithImpersonation, so a
        // policy naming only the impersonated user does not match.
        var e = Parser.ParseDocument(File.ReadAllBytes(Path.Combine(FixtureRoot, "liggitt-audit2rbac/testdata/demo.log")), "demo.log").Events[0];
        Assert.Equal("bob", e.ImpersonatedUser?.Username);
        var request = PolicyRequest.FromAuditEvent(e);
        Assert.Equal("system:admin", request.User);
        var onlyBob = ParsePolicy("- level: Metadata\n  users: [bob]\n");
        Assert.False(new AuditPolicyEvaluator(onlyBob).Evaluate(request).Matched);
        var onlyAdmin = ParsePolicy("- level: Metadata\n  users: [system:admin]\n");
        Assert.True(new AuditPolicyEvaluator(onlyAdmin).Evaluate(request).Matched);
    }

    [Fact]
    public void FromAuditEvent_ExecAndNonResourceEvents_AttributesMapped()
    {
        var exec = PolicyRequest.FromAuditEvent(Event(Falco("exec_pod.json")));
        Assert.True(exec.IsResourceRequest);
        Assert.Equal(("create", "", "pods", "exec", "default", "nginx-deployment-7998647bdf-phvq7"), (exec.Verb, exec.ApiGroup, exec.Resource, exec.Subresource, exec.Namespace, exec.Name));
        Assert.Equal("minikube-user", exec.User);
        Assert.Equal(["system:masters", "system:authenticated"], exec.Groups);

        // demo.log line 10: GET /api, a non-resource request (no objectRef).
        var api = PolicyRequest.FromAuditEvent(Parser.ParseDocument(File.ReadAllBytes(Path.Combine(FixtureRoot, "liggitt-audit2rbac/testdata/demo.log")), "demo.log").Events[9]);
        Assert.False(api.IsResourceRequest);
        Assert.Equal(("get", "/api"), (api.Verb, api.Path));
        var docs = AuditPolicyLoader.LoadFile(FixturePolicy("kubernetes-docs-example-audit-policy.yaml"));
        // Docs rule 4 drops authenticated "/api*" requests; the user's groups come from the event.
        Assert.Equal(4, new AuditPolicyEvaluator(docs).Evaluate(api with { Groups = ["system:authenticated"] }).RuleIndex);
    }

    [Fact]
    public void FromAuditEvent_PathDropsQuery()
    {
        var e = Parser.ParseDocument(File.ReadAllBytes(Path.Combine(FixtureRoot, "liggitt-audit2rbac/testdata/demo.log")), "demo.log").Events[1];
        Assert.Contains('?', e.RequestUri!);
        Assert.Equal("/api/v1/namespaces/default/pods", PolicyRequest.FromAuditEvent(e).Path);
    }
}
