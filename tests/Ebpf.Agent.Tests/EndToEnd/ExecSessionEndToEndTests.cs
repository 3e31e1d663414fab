using System.Text.Json.Nodes;
using Ebpf.Api.ExecTrace;
using Ebpf.Api.V1;
using Xunit.Abstractions;

namespace Ebpf.Agent.Tests.EndToEnd;

/// <summary>
/// The whole agent as a DaemonSet runs it: the real ebpf-agent process (BPF capture, pod watch against a Kubernetes
/// API test server, audit webhook, correlator, SQLite store, gRPC), fed by real <c>runc exec</c>s — what kubelet does
/// for <c>kubectl exec</c> — and by audit events POSTed to its webhook as the API server's webhook backend does.
/// </summary>
[Collection(EndToEndCollection.Name)]
public sealed class ExecSessionEndToEndTests(ITestOutputHelper output)
{
    private static readonly TimeSpan SettleTimeout = TimeSpan.FromSeconds(20);
    private static readonly AuditUser Alice = new("alice@example.com", ["developers", "system:authenticated"], "10.20.30.40");
    private static readonly AuditUser Bob = new("bob@example.com", ["sre", "system:authenticated"], "10.20.30.41");

    // The trailing builtin keeps busybox ash from exec'ing wget in place of itself (its last-command optimisation),
    // so the tree is sh → cat and sh → wget as with an interactive shell.
    private static string[] WgetScript(int port) => ["sh", "-c", $"cat /etc/hostname; wget -q -O- http://127.0.0.1:{port}/; echo done"];

    [EndToEndFact]
    public async Task AuditedExec_AuditBeforeExec_CertainSessionWithProcessTreeConnectAndOpen()
    {
        await using var scene = await PodScene.StartAsync("audit-first");
        await using var agent = await AgentProcess.StartAsync(scene.AgentOptions());
        await WithAgentOutputAsync(agent, async () =>
        {
            using var http = new TinyHttpServer();
            var argv = WgetScript(http.Port);
            var request = scene.ExecRequest(argv, Alice, DateTimeOffset.UtcNow);
            await agent.PostAuditAsync(ExecAuditRequest.EventList(request.Stage("ResponseStarted", request.RequestReceived.AddMilliseconds(40))));
            var exec = await scene.Container.ExecAsync(argv);
            Assert.Equal(0, exec.ExitCode);
            await agent.PostAuditAsync(ExecAuditRequest.EventList(request.Stage("ResponseComplete", DateTimeOffset.UtcNow)));

            using var client = agent.CreateClient();
            await AssertCertainWgetSessionAsync(client, scene, request, http);
        });
    }

    [EndToEndFact]
    public async Task AuditedExec_ExecBeforeAudit_CertainSessionWithProcessTreeConnectAndOpen()
    {
        await using var scene = await PodScene.StartAsync("node-first");
        await using var agent = await AgentProcess.StartAsync(scene.AgentOptions());
        await WithAgentOutputAsync(agent, async () =>
        {
            using var http = new TinyHttpServer();
            var argv = WgetScript(http.Port);
            var request = scene.ExecRequest(argv, Alice, DateTimeOffset.UtcNow);
            var started = request.RequestReceived.AddMilliseconds(40);
            var exec = await scene.Container.ExecAsync(argv);
            Assert.Equal(0, exec.ExitCode);
            await agent.PostAuditAsync(ExecAuditRequest.EventList(request.Stage("ResponseStarted", started), request.Stage("ResponseComplete", DateTimeOffset.UtcNow)));

            using var client = agent.CreateClient();
            await AssertCertainWgetSessionAsync(client, scene, request, http);
        });
    }

    [EndToEndFact]
    public async Task AuditedExec_AuditArrivesLateWithinWaitWindow_CertainSession()
    {
        await using var scene = await PodScene.StartAsync("late");
        // The wait window must outlive the webhook's delay; it is long for this test only.
        await using var agent = await AgentProcess.StartAsync(scene.AgentOptions(auditWaitWindow: TimeSpan.FromSeconds(30)));
        await WithAgentOutputAsync(agent, async () =>
        {
            using var http = new TinyHttpServer();
            var argv = WgetScript(http.Port);
            var request = scene.ExecRequest(argv, Alice, DateTimeOffset.UtcNow);
            var started = request.RequestReceived.AddMilliseconds(40);
            var exec = await scene.Container.ExecAsync(argv);
            Assert.Equal(0, exec.ExitCode);
            var completed = DateTimeOffset.UtcNow;
            using var client = agent.CreateClient();
            // Batching webhooks deliver 15 s and more later: until then the root has no session.
            await Task.Delay(TimeSpan.FromSeconds(15));
            var before = await client.ListSessionsAsync(new ListSessionsRequest { Namespace = scene.Namespace, Pod = scene.Pod });
            Assert.DoesNotContain(before.Sessions, s => s.Kind == SessionKind.UnattributedExec);
            await agent.PostAuditAsync(ExecAuditRequest.EventList(request.Stage("ResponseStarted", started), request.Stage("ResponseComplete", completed)));
            await AssertCertainWgetSessionAsync(client, scene, request, http);
        });
    }

    private async Task<SessionDetail> AssertCertainWgetSessionAsync(ExecTraceClient client, PodScene scene, ExecAuditRequest request, TinyHttpServer http)
    {
        Assert.True(http.Requests >= 1, "the container's wget never reached the host listener");
        var detail = await EventuallyAsync(async () =>
        {
            var list = await client.ListSessionsAsync(new ListSessionsRequest { Namespace = scene.Namespace, Pod = scene.Pod });
            var session = list.Sessions.SingleOrDefault(s => s.AuditId == request.AuditId);
            if (session is null || session.Confidence != Confidence.Certain) return null;
            var d = await client.GetSessionAsync(new GetSessionRequest { Id = session.Id });
            // Node events are stored as they come; wait until the whole tree with its connect and open is there.
            bool complete = d.Processes.Any(p => p.Argv.FirstOrDefault() == "wget" && p.Connects.Count > 0)
                && d.Processes.Any(p => p.Files.Any(f => f.Path == "/etc/hostname"));
            return complete ? d : null;
        }, "a certain exec session with its whole process tree");
        output.WriteLine(detail.ToString());

        var s = detail.Session;
        Assert.Equal(SessionKind.Exec, s.Kind);
        Assert.Equal(Confidence.Certain, s.Confidence);
        Assert.Equal(Alice.Name, s.User);
        Assert.Equal(Alice.Groups, s.Groups);
        Assert.Equal([Alice.SourceIp], s.SourceIps);
        Assert.Equal(scene.Namespace, s.Namespace);
        Assert.Equal(scene.Pod, s.Pod);
        Assert.Equal(scene.ContainerName, s.Container);
        Assert.Equal(request.Command, s.Command);
        Assert.Equal(scene.PodUid, s.Workload.PodUid);
        Assert.Equal(scene.ContainerId, s.Workload.ContainerId);

        var root = detail.Processes[0];
        Assert.Equal(s.RootProcessKey, root.ProcessKey);
        Assert.Equal(request.Command, root.Argv);
        var cat = Assert.Single(detail.Processes, p => p.Argv.SequenceEqual(["cat", "/etc/hostname"]));
        var wget = Assert.Single(detail.Processes, p => p.Argv.FirstOrDefault() == "wget");
        Assert.Equal(root.ProcessKey, cat.ParentProcessKey);
        Assert.Equal(root.ProcessKey, wget.ParentProcessKey);
        Assert.Contains(cat.Files, f => f.Path == "/etc/hostname" && f.Result >= 0);
        Assert.Contains(wget.Connects, c => c.Family == "inet" && c.Address == "127.0.0.1" && c.Port == (uint)http.Port && (c.Result == 0 || c.Result == -115));
        return detail;
    }

    private async Task<T> EventuallyAsync<T>(Func<Task<T?>> probe, string what, TimeSpan? timeout = null) where T : class
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

    private async Task WithAgentOutputAsync(AgentProcess agent, Func<Task> body)
    {
        try
        {
            await body();
        }
        catch
        {
            output.WriteLine("---- ebpf-agent output ----");
            output.WriteLine(agent.Output);
            throw;
        }
    }
}
