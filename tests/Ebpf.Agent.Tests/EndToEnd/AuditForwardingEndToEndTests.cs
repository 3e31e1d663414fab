using Ebpf.Api.ExecTrace;
using Ebpf.Api.V1;
using Ebpf.Testing.KubeApi;
using Xunit.Abstractions;

namespace Ebpf.Agent.Tests.EndToEnd;

/// <summary>
/// A two-node cluster on one machine: two real agent processes, node A and node B, against one Kubernetes API test
/// server that lists the workload pod on node B and one agent pod per node. The API server's webhook batch reaches
/// agent A (as through the Service); only agent B knows the pod, so only forwarding lets B join the exec. Both agents
/// see every kernel event (same kernel), so A seeing B's processes is an artefact of the test, not of a cluster.
/// </summary>
[Collection(EndToEndCollection.Name)]
public sealed class AuditForwardingEndToEndTests(ITestOutputHelper output)
{
    private static readonly AuditUser Alice = new("alice@example.com", ["developers", "system:authenticated"], "10.20.30.40");

    [EndToEndFact]
    public async Task ExecAuditPostedToOtherNodesAgent_ForwardedToPodsNodeAgent_CertainSessionThereOnly()
    {
        await using var scene = await PodScene.StartAsync("forward");
        string nodeB = scene.NodeName, nodeA = scene.NodeName + "-a";
        string agentNamespace = "ebpf-" + scene.Namespace;
        var work = Directory.CreateTempSubdirectory("ebpf-e2e-forward-").FullName;
        try
        {
            string tokenFile = Path.Combine(work, "token");
            await File.WriteAllTextAsync(tokenFile, "fwd-" + Guid.NewGuid().ToString("N") + "\n");
            string forwarding = $"""
                audit:
                  forwarding:
                    enabled: true
                    tokenFile: {tokenFile}
                    namespace: {agentNamespace}
                """;
            AgentProcessOptions For(string node) => new()
            {
                NodeName = node,
                Kubeconfig = scene.KubeApi.Kubeconfig(),
                AuditWaitWindow = TimeSpan.FromSeconds(15),
                ExtraConfig = forwarding,
            };
            await using var agentA = await AgentProcess.StartAsync(For(nodeA));
            await using var agentB = await AgentProcess.StartAsync(For(nodeB));
            // The DaemonSet's pods: the forwarder finds B's agent by its node, its IP and its "webhook" container port.
            scene.KubeApi.AddPod(KubePodTemplate.CreateAgent(nodeA, "127.0.0.1", agentA.WebhookUri.Port, agentNamespace, "ebpf-agent-a"));
            scene.KubeApi.AddPod(KubePodTemplate.CreateAgent(nodeB, "127.0.0.1", agentB.WebhookUri.Port, agentNamespace, "ebpf-agent-b"));
            try
            {
                string[] argv = ["sh", "-c", "cat /etc/hostname; echo forwarded"];
                var request = scene.ExecRequest(argv, Alice, DateTimeOffset.UtcNow);
                await agentA.PostAuditAsync(ExecAuditRequest.EventList(request.Stage("ResponseStarted", request.RequestReceived.AddMilliseconds(40))));
                var exec = await scene.Container.ExecAsync(argv);
                Assert.Equal(0, exec.ExitCode);
                await agentA.PostAuditAsync(ExecAuditRequest.EventList(request.Stage("ResponseComplete", DateTimeOffset.UtcNow)));

                using var clientB = agentB.CreateClient();
                var detail = await EventuallyAsync(async () =>
                {
                    var list = await clientB.ListSessionsAsync(new ListSessionsRequest { Namespace = scene.Namespace, Pod = scene.Pod });
                    var session = list.Sessions.SingleOrDefault(s => s.AuditId == request.AuditId);
                    if (session is not { Confidence: Confidence.Certain }) return null;
                    var d = await clientB.GetSessionAsync(new GetSessionRequest { Id = session.Id });
                    return d.Processes.Any(p => p.Argv.SequenceEqual(["cat", "/etc/hostname"])) ? d : null;
                }, "node B's agent joins the forwarded exec with its processes");
                output.WriteLine(detail.ToString());
                var s = detail.Session;
                Assert.Equal(SessionKind.Exec, s.Kind);
                Assert.Equal(Alice.Name, s.User);
                Assert.Equal(scene.PodUid, s.Workload.PodUid);
                Assert.Equal(argv, detail.Processes[0].Argv);

                // B got both stages through the forwarded endpoint; A kept them as well and attributed nothing.
                using var clientA = agentA.CreateClient();
                var touchedB = await clientB.WhoTouchedAsync(new WhoTouchedRequest { Namespace = scene.Namespace, Pod = scene.Pod });
                Assert.Equal(2, touchedB.AuditEvents.Count(e => e.AuditId == request.AuditId));
                var touchedA = await clientA.WhoTouchedAsync(new WhoTouchedRequest { Namespace = scene.Namespace, Pod = scene.Pod });
                Assert.Equal(2, touchedA.AuditEvents.Count(e => e.AuditId == request.AuditId));
                var sessionsA = await clientA.ListSessionsAsync(new ListSessionsRequest());
                Assert.DoesNotContain(sessionsA.Sessions, x => x.AuditId == request.AuditId);
                Assert.DoesNotContain(sessionsA.Sessions, x => x.User == Alice.Name);

                using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
                string metricsA = await http.GetStringAsync(new Uri(agentA.HealthAddress, "/metrics"));
                string metricsB = await http.GetStringAsync(new Uri(agentB.HealthAddress, "/metrics"));
                Assert.Contains("ebpf_audit_forwarding_total{counter=\"forwarded\"} 2", metricsA, StringComparison.Ordinal);
                Assert.Contains("ebpf_audit_forwarded_total{counter=\"appended\"} 2", metricsB, StringComparison.Ordinal);
                Assert.Contains("ebpf_audit_forwarding_total{counter=\"candidates\"} 0", metricsB, StringComparison.Ordinal);
            }
            catch
            {
                output.WriteLine("---- agent A ----");
                output.WriteLine(agentA.Output);
                output.WriteLine("---- agent B ----");
                output.WriteLine(agentB.Output);
                throw;
            }
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    private static async Task<T> EventuallyAsync<T>(Func<Task<T?>> probe, string what) where T : class
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var value = await probe();
            if (value is not null) return value;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"timed out waiting for {what}");
            await Task.Delay(250);
        }
    }
}
