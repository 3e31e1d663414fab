using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Ebpf.Api.ExecTrace;
using Ebpf.Api.V1;
using Ebpf.Testing.Runc;
using Xunit.Abstractions;

namespace Ebpf.Agent.Tests.EndToEnd;

/// <summary>
/// The real agent process on the other pod-access paths of docs/correlation.md: <c>kubectl debug</c> (an ephemeral
/// container: a second runc container in the pod's cgroup, named in the pod status), <c>kubectl port-forward</c>
/// (loopback connections from outside any container during the request's window) and pod-bound service-account
/// tokens (the pod's connections to the API server endpoint the agent derives from its kubeconfig).
/// </summary>
[Collection(EndToEndCollection.Name)]
public sealed class PodAccessEndToEndTests(ITestOutputHelper output)
{
    private static readonly TimeSpan SettleTimeout = TimeSpan.FromSeconds(20);
    private static readonly AuditUser Carol = new("carol@example.com", ["sre", "system:authenticated"], "10.20.30.42");

    [EndToEndFact]
    public async Task KubectlDebug_EphemeralContainerNamedInPatch_CertainDebugSessionWithItsProcesses()
    {
        await using var scene = await PodScene.StartAsync("debug");
        await using var agent = await AgentProcess.StartAsync(scene.AgentOptions());
        await WithAgentOutputAsync(agent, scene, async () =>
        {
            string ephemeralName = "debugger-" + Guid.NewGuid().ToString("N")[..5];
            string ephemeralId = RuncContainer.NewContainerId();
            var received = DateTimeOffset.UtcNow;
            // What the kubelet reports once it started the container the patch added.
            var pod = (JsonObject)scene.PodObject.DeepClone();
            pod["spec"]!["ephemeralContainers"] = new JsonArray(new JsonObject
            {
                ["name"] = ephemeralName,
                ["image"] = "busybox:1.36",
                ["command"] = new JsonArray("sh"),
                ["stdin"] = true,
                ["tty"] = true,
                ["targetContainerName"] = scene.ContainerName,
                ["terminationMessagePath"] = "/dev/termination-log",
                ["terminationMessagePolicy"] = "File",
                ["imagePullPolicy"] = "IfNotPresent",
                ["resources"] = new JsonObject(),
            });
            pod["status"]!["ephemeralContainerStatuses"] = new JsonArray(new JsonObject
            {
                ["name"] = ephemeralName,
                ["state"] = new JsonObject { ["running"] = new JsonObject { ["startedAt"] = received.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture) } },
                ["lastState"] = new JsonObject(),
                ["ready"] = false,
                ["restartCount"] = 0,
                ["image"] = "docker.io/library/busybox:1.36",
                ["imageID"] = "docker.io/library/busybox@sha256:9ae97d36d26566ff84e8893c64a6dc4fe8ca6d1144bf5b87b2b85a32def253c7",
                ["containerID"] = "containerd://" + ephemeralId,
            });
            scene.KubeApi.ModifyPod(pod);
            // The watch delivers the MODIFIED event asynchronously; before it, the container would only be inferred.
            await Task.Delay(TimeSpan.FromSeconds(1.5));

            await using var debugger = await RuncContainer.StartAsync(new RuncContainerOptions
            {
                CgroupsPath = $"/kubepods/besteffort/pod{scene.PodUid}/{ephemeralId}",
                Args = ["sh", "-c", "cat /etc/hostname; id; sleep 3600"],
                HostNetwork = true,
            });
            string auditId = Guid.NewGuid().ToString();
            await agent.PostAuditAsync(ExecAuditRequest.EventList(PodAccessAuditEvents.DebugPatch(auditId, scene.Namespace, scene.Pod,
                ephemeralName, scene.ContainerName, Carol, received, received.AddMilliseconds(25))));

            using var client = agent.CreateClient();
            var detail = await EventuallyAsync(async () =>
            {
                var list = await client.ListSessionsAsync(new ListSessionsRequest { Namespace = scene.Namespace, Pod = scene.Pod });
                var s = list.Sessions.SingleOrDefault(x => x.AuditId == auditId);
                if (s is null) return null;
                var d = await client.GetSessionAsync(new GetSessionRequest { Id = s.Id });
                bool complete = d.Processes.Any(p => p.Argv.SequenceEqual(["cat", "/etc/hostname"]) && p.Files.Any(f => f.Path == "/etc/hostname"))
                    && d.Processes.Any(p => p.Images.Any(i => i.Argv.SequenceEqual(["sh", "-c", "cat /etc/hostname; id; sleep 3600"])));
                return complete ? d : null;
            }, "a debug session with the ephemeral container's processes");
            output.WriteLine(detail.ToString());

            var session = detail.Session;
            Assert.Equal(SessionKind.Debug, session.Kind);
            Assert.Equal(Confidence.Certain, session.Confidence);
            Assert.Equal(Carol.Name, session.User);
            Assert.Equal([Carol.SourceIp], session.SourceIps);
            Assert.Equal(ephemeralName, session.Container);
            Assert.Equal(scene.PodUid, session.Workload.PodUid);
            Assert.Equal(ephemeralId, session.Workload.ContainerId);
            // The container's init shell and the children it forked, one tree.
            Assert.Equal(session.RootProcessKey, detail.Processes[0].ProcessKey);
            var keys = detail.Processes.Select(p => p.ProcessKey).ToHashSet();
            var cat = Assert.Single(detail.Processes, p => p.Argv.SequenceEqual(["cat", "/etc/hostname"]));
            var shell = Assert.Single(detail.Processes, p => p.Images.Any(i => i.Argv.FirstOrDefault() == "sh"));
            Assert.Equal(shell.ProcessKey, cat.ParentProcessKey);
            Assert.Contains(shell.ParentProcessKey, keys);
            Assert.Contains(cat.Files, f => f.Path == "/etc/hostname" && f.Result >= 0);

            // The entrypoint is the container's init, not an exec into it: past the audit wait window no
            // unattributed session or finding (runc's nsexec stages fork in the cgroup before the entrypoint execs).
            await Task.Delay(TimeSpan.FromSeconds(6));
            var sessions = await client.ListSessionsAsync(new ListSessionsRequest { Namespace = scene.Namespace, Pod = scene.Pod });
            Assert.Equal(auditId, Assert.Single(sessions.Sessions).AuditId);
            var findings = await client.ListFindingsAsync(new ListFindingsRequest { Namespace = scene.Namespace, Pod = scene.Pod });
            Assert.Empty(findings.Findings);
        });
    }

    [EndToEndFact]
    public async Task KubectlPortForward_LoopbackConnectsOutsideContainersInWindow_PortForwardSessionCountsThem()
    {
        await using var scene = await PodScene.StartAsync("portforward");
        // The runtime's port-forward socket is opened by a host process (containerd/CRI-O), not by a container
        // process, so the default capture filter (kubepods cgroups only) never reports it: capture everything here.
        await using var agent = await AgentProcess.StartAsync(scene.AgentOptions(captureFilter: "all"));
        await WithAgentOutputAsync(agent, scene, async () =>
        {
            using var listener = new TinyHttpServer();
            string auditId = Guid.NewGuid().ToString();
            var received = DateTimeOffset.UtcNow;
            await agent.PostAuditAsync(ExecAuditRequest.EventList(PodAccessAuditEvents.PortForward(auditId, "ResponseStarted",
                scene.Namespace, scene.Pod, listener.Port, Carol, received, received.AddMilliseconds(20))));

            // A process of the pod's container connecting to the same port is the pod's own traffic, not the forward.
            var exec = await scene.Container.ExecAsync(["sh", "-c", $"wget -q -O- http://127.0.0.1:{listener.Port}/; echo done"]);
            Assert.Equal(0, exec.ExitCode);
            // Stand-in for the runtime's connection: the runtime (outside any container cgroup) enters the pod's netns
            // and connects to localhost:port. This test process is such a host process; with no netns in the connect
            // record (docs/correlation.md, port-forward limit) the agent can only match loopback + port, which is
            // exactly what a host process here exercises.
            const int forwarded = 2;
            for (int i = 0; i < forwarded; i++)
            {
                using var connection = new TcpClient(AddressFamily.InterNetwork);
                await connection.ConnectAsync(IPAddress.Loopback, listener.Port);
            }
            // The stream closes after its connections and the webhook batches: the ResponseComplete event reaches the
            // agent well after the connect records. Without this pause the audit channel can overtake the ring
            // buffer, and connections counted after the last session update stay out of the stored count.
            await Task.Delay(TimeSpan.FromSeconds(1));
            await agent.PostAuditAsync(ExecAuditRequest.EventList(PodAccessAuditEvents.PortForward(auditId, "ResponseComplete",
                scene.Namespace, scene.Pod, listener.Port, Carol, received, DateTimeOffset.UtcNow)));

            using var client = agent.CreateClient();
            var session = await EventuallyAsync(async () =>
            {
                var list = await client.ListSessionsAsync(new ListSessionsRequest { Namespace = scene.Namespace, Pod = scene.Pod });
                var s = list.Sessions.SingleOrDefault(x => x.AuditId == auditId);
                return s is { ConnectCount: >= forwarded, ResponseComplete: not null } ? s : null;
            }, "a port-forward session counting the loopback connections");
            output.WriteLine(session.ToString());
            Assert.Equal(SessionKind.PortForward, session.Kind);
            Assert.Equal(Carol.Name, session.User);
            Assert.Equal(scene.PodUid, session.Workload.PodUid);
            // Loopback + port only, the pod's network namespace unknown: probable, never certain (docs/correlation.md).
            Assert.Equal(Confidence.Probable, session.Confidence);
            // The host connections, not the container's own wget to the same port.
            Assert.Equal((uint)forwarded, session.ConnectCount);
            Assert.True(listener.Requests >= 1, "the container's wget never reached the listener");
        });
    }

    [EndToEndFact]
    public async Task PodBoundToken_PodConnectedToApiServer_NoFindingFromPodIpAndFindingFromForeignIp()
    {
        await using var scene = await PodScene.StartAsync("sa-token");
        // No correlation.apiServerEndpoints in the config: the agent derives 127.0.0.1:<port> from the kubeconfig.
        await using var agent = await AgentProcess.StartAsync(scene.AgentOptions());
        await WithAgentOutputAsync(agent, scene, async () =>
        {
            Assert.Contains($"127.0.0.1:{scene.KubeApi.Port}", agent.Output, StringComparison.Ordinal);
            using var client = agent.CreateClient();
            string credentialId = "JTI=" + Guid.NewGuid();
            JsonObject Token(string auditId, string sourceIp, DateTimeOffset received) => PodAccessAuditEvents.PodTokenGet(auditId,
                scene.Namespace, "default", scene.Pod, scene.PodUid, scene.NodeName, credentialId, sourceIp, received);

            // Before any connection of the pod to the API server: the pod's address alone does not clear the token.
            string beforeConnect = Guid.NewGuid().ToString();
            await agent.PostAuditAsync(ExecAuditRequest.EventList(Token(beforeConnect, scene.PodIp, DateTimeOffset.UtcNow)));
            var unconnected = await EventuallyAsync(() => FindingAsync(client, scene, beforeConnect),
                "a token-used-outside-pod finding for the call no pod process could have made");
            output.WriteLine(unconnected.ToString());
            Assert.Contains("no process", unconnected.Summary, StringComparison.Ordinal);

            // The pod's process dials the API server: the connect is what counts, not the (unauthenticated) answer.
            var exec = await scene.Container.ExecAsync(["sh", "-c", $"wget -O- http://127.0.0.1:{scene.KubeApi.Port}/api; echo done"]);
            output.WriteLine(exec.StandardOutput + exec.StandardError);
            Assert.Equal(0, exec.ExitCode);
            Assert.Contains("Connecting to 127.0.0.1", exec.StandardError, StringComparison.Ordinal);
            Assert.DoesNotContain("refused", exec.StandardError, StringComparison.OrdinalIgnoreCase);

            var now = DateTimeOffset.UtcNow;
            string fromPod = Guid.NewGuid().ToString(), fromOutside = Guid.NewGuid().ToString();
            const string foreignIp = "198.51.100.99";
            await agent.PostAuditAsync(ExecAuditRequest.EventList(Token(fromPod, scene.PodIp, now), Token(fromOutside, foreignIp, now.AddMilliseconds(5))));

            var outside = await EventuallyAsync(() => FindingAsync(client, scene, fromOutside), "a token-used-outside-pod finding for the foreign address");
            output.WriteLine(outside.ToString());
            Assert.Equal(Severity.High, outside.Severity);
            Assert.Equal($"system:serviceaccount:{scene.Namespace}:default", outside.User);
            Assert.Equal(foreignIp, outside.Evidence["sourceIPs"]);
            Assert.Equal(scene.PodIp, outside.Evidence["podIPs"]);
            Assert.Equal(scene.PodUid, outside.Evidence["podUid"]);
            Assert.Equal(credentialId, outside.Evidence["credentialId"]);
            Assert.Equal("get", outside.Evidence["verb"]);
            Assert.Equal("configmaps", outside.Evidence["resource"]);
            Assert.Contains(foreignIp, outside.Summary, StringComparison.Ordinal);

            // The same token from the pod's address while its process was connected: past the check's deadline
            // (clock skew 2 s + node-event grace 5 s) still no finding.
            await Task.Delay(now.AddSeconds(9) - DateTimeOffset.UtcNow is { } wait && wait > TimeSpan.Zero ? wait : TimeSpan.Zero);
            var all = await client.ListFindingsAsync(new ListFindingsRequest { Namespace = scene.Namespace, Pod = scene.Pod });
            output.WriteLine(all.ToString());
            Assert.DoesNotContain(all.Findings, f => f.Evidence.TryGetValue("auditId", out var id) && id == fromPod);
            Assert.Equal(2, all.Findings.Count(f => f.Kind == "token-used-outside-pod"));
        });
    }

    private static async Task<Finding?> FindingAsync(ExecTraceClient client, PodScene scene, string auditId)
    {
        var findings = await client.ListFindingsAsync(new ListFindingsRequest { Namespace = scene.Namespace, Pod = scene.Pod });
        return findings.Findings.FirstOrDefault(f => f.Kind == "token-used-outside-pod" && f.Evidence.TryGetValue("auditId", out var id) && id == auditId);
    }

    private static async Task<T> EventuallyAsync<T>(Func<Task<T?>> probe, string what, TimeSpan? timeout = null) where T : class
    {
        var deadline = DateTime.UtcNow + (timeout ?? SettleTimeout);
        while (true)
        {
            var value = await probe();
            if (value is not null) return value;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"timed out waiting for {what}");
            await Task.Delay(250);
        }
    }

    private async Task WithAgentOutputAsync(AgentProcess agent, PodScene scene, Func<Task> body)
    {
        try
        {
            await body();
        }
        catch
        {
            try
            {
                using var client = agent.CreateClient();
                output.WriteLine("---- sessions of the pod ----");
                var sessions = await client.ListSessionsAsync(new ListSessionsRequest { Namespace = scene.Namespace, Pod = scene.Pod });
                foreach (var s in sessions.Sessions)
                    output.WriteLine((await client.GetSessionAsync(new GetSessionRequest { Id = s.Id })).ToString());
                output.WriteLine("---- findings of the pod ----");
                output.WriteLine((await client.ListFindingsAsync(new ListFindingsRequest { Namespace = scene.Namespace, Pod = scene.Pod })).ToString());
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                output.WriteLine("could not list sessions: " + e.Message);
            }
            output.WriteLine("---- ebpf-agent output ----");
            output.WriteLine(agent.Output);
            throw;
        }
    }
}
