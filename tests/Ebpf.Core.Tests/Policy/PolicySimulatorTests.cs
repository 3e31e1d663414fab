using System.Text;
using System.Text.Json;
using Ebpf.Core.Audit;
using Ebpf.Core.Policy;
using static Ebpf.Core.Tests.Policy.PolicyTestData;

namespace Ebpf.Core.Tests.Policy;

public sealed class PolicySimulatorTests
{
    private static readonly AuditEventParser Parser = new();
    private static string DemoLog => Path.Combine(FixtureRoot, "liggitt-audit2rbac/testdata/demo.log");

    private static PolicySimulationReport SimulateFalco(AuditPolicy policy)
    {
        var simulator = new PolicySimulator(policy);
        foreach (var file in Directory.EnumerateFiles(Falco(""), "*.json").Order(StringComparer.Ordinal))
            simulator.AddDocument(File.ReadAllBytes(file), Path.GetFileName(file), Parser);
        return simulator.Report();
    }

    // Independent of AuditEventSize: removes the two object properties with JsonDocument offsets taken from the raw text.
    private static long MetadataSize(string rawEvent)
    {
        using var doc = JsonDocument.Parse(rawEvent);
        long size = Encoding.UTF8.GetByteCount(rawEvent);
        foreach (var name in new[] { "requestObject", "responseObject" })
        {
            if (doc.RootElement.TryGetProperty(name, out var value))
            {
                var property = $"\"{name}\":{value.GetRawText()}";
                Assert.Contains(property, rawEvent, StringComparison.Ordinal);
                size -= Encoding.UTF8.GetByteCount(property) + 1;
            }
        }
        return size;
    }

    [Fact]
    public void Simulate_Audit2RbacDemoLogWithItsPolicy_EverythingKeptByteForByte()
    {
        var lines = File.ReadAllLines(DemoLog).Where(l => l.Length > 0).ToArray();
        var simulator = new PolicySimulator(AuditPolicyLoader.LoadFile(FixturePolicy("audit2rbac-demo-policy.yaml")));
        using (var stream = File.OpenRead(DemoLog))
            simulator.AddJsonLines(stream, "demo.log", Parser);
        var report = simulator.Report();

        long expectedBytes = lines.Sum(l => (long)Encoding.UTF8.GetByteCount(l));
        Assert.Equal((37L, 0L, 37L), (report.EventsRead, report.EventsRejected, report.EventsKept));
        Assert.Equal(expectedBytes, report.BytesIn);
        Assert.Equal(expectedBytes, report.BytesKept); // recorded at Metadata: nothing to strip
        var rule0 = report.ByRule.Single(r => r.RuleIndex == 0);
        Assert.Equal((37L, 37L), (rule0.Events, rule0.EventsKept));
        Assert.Equal(["RequestReceived", "ResponseStarted", "Panic"], rule0.OmittedStages);
        Assert.Equal(37, report.ByLevel.Single(l => l.Level == AuditPolicyLevel.Metadata).EventsKept);
        Assert.Equal(0, report.ByRule.Single(r => r.RuleIndex is null).Events);
    }

    [Fact]
    public void Simulate_FalcoTracesWithDocsExample_CountsAndBytesPerRule()
    {
        var report = SimulateFalco(AuditPolicyLoader.LoadFile(FixturePolicy("kubernetes-docs-example-audit-policy.yaml")));

        Assert.Equal(52, report.EventsRead);
        Assert.Equal(1, report.EventsRejected); // fal_01_003.json: {"kind": 0}
        Assert.Contains(report.Rejections, r => r.StartsWith("fal_01_003.json", StringComparison.Ordinal));

        // Rule 6 (Metadata secrets+configmaps outside kube-system): 4 secret events + 9 configmap events in "default".
        var secretFiles = new[] { "create_secret.json", "create_kube_system_secret.json", "create_service_account_token_secret.json", "delete_secret.json" };
        var configMapFiles = new[] { "create_configmap.json", "create_configmap_no_sensitive_values.json", "create_configmap_sensitive_values.json", "delete_configmap.json" };
        var rawEvents = secretFiles.Concat(configMapFiles)
            .SelectMany(f => File.ReadAllLines(Falco(f)).Where(l => l.Trim().Length > 0))
            .ToArray();
        Assert.Equal(13, rawEvents.Length);
        var rule6 = report.ByRule.Single(r => r.RuleIndex == 6);
        Assert.Equal((13L, 13L), (rule6.Events, rule6.EventsKept));
        Assert.Equal(rawEvents.Sum(MetadataSize), rule6.BytesKept);
        Assert.True(rule6.BytesKept < rule6.BytesIn, "configmap bodies recorded at RequestResponse are dropped at Metadata");

        // Rule 0 (pods at RequestResponse): the 10 pod creations and the node's pod get.
        var rule0 = report.ByRule.Single(r => r.RuleIndex == 0);
        Assert.Equal(11, rule0.Events);
        Assert.Equal(rule0.BytesIn, rule0.BytesKept);

        // exec_pod and attach_pod are pods/exec and pods/attach: not "pods", so the core-group rule 7 at Request.
        var rule7 = report.ByRule.Single(r => r.RuleIndex == 7);
        Assert.True(rule7.Events >= 2);

        // Every event matched some rule (the docs example ends in a catch-all); the levels add up.
        Assert.Equal(0, report.ByRule.Single(r => r.RuleIndex is null).Events);
        Assert.Equal(report.EventsRead - report.EventsRejected, report.ByLevel.Sum(l => l.Events));
        Assert.Equal(report.BytesKept, report.ByLevel.Sum(l => l.BytesKept));
    }

    [Fact]
    public void Simulate_OmittedResponseStarted_ExecAndAttachDroppedByStage()
    {
        var policy = ParsePolicy("- level: Metadata\n", "omitStages: [RequestReceived, ResponseStarted]\n");
        var report = SimulateFalco(policy);
        // exec_pod.json and attach_pod.json are the only ResponseStarted events in the traces.
        Assert.Equal(new Dictionary<string, long> { ["ResponseStarted"] = 2 }, report.DroppedByStage);
        Assert.Equal(2, report.ByRule[0].DroppedByStage);
        Assert.Equal(49, report.EventsKept);
    }

    [Fact]
    public void Simulate_NoneEverywhere_NothingKept()
    {
        var report = SimulateFalco(ParsePolicy("- level: None\n"));
        Assert.Equal(0, report.EventsKept);
        Assert.Equal(0, report.BytesKept);
        Assert.Equal(51, report.ByRule[0].DroppedByLevel);
        Assert.Equal(51, report.ByLevel.Single(l => l.Level == AuditPolicyLevel.None).Events);
    }

    [Fact]
    public void Simulate_RequestLevel_KeepsRequestObjectDropsResponseObject()
    {
        var raw = File.ReadAllText(Falco("create_configmap.json")).Trim();
        var e = Assert.Single(Parser.ParseDocument(Encoding.UTF8.GetBytes(raw)).Events);
        var size = AuditEventSize.Of(e);
        using var doc = JsonDocument.Parse(raw);
        var response = "\"responseObject\":" + doc.RootElement.GetProperty("responseObject").GetRawText();
        var request = "\"requestObject\":" + doc.RootElement.GetProperty("requestObject").GetRawText();
        Assert.Equal(Encoding.UTF8.GetByteCount(raw), size.Total);
        Assert.Equal(size.Total - response.Length - 1, size.AtLevel(AuditPolicyLevel.Request));
        Assert.Equal(size.Total - response.Length - request.Length - 2, size.AtLevel(AuditPolicyLevel.Metadata));
        Assert.Equal(size.Total, size.AtLevel(AuditPolicyLevel.RequestResponse));
        Assert.Equal(0, size.AtLevel(AuditPolicyLevel.None));
    }

    [Fact]
    public void AddJsonLines_OverlongAndGarbageLines_CountedAsRejectedOthersKept()
    {
        var demo = File.ReadAllLines(DemoLog);
        var options = new AuditParserOptions { MaxEventBytes = 4096, MaxDocumentBytes = 1 << 20 };
        var parser = new AuditEventParser(options);
        var text = demo[0] + "\n" + new string('x', 20_000) + "\nnot json\n\n" + demo[1] + "\r\n" + demo[2];
        var simulator = new PolicySimulator(ParsePolicy("- level: Metadata\n"));
        simulator.AddJsonLines(new MemoryStream(Encoding.UTF8.GetBytes(text)), "mixed.log", parser);
        var report = simulator.Report();
        Assert.Equal(3, report.EventsKept);
        Assert.Equal(2, report.EventsRejected);
        Assert.Contains(report.Rejections, r => r.StartsWith("mixed.log:2: line is longer", StringComparison.Ordinal));
        Assert.Contains(report.Rejections, r => r.StartsWith("mixed.log:3", StringComparison.Ordinal));
    }
}
