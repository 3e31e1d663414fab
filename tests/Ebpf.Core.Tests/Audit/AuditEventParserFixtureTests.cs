using Ebpf.Core.Audit;

namespace Ebpf.Core.Tests.Audit;

public sealed class AuditEventParserFixtureTests
{
    private static readonly AuditEventParser Parser = new();

    // Expected (events, rejected) per fixture file, counted by hand from the files (see SOURCES.md).
    public static TheoryData<string, int, int> Expectations() => new()
    {
        { "falcosecurity-falco/test/trace_files/k8s_audit/create_configmap_sensitive_values.json", 6, 0 },
        { "falcosecurity-falco/test/trace_files/k8s_audit/fal_01_003.json", 0, 1 },
        { "liggitt-audit2rbac/testdata/demo.log", 37, 0 },
        { "elastic-integrations/packages/kubernetes/data_stream/audit_logs/_dev/test/pipeline/test-audit.log", 5, 0 },
        { "elastic-integrations/packages/kubernetes/data_stream/audit_logs/_dev/test/pipeline/test-kube-audit.log", 1, 0 },
        { "elastic-integrations/packages/gcp/data_stream/audit/_dev/test/pipeline/test-k8s-nonmatching-resourcename.log", 1, 0 },
    };

    [Theory]
    [MemberData(nameof(Expectations))]
    public void ParseDocument_FixtureFile_ParsesExpectedCounts(string relative, int events, int rejected)
    {
        var batch = Parser.ParseDocument(File.ReadAllBytes(AuditFixtures.Path_(relative)), relative);

        Assert.Null(batch.DocumentError);
        Assert.Equal(events, batch.Events.Count);
        Assert.Equal(rejected, batch.RejectedCount);
    }

    [Fact]
    public void ParseDocument_EveryFixtureFile_ParsesOrRejectsWithReason()
    {
        var files = AuditFixtures.EventFiles().ToList();
        Assert.Equal(51, files.Count); // 47 falco files, demo.log, 3 elastic logs
        var totalEvents = 0;
        foreach (var file in files)
        {
            var relative = Path.GetRelativePath(AuditFixtures.Root, file);
            var batch = Parser.ParseDocument(File.ReadAllBytes(file), relative);
            Assert.Null(batch.DocumentError);
            Assert.NotEmpty(batch.Items);
            foreach (var item in batch.Items)
            {
                if (Path.GetFileName(file) == "fal_01_003.json")
                {
                    Assert.False(item.IsEvent);
                    Assert.StartsWith(relative, item.Location, StringComparison.Ordinal);
                    Assert.Contains("kind", item.Rejection!, StringComparison.Ordinal);
                    continue;
                }

                Assert.True(item.IsEvent, item.ToString());
                var ev = item.Event!;
                Assert.False(ev.RawJson.IsEmpty);
                Assert.NotNull(ev.Derived.StageTime);
                Assert.Equal(ev.AuditId, ev.Derived.DedupeKey.AuditId);
                totalEvents++;
            }
        }

        // 45 single-event falco files + 6 lines + 37 (audit2rbac) + 5 + 1 + 1 (elastic).
        Assert.Equal(45 + 6 + 37 + 7, totalEvents);
    }

    [Fact]
    public void ParseDocument_FalcoExec_KeepsV1Beta1FieldsAndDerivesCommand()
    {
        var ev = Single("falcosecurity-falco/test/trace_files/k8s_audit/exec_pod.json");

        Assert.Null(ev.ApiVersion);
        Assert.Equal(new DateTimeOffset(2018, 10, 26, 13, 38, 34, TimeSpan.Zero), ev.Timestamp);
        Assert.Equal(ev.Timestamp, ev.Metadata?.CreationTimestamp);
        Assert.Equal(101, ev.ResponseStatus?.Code);
        var s = ev.Derived.Streaming!;
        Assert.Equal(AuditStreamingKind.Exec, s.Kind);
        Assert.Equal("default", s.PodNamespace);
        Assert.Equal("nginx-deployment-7998647bdf-phvq7", s.PodName);
        Assert.Equal("nginx1", s.Container);
        Assert.Equal(["bash"], s.Command);
        Assert.True(s.Tty && s.Stdin && s.Stdout);
        Assert.False(s.Stderr);
        Assert.Null(s.QueryError);
        Assert.Equal("minikube-user", ev.Derived.AttributedUser?.Username);
        Assert.Equal(new AuditDedupeKey("ca1ed9f4-7bf4-4c85-81a8-1b11253d1ba6", "ResponseStarted", DateTimeOffset.Parse("2018-10-26T13:38:34.902914Z")), ev.Derived.DedupeKey);
    }

    [Fact]
    public void ParseDocument_FalcoAttach_DerivesStreamsAndContainer()
    {
        var s = Single("falcosecurity-falco/test/trace_files/k8s_audit/attach_pod.json").Derived.Streaming!;

        Assert.Equal(AuditStreamingKind.Attach, s.Kind);
        Assert.Equal("nginx1", s.Container);
        Assert.Empty(s.Command);
        Assert.True(s.Stdin && s.Stdout && s.Stderr);
        Assert.False(s.Tty);
    }

    [Fact]
    public void ParseDocument_Audit2RbacImpersonation_AttributesImpersonatedUser()
    {
        var batch = Parser.ParseDocument(File.ReadAllBytes(AuditFixtures.Path_("liggitt-audit2rbac/testdata/demo.log")), "demo.log");
        var ev = batch.Events[0];

        Assert.True(ev.Derived.IsImpersonated);
        Assert.Equal("bob", ev.Derived.AttributedUser?.Username);
        Assert.Equal("system:admin", ev.User?.Username);
        Assert.Equal(403, ev.ResponseStatus?.Code);
        Assert.Equal("Forbidden", ev.ResponseStatus?.Reason);
        Assert.Equal("Failure", ev.ResponseStatus?.Status);
        Assert.Null(ev.StageTimestamp);
        Assert.Equal(ev.Timestamp, ev.Derived.StageTime);
    }

    [Fact]
    public void ParseDocument_ElasticCloudEnvelopes_UnwrapToTheModel()
    {
        var batch = Parser.ParseDocument(File.ReadAllBytes(AuditFixtures.Path_("elastic-integrations/packages/kubernetes/data_stream/audit_logs/_dev/test/pipeline/test-audit.log")), "test-audit.log");
        var gke = batch.Events[3];
        var aks = batch.Events[4];

        Assert.Equal(AuditSourceFormat.GkeCloudLogging, gke.SourceFormat);
        Assert.Equal("system:gke-master-healthcheck", gke.User?.Username);
        Assert.Equal("get", gke.Verb);
        Assert.Equal("/readyz", gke.RequestUri);
        Assert.Equal(200, gke.ResponseStatus?.Code);
        Assert.Equal("1234abcd", gke.AuditId);
        Assert.Equal(["67.43.156.1"], gke.SourceIps);

        Assert.Equal(AuditSourceFormat.AksDiagnosticRecord, aks.SourceFormat);
        Assert.Equal("aksService", aks.User?.Username);
        Assert.Equal("update", aks.Verb);
        Assert.Equal("12345678", aks.ObjectRef?.ResourceVersion);
        Assert.StartsWith("{\"kind\":\"Event\"", System.Text.Encoding.UTF8.GetString(aks.RawJson.Span), StringComparison.Ordinal);

        var kubeAudit = Parser.ParseDocument(File.ReadAllBytes(AuditFixtures.Path_("elastic-integrations/packages/kubernetes/data_stream/audit_logs/_dev/test/pipeline/test-kube-audit.log")), "x").Events.Single();
        Assert.Equal(AuditSourceFormat.AksDiagnosticRecord, kubeAudit.SourceFormat);
        Assert.Equal("ad26f7bc-f1c6-4097-90f1-e0924e12f257", kubeAudit.AuditId);
        Assert.Equal("kubelet-serving-csr-approver", kubeAudit.ObjectRef?.Name);
    }

    [Fact]
    public void ParseDocument_GkeAnonymousProbe_MapsDeniedToForbidden()
    {
        var ev = Single("elastic-integrations/packages/gcp/data_stream/audit/_dev/test/pipeline/test-k8s-nonmatching-resourcename.log");

        Assert.Equal("system:anonymous", ev.User?.Username);
        Assert.Equal(403, ev.ResponseStatus?.Code);
        Assert.Equal("/HNAP1", ev.RequestUri);
        Assert.Equal(AuditLevels.RequestResponse, ev.Level);
        Assert.True(ev.ResponseObject.HasValue);
    }

    [Fact]
    public void ParseDocument_FalcoRequestObject_KeptAsRawJson()
    {
        var ev = Single("falcosecurity-falco/test/trace_files/k8s_audit/create_nginx_pod_privileged.json");

        Assert.Equal(System.Text.Json.JsonValueKind.Object, ev.RequestObject?.ValueKind);
        var privileged = ev.RequestObject!.Value.GetProperty("spec").GetProperty("containers")[0].GetProperty("securityContext").GetProperty("privileged");
        Assert.True(privileged.GetBoolean());
    }

    private static AuditEvent Single(string relative)
    {
        var batch = Parser.ParseDocument(File.ReadAllBytes(AuditFixtures.Path_(relative)), relative);
        Assert.Null(batch.DocumentError);
        return Assert.Single(batch.Events);
    }
}
