using System.Text.Json.Nodes;
using Ebpf.Api.ExecTrace;
using Ebpf.Api.V1;
using Xunit.Abstractions;
using Record = Ebpf.Api.V1.Record;

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

    [EndToEndFact]
    public async Task AuditedExec_TwoIdenticalConcurrentExecsByTwoUsers_BothAmbiguousListingEachOther()
    {
        await using var scene = await PodScene.StartAsync("ambiguous");
        await using var agent = await AgentProcess.StartAsync(scene.AgentOptions());
        await WithAgentOutputAsync(agent, async () =>
        {
            string[] argv = ["sh", "-c", "sleep 1; echo same"];
            var now = DateTimeOffset.UtcNow;
            var alice = scene.ExecRequest(argv, Alice, now);
            var bob = scene.ExecRequest(argv, Bob, now.AddMilliseconds(30));
            await agent.PostAuditAsync(ExecAuditRequest.EventList(
                alice.Stage("ResponseStarted", alice.RequestReceived.AddMilliseconds(40)),
                bob.Stage("ResponseStarted", bob.RequestReceived.AddMilliseconds(40))));
            var execs = await Task.WhenAll(scene.Container.ExecAsync(argv), scene.Container.ExecAsync(argv));
            Assert.All(execs, e => Assert.Equal(0, e.ExitCode));
            await agent.PostAuditAsync(ExecAuditRequest.EventList(
                alice.Stage("ResponseComplete", DateTimeOffset.UtcNow), bob.Stage("ResponseComplete", DateTimeOffset.UtcNow)));

            using var client = agent.CreateClient();
            var sessions = await EventuallyAsync(async () =>
            {
                var list = await client.ListSessionsAsync(new ListSessionsRequest { Namespace = scene.Namespace, Pod = scene.Pod });
                var a = list.Sessions.SingleOrDefault(s => s.AuditId == alice.AuditId);
                var b = list.Sessions.SingleOrDefault(s => s.AuditId == bob.AuditId);
                return a is { Confidence: Confidence.Ambiguous, RootProcessKey.Length: > 0 } && b is { Confidence: Confidence.Ambiguous, RootProcessKey.Length: > 0 } ? new[] { a, b } : null;
            }, "two ambiguous sessions");
            var (sa, sb) = (sessions[0], sessions[1]);
            output.WriteLine(sa.ToString());
            output.WriteLine(sb.ToString());
            Assert.Equal(SessionKind.Exec, sa.Kind);
            Assert.Equal(SessionKind.Exec, sb.Kind);
            Assert.Equal(Alice.Name, sa.User);
            Assert.Equal(Bob.Name, sb.User);
            Assert.NotEqual(sa.RootProcessKey, sb.RootProcessKey);
            Assert.Contains(sb.Id, sa.Alternatives);
            Assert.Contains(sa.Id, sb.Alternatives);
        });
    }

    [EndToEndFact]
    public async Task UnauditedExecs_ProbeCommandAndOtherCommand_ProbeSessionAndUnattributedExecWithFinding()
    {
        await using var scene = await PodScene.StartAsync("unaudited");
        await using var agent = await AgentProcess.StartAsync(scene.AgentOptions(auditWaitWindow: TimeSpan.FromSeconds(5)));
        await WithAgentOutputAsync(agent, async () =>
        {
            string[] intruder = ["sh", "-c", "id; echo intruder"];
            // The kubelet runs exec probes through CRI exec with no audit event: exactly the spec's argv.
            await scene.Container.ExecAsync(PodScene.LivenessProbe);
            var exec = await scene.Container.ExecAsync(intruder);
            Assert.Equal(0, exec.ExitCode);

            using var client = agent.CreateClient();
            var (probe, unattributed) = await EventuallyAsync(async () =>
            {
                var list = await client.ListSessionsAsync(new ListSessionsRequest { Namespace = scene.Namespace, Pod = scene.Pod });
                var p = list.Sessions.SingleOrDefault(s => s.Command.SequenceEqual(PodScene.LivenessProbe));
                var u = list.Sessions.SingleOrDefault(s => s.Command.SequenceEqual(intruder));
                return p is { Kind: SessionKind.Probe } && u is { Kind: SessionKind.UnattributedExec } ? Tuple.Create(p, u) : null;
            }, "a probe session and an unattributed exec after the audit wait window").ContinueWith(t => t.Result.ToValueTuple());
            output.WriteLine(probe.ToString());
            output.WriteLine(unattributed.ToString());
            Assert.Equal(Confidence.Unattributed, unattributed.Confidence);
            Assert.Equal("", unattributed.User);
            Assert.Equal(scene.PodUid, unattributed.Workload.PodUid);
            Assert.Equal(scene.ContainerName, probe.Container);

            var findings = await EventuallyAsync(async () =>
            {
                var f = await client.ListFindingsAsync(new ListFindingsRequest { Namespace = scene.Namespace, Pod = scene.Pod });
                return f.Findings.Any(x => x.Kind == "unattributed-exec") ? f : null;
            }, "an unattributed-exec finding");
            output.WriteLine(findings.ToString());
            var finding = Assert.Single(findings.Findings, f => f.Kind == "unattributed-exec");
            Assert.Equal(unattributed.Id, finding.SessionId);
            Assert.Equal(Severity.High, finding.Severity);
            Assert.Equal(scene.NodeName, finding.Node);
            Assert.DoesNotContain(findings.Findings, f => f.SessionId == probe.Id);
        });
    }

    [EndToEndFact]
    public async Task AgentRestart_AfterAuditedExecJoined_SessionSurvivesAndReplayedBatchIsDeduplicated()
    {
        await using var scene = await PodScene.StartAsync("restart-after");
        var data = Directory.CreateTempSubdirectory("ebpf-e2e-data-").FullName;
        try
        {
            using var http = new TinyHttpServer();
            var argv = WgetScript(http.Port);
            var request = scene.ExecRequest(argv, Alice, DateTimeOffset.UtcNow);
            string batch = "";
            SessionDetail? before = null;
            await using (var first = await AgentProcess.StartAsync(scene.AgentOptions(dataDirectory: data)))
            {
                await WithAgentOutputAsync(first, async () =>
                {
                    var exec = await scene.Container.ExecAsync(argv);
                    Assert.Equal(0, exec.ExitCode);
                    batch = ExecAuditRequest.EventList(request.Stage("ResponseStarted", request.RequestReceived.AddMilliseconds(40)),
                        request.Stage("ResponseComplete", DateTimeOffset.UtcNow));
                    await first.PostAuditAsync(batch);
                    using var client = first.CreateClient();
                    before = await AssertCertainWgetSessionAsync(client, scene, request, http);
                    await first.StopAsync();
                    Assert.Equal(0, first.ExitCode);
                });
            }
            await using var second = await AgentProcess.StartAsync(scene.AgentOptions(dataDirectory: data));
            await WithAgentOutputAsync(second, async () =>
            {
                using var client = second.CreateClient();
                var after = await AssertCertainWgetSessionAsync(client, scene, request, http);
                Assert.Equal(before!.Session.Id, after.Session.Id);
                Assert.Equal(before.Processes.Select(p => p.ProcessKey), after.Processes.Select(p => p.ProcessKey));

                // The API server retries a batch it is not sure was delivered: the same events again change nothing.
                await second.PostAuditAsync(batch!);
                // Past the audit wait window: the rebuilt root must not turn into a second, unattributed session.
                await Task.Delay(TimeSpan.FromSeconds(7));
                var list = await client.ListSessionsAsync(new ListSessionsRequest { Namespace = scene.Namespace, Pod = scene.Pod });
                Assert.Equal(request.AuditId, Assert.Single(list.Sessions).AuditId);
                var findings = await client.ListFindingsAsync(new ListFindingsRequest { Namespace = scene.Namespace, Pod = scene.Pod });
                Assert.Empty(findings.Findings);
                var touched = await client.WhoTouchedAsync(new WhoTouchedRequest { Namespace = scene.Namespace, Pod = scene.Pod });
                output.WriteLine(touched.ToString());
                Assert.Equal(2, touched.AuditEvents.Count(e => e.AuditId == request.AuditId));
                var again = await client.GetSessionAsync(new GetSessionRequest { Id = request.AuditId });
                Assert.Equal(Confidence.Certain, again.Session.Confidence);
                Assert.Equal(before.Processes.Count, again.Processes.Count);
            });
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    [EndToEndFact]
    public async Task AgentRestart_BetweenExecAndAudit_AuditJoinsTheStoredExec()
    {
        await using var scene = await PodScene.StartAsync("restart-between");
        var data = Directory.CreateTempSubdirectory("ebpf-e2e-data-").FullName;
        try
        {
            using var http = new TinyHttpServer();
            var argv = WgetScript(http.Port);
            var request = scene.ExecRequest(argv, Alice, DateTimeOffset.UtcNow);
            var started = request.RequestReceived.AddMilliseconds(40);
            DateTimeOffset completed = default;
            await using (var first = await AgentProcess.StartAsync(scene.AgentOptions(auditWaitWindow: TimeSpan.FromSeconds(30), dataDirectory: data)))
            {
                await WithAgentOutputAsync(first, async () =>
                {
                    var exec = await scene.Container.ExecAsync(argv);
                    Assert.Equal(0, exec.ExitCode);
                    completed = DateTimeOffset.UtcNow;
                    // Let the pipeline store the node events before the agent goes down.
                    await Task.Delay(TimeSpan.FromSeconds(1));
                    await first.StopAsync();
                    Assert.Equal(0, first.ExitCode);
                });
            }
            await using var second = await AgentProcess.StartAsync(scene.AgentOptions(auditWaitWindow: TimeSpan.FromSeconds(30), dataDirectory: data));
            await WithAgentOutputAsync(second, async () =>
            {
                await second.PostAuditAsync(ExecAuditRequest.EventList(request.Stage("ResponseStarted", started), request.Stage("ResponseComplete", completed)));
                using var client = second.CreateClient();
                await AssertCertainWgetSessionAsync(client, scene, request, http);
                var list = await client.ListSessionsAsync(new ListSessionsRequest { Namespace = scene.Namespace, Pod = scene.Pod });
                Assert.Equal(request.AuditId, Assert.Single(list.Sessions).AuditId);
                var findings = await client.ListFindingsAsync(new ListFindingsRequest { Namespace = scene.Namespace, Pod = scene.Pod });
                Assert.Empty(findings.Findings);
            });
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    [EndToEndFact]
    public async Task AgentRestart_JustAfterUnattributedExecReported_NotReportedTwice()
    {
        await using var scene = await PodScene.StartAsync("restart-unattributed");
        var data = Directory.CreateTempSubdirectory("ebpf-e2e-data-").FullName;
        try
        {
            string[] intruder = ["sh", "-c", "id; echo intruder"];
            string sessionId = "";
            await using (var first = await AgentProcess.StartAsync(scene.AgentOptions(dataDirectory: data)))
            {
                await WithAgentOutputAsync(first, async () =>
                {
                    await scene.Container.ExecAsync(intruder);
                    using var client = first.CreateClient();
                    var finding = await EventuallyAsync(async () =>
                        (await client.ListFindingsAsync(new ListFindingsRequest { Namespace = scene.Namespace, Pod = scene.Pod })).Findings
                            .FirstOrDefault(f => f.Kind == "unattributed-exec"), "the unattributed-exec finding");
                    sessionId = finding.SessionId;
                    await first.StopAsync();
                });
            }
            // The root is still inside the rebuild window: the restarted agent rebuilds it as pending and closes its
            // window again on its first tick, which must not report it a second time.
            await using var second = await AgentProcess.StartAsync(scene.AgentOptions(dataDirectory: data));
            await WithAgentOutputAsync(second, async () =>
            {
                await Task.Delay(TimeSpan.FromSeconds(3));
                using var client = second.CreateClient();
                var list = await client.ListSessionsAsync(new ListSessionsRequest { Namespace = scene.Namespace, Pod = scene.Pod });
                var session = Assert.Single(list.Sessions);
                Assert.Equal(sessionId, session.Id);
                Assert.Equal(SessionKind.UnattributedExec, session.Kind);
                var findings = await client.ListFindingsAsync(new ListFindingsRequest { Namespace = scene.Namespace, Pod = scene.Pod });
                Assert.Single(findings.Findings);
            });
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    [EndToEndFact]
    public async Task Subscribe_DuringExecThenAudit_StreamsNodeEventsAuditEventSessionAndAttributionInSequence()
    {
        await using var scene = await PodScene.StartAsync("subscribe");
        await using var agent = await AgentProcess.StartAsync(scene.AgentOptions());
        await WithAgentOutputAsync(agent, async () =>
        {
            using var client = agent.CreateClient();
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            var records = new List<Record>();
            var subscribed = new TaskCompletionSource();
            var reader = Task.Run(async () =>
            {
                try
                {
                    await foreach (var r in client.SubscribeAsync(new SubscribeRequest(), new Ebpf.Api.Grpc.GrpcCallOptions(CancellationToken: stop.Token)))
                    {
                        lock (records) records.Add(r);
                    }
                }
                catch (OperationCanceledException)
                {
                }
            });
            // The stream is live once the server has a subscriber; before that, records are not for us.
            await EventuallyAsync(async () =>
            {
                var status = await client.GetStatusAsync(new GetStatusRequest());
                return status.Counters.TryGetValue("grpc_subscribers", out var n) && n > 0 ? status : null;
            }, "the subscription to be registered");

            using var http = new TinyHttpServer();
            var argv = WgetScript(http.Port);
            var request = scene.ExecRequest(argv, Alice, DateTimeOffset.UtcNow);
            var exec = await scene.Container.ExecAsync(argv);
            Assert.Equal(0, exec.ExitCode);
            var completed = DateTimeOffset.UtcNow;
            // Node first: the whole tree is on the stream, without a session, before the API server's batch arrives.
            await EventuallyAsync(() =>
            {
                lock (records)
                {
                    var rootExec = records.FirstOrDefault(r => r.NodeEvent?.Exec?.Argv.SequenceEqual(argv) == true)?.NodeEvent;
                    bool seen = rootExec is not null
                        && records.Any(r => r.NodeEvent is { Connect: not null } n && n.Workload.ContainerId == scene.ContainerId)
                        && records.Any(r => r.NodeEvent is { Exit: not null } n && n.ProcessKey == rootExec.ProcessKey);
                    return Task.FromResult(seen ? rootExec : null);
                }
            }, "the exec's node events on the stream");
            await agent.PostAuditAsync(ExecAuditRequest.EventList(
                request.Stage("ResponseStarted", request.RequestReceived.AddMilliseconds(40)), request.Stage("ResponseComplete", completed)));

            bool Ours(Record r) => r.BodyCase switch
            {
                Record.BodyOneofCase.NodeEvent => r.NodeEvent.Workload.ContainerId == scene.ContainerId,
                Record.BodyOneofCase.AuditEvent => r.AuditEvent.AuditId == request.AuditId,
                Record.BodyOneofCase.Session => r.Session.AuditId == request.AuditId,
                Record.BodyOneofCase.Attribution => r.Attribution.SessionId == request.AuditId,
                _ => false,
            };
            var ours = await EventuallyAsync(() =>
            {
                List<Record> snapshot;
                lock (records) snapshot = records.Where(Ours).ToList();
                bool done = snapshot.Any(r => r.Attribution is { Confidence: Confidence.Certain })
                    && snapshot.Any(r => r.Session is { Confidence: Confidence.Certain })
                    && snapshot.Count(r => r.AuditEvent is not null) >= 2
                    && snapshot.Any(r => r.NodeEvent?.Connect is not null)
                    && snapshot.Any(r => r.NodeEvent?.FileOpen is { Path: "/etc/hostname" });
                return Task.FromResult(done ? snapshot : null);
            }, "node events, audit events, session and attribution on the stream");
            stop.Cancel();
            await reader;

            List<Record> all;
            lock (records) all = records.ToList();
            for (int i = 1; i < all.Count; i++)
                Assert.True(all[i].Sequence > all[i - 1].Sequence, $"sequence {all[i].Sequence} after {all[i - 1].Sequence}");

            var execs = ours.Where(r => r.NodeEvent?.Exec is not null).Select(r => r.NodeEvent).ToList();
            var root = Assert.Single(execs, e => e.Exec.Argv.SequenceEqual(argv));
            Assert.Contains(execs, e => e.Exec.Argv.SequenceEqual(["cat", "/etc/hostname"]));
            Assert.Contains(execs, e => e.Exec.Argv.FirstOrDefault() == "wget");
            Assert.Contains(ours, r => r.NodeEvent?.Connect is { Address: "127.0.0.1" } c && c.Port == (uint)http.Port);
            Assert.Equal(["ResponseStarted", "ResponseComplete"], ours.Where(r => r.AuditEvent is not null).Select(r => r.AuditEvent.Stage));
            var session = ours.Last(r => r.Session is not null).Session;
            Assert.Equal(Alice.Name, session.User);
            Assert.Equal(root.ProcessKey, session.RootProcessKey);
            // The node events went out before the audit event: the attribution names them by sequence.
            var attribution = ours.Last(r => r.Attribution is not null).Attribution;
            Assert.Contains(root.ProcessKey, attribution.ProcessKeys);
            Assert.All(ours.Where(r => r.NodeEvent is not null && r.Sequence < ours.First(x => x.AuditEvent is not null).Sequence), r => Assert.Equal("", r.NodeEvent.SessionId));
            // runc init's own events in the container precede the root's exec and are not the session's.
            var nodeSequences = ours.Where(r => r.NodeEvent is not null && r.Sequence < ours.First(x => x.AuditEvent is not null).Sequence
                && attribution.ProcessKeys.Contains(r.NodeEvent.ProcessKey)).Select(r => r.Sequence).ToList();
            Assert.Contains(ours.First(r => r.NodeEvent?.Exec?.Argv.SequenceEqual(argv) == true).Sequence, nodeSequences);
            Assert.NotEmpty(nodeSequences);
            Assert.Subset(attribution.Sequences.ToHashSet(), nodeSequences.ToHashSet());
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
