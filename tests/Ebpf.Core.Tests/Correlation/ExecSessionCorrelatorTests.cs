using System.Net;
using Ebpf.Core.Correlation;
using Ebpf.Core.Processes;
using static Ebpf.Core.Tests.Correlation.CorrelationScenario;

namespace Ebpf.Core.Tests.Correlation;

public sealed class ExecSessionCorrelatorTests
{
    private static readonly string[] Hostname = ["hostname"];
    private static readonly string[] Shell = ["sh"];
    private static readonly string[] ShC = ["sh", "-c", "cat /etc/hostname; wget -q -O- http://example.com"];

    [Fact]
    public void OnAuditEvent_AuditArrivesBeforeProcess_RootJoinsCertainOnArrival()
    {
        var s = new CorrelationScenario();
        s.ContainerInit(AppId, 100);
        foreach (var stage in ExecStages("a-1", 0, 900, Hostname)[..2]) Assert.Empty(s.Audit(stage));

        var root = s.RuntimeExec(200, 150, AppId, "hostname");
        var result = s.Feed(root);

        Assert.Equal("a-1", result.SessionId);
        var changed = Assert.Single(result.Outputs.OfType<SessionChanged>()).Session;
        Assert.Equal(SessionKind.Exec, changed.Kind);
        Assert.Equal(SessionConfidence.Certain, changed.Confidence);
        Assert.Equal(root.Key, changed.RootProcessKey);
        Assert.Equal("alice@example.com", changed.User);
        Assert.Equal("app", changed.Container);
        var attribution = Assert.Single(result.Outputs.OfType<AttributionUpdated>());
        Assert.Equal([root.Key], attribution.ProcessKeys);
    }

    [Fact]
    public void OnAuditEvent_ProcessArrivesFirst_NodeEventsGoOutUnattributedThenAttributionNamesThem()
    {
        var s = new CorrelationScenario();
        s.ContainerInit(AppId, 100);
        var root = s.RuntimeExec(200, 150, AppId, "hostname");
        var open = s.Open(root.Key, 160, "/etc/hostname");
        var exit = s.Exit(root.Key, 170);

        Assert.Null(s.Node(root));
        Assert.Null(s.Node(open));
        Assert.Null(s.Node(exit));

        var outputs = ExecStages("a-1", 0, 900, Hostname).SelectMany(s.Audit).ToList();

        var attribution = outputs.OfType<AttributionUpdated>().First();
        Assert.Equal("a-1", attribution.SessionId);
        Assert.Equal(SessionConfidence.Certain, attribution.Confidence);
        Assert.Equal([root.Key], attribution.ProcessKeys);
        Assert.Equal([root.Sequence, open.Sequence, exit.Sequence], attribution.Sequences);
        var session = s.Session("a-1");
        Assert.Equal(At(170), session.NodeEnd);
        Assert.Equal(1, session.FileCount);
        Assert.Equal(At(900), session.ResponseComplete);
    }

    [Fact]
    public void OnAuditEvent_Audit30SecondsLate_StillJoinsAfterTicksInBetween()
    {
        var s = new CorrelationScenario();
        s.ContainerInit(AppId, 100);
        var root = s.RuntimeExec(200, 150, AppId, "hostname");
        s.Node(root);
        s.Node(s.Exit(root.Key, 200));
        Assert.Empty(s.Tick(10_000));
        Assert.Empty(s.Tick(30_000));

        var outputs = ExecStages("a-late", 0, 900, Hostname).SelectMany(s.Audit).ToList();
        s.Tick(35_000);
        s.Tick(200_000);

        Assert.Contains(outputs.OfType<AttributionUpdated>(), u => u.SessionId == "a-late" && u.ProcessKeys.Contains(root.Key));
        Assert.Equal(SessionConfidence.Certain, s.Session("a-late").Confidence);
        Assert.Empty(s.Of<FindingRaised>());
        Assert.Single(s.Correlator.Sessions());
    }

    [Fact]
    public void OnNodeEvent_ShellTreeUnderExec_ChildrenTheirOpenAndConnectBelongToTheSession()
    {
        var s = new CorrelationScenario();
        s.ContainerInit(AppId, 100);
        foreach (var stage in ExecStages("a-sh", 0, 2_000, ShC)) s.Audit(stage);

        var sh = s.RuntimeExec(300, 100, AppId, ShC);
        Assert.Equal("a-sh", s.Node(sh));
        var catFork = s.Fork(sh.Key, 301, 110, AppId);
        Assert.Equal("a-sh", s.Node(catFork));
        Assert.Equal("a-sh", s.Node(s.ChildExec(catFork.Key, sh.Key, 111, AppId, "cat", "/etc/hostname")));
        Assert.Equal("a-sh", s.Node(s.Open(catFork.Key, 112, "/etc/hostname")));
        Assert.Equal("a-sh", s.Node(s.Exit(catFork.Key, 113)));
        var wgetFork = s.Fork(sh.Key, 302, 120, AppId);
        Assert.Equal("a-sh", s.Node(wgetFork));
        Assert.Equal("a-sh", s.Node(s.ChildExec(wgetFork.Key, sh.Key, 121, AppId, "wget", "-q", "-O-", "http://example.com")));
        Assert.Equal("a-sh", s.Node(s.Connect(wgetFork.Key, 122, IPAddress.Parse("93.184.215.14"), 80)));
        s.Node(s.Exit(wgetFork.Key, 500));
        var end = s.Feed(s.Exit(sh.Key, 510));

        var session = Assert.Single(end.Outputs.OfType<SessionChanged>()).Session;
        Assert.Equal(SessionConfidence.Certain, session.Confidence);
        Assert.Equal(3, session.ProcessCount);
        Assert.Equal(1, session.ConnectCount);
        Assert.Equal(1, session.FileCount);
        Assert.Equal(At(510), session.NodeEnd);
        Assert.Equal("a-sh", s.Correlator.SessionOf(catFork.Key));
        Assert.Equal("a-sh", s.Correlator.SessionOf(wgetFork.Key));
        s.Tick(300_000);
        Assert.Empty(s.Of<FindingRaised>());
    }

    [Fact]
    public void Join_TwoIdenticalConcurrentExecsByTwoUsers_BothAmbiguousNamingEachOther()
    {
        var s = new CorrelationScenario();
        s.ContainerInit(AppId, 100);
        foreach (var stage in ExecStages("a-alice", 0, 5_000, Shell, user: "alice")) s.Audit(stage);
        foreach (var stage in ExecStages("a-bob", 300, 5_000, Shell, user: "bob")) s.Audit(stage);
        var first = s.RuntimeExec(201, 400, AppId, "sh");
        var second = s.RuntimeExec(202, 450, AppId, "sh");
        s.Node(first);
        s.Node(second);
        s.Tick(200_000);

        var alice = s.Session("a-alice");
        var bob = s.Session("a-bob");
        Assert.Equal(SessionConfidence.Ambiguous, alice.Confidence);
        Assert.Equal(SessionConfidence.Ambiguous, bob.Confidence);
        Assert.Equal(["a-bob"], alice.Alternatives);
        Assert.Equal(["a-alice"], bob.Alternatives);
        // Assigned in time order.
        Assert.Equal(first.Key, alice.RootProcessKey);
        Assert.Equal(second.Key, bob.RootProcessKey);
        Assert.Equal(2, s.Correlator.Counters.SessionsAmbiguous);
        Assert.Empty(s.Of<FindingRaised>());
    }

    [Fact]
    public void Join_OneRequestCertainUntilIdenticalSecondArrives_ThenDowngradedToAmbiguous()
    {
        var s = new CorrelationScenario();
        s.ContainerInit(AppId, 100);
        s.Node(s.RuntimeExec(201, 400, AppId, "sh"));
        s.Audit(ExecAudit("a-1", AuditStage.ResponseStarted, 0, 40, Shell));
        Assert.Equal(SessionConfidence.Certain, s.Session("a-1").Confidence);

        var outputs = s.Audit(ExecAudit("a-2", AuditStage.ResponseStarted, 100, 140, Shell));

        Assert.Contains(outputs.OfType<SessionChanged>(), c => c.Session.Id == "a-1" && c.Session.Confidence == SessionConfidence.Ambiguous);
        Assert.Equal(["a-2"], s.Session("a-1").Alternatives);
    }

    [Fact]
    public void Tick_OneRequestTwoIdenticalRoots_RequestAndLeftoverRootAmbiguousWithMediumFinding()
    {
        var s = new CorrelationScenario();
        s.ContainerInit(AppId, 100);
        foreach (var stage in ExecStages("a-1", 0, 5_000, Shell)) s.Audit(stage);
        var first = s.RuntimeExec(201, 100, AppId, "sh");
        var second = s.RuntimeExec(202, 200, AppId, "sh");
        s.Node(first);
        s.Node(second);

        var outputs = s.Tick(200_000);

        var request = s.Session("a-1");
        Assert.Equal(first.Key, request.RootProcessKey);
        Assert.Equal(SessionConfidence.Ambiguous, request.Confidence);
        Assert.Equal(["node-" + second.Key], request.Alternatives);
        var leftover = s.Session("node-" + second.Key);
        Assert.Equal(SessionKind.UnattributedExec, leftover.Kind);
        Assert.Equal(SessionConfidence.Ambiguous, leftover.Confidence);
        Assert.Equal(["a-1"], leftover.Alternatives);
        var finding = Assert.Single(outputs.OfType<FindingRaised>()).Finding;
        Assert.Equal(FindingSeverity.Medium, finding.Severity);
    }

    [Fact]
    public void Tick_ProbeShapedExecWithoutAudit_BecomesProbeSessionWithoutFinding()
    {
        var s = new CorrelationScenario();
        s.ContainerInit(AppId, 100);
        var probe = s.RuntimeExec(400, 1_000, AppId, Probe);
        s.Node(probe);
        s.Node(s.Exit(probe.Key, 1_010));
        Assert.Empty(s.Tick(60_000));

        var outputs = s.Tick(121_001);

        var session = Assert.Single(outputs.OfType<SessionChanged>()).Session;
        Assert.Equal(SessionKind.Probe, session.Kind);
        Assert.Equal(SessionConfidence.Probable, session.Confidence);
        Assert.Equal("node-" + probe.Key, session.Id);
        Assert.Equal("app", session.Container);
        Assert.Empty(s.Of<FindingRaised>());
    }

    [Fact]
    public void Tick_ProbeCommandInAnotherContainer_IsUnattributed()
    {
        var s = new CorrelationScenario();
        s.ContainerInit(SidecarId, 110);
        s.Node(s.RuntimeExec(400, 1_000, SidecarId, Probe));
        s.Tick(200_000);
        Assert.Equal(SessionKind.UnattributedExec, Assert.Single(s.Correlator.Sessions()).Kind);
    }

    [Fact]
    public void Tick_ExecWithoutAudit_UnattributedSessionAndHighFinding()
    {
        var s = new CorrelationScenario();
        s.ContainerInit(AppId, 100);
        var intruder = s.RuntimeExec(500, 1_000, AppId, "sh", "-i");
        s.Node(intruder);
        var child = s.Fork(intruder.Key, 501, 1_100, AppId);
        s.Node(child);

        var outputs = s.Tick(200_000);

        var session = Assert.Single(outputs.OfType<SessionChanged>()).Session;
        Assert.Equal(SessionKind.UnattributedExec, session.Kind);
        Assert.Equal(SessionConfidence.Unattributed, session.Confidence);
        var attribution = Assert.Single(outputs.OfType<AttributionUpdated>());
        Assert.Equal([intruder.Key, child.Key], attribution.ProcessKeys);
        var finding = Assert.Single(outputs.OfType<FindingRaised>()).Finding;
        Assert.Equal(FindingKinds.UnattributedExec, finding.Kind);
        Assert.Equal(FindingSeverity.High, finding.Severity);
        Assert.Equal(session.Id, finding.SessionId);
        Assert.Equal(intruder.Key.ToString(), finding.Evidence["processKey"]);
        Assert.Equal(PodName, finding.Pod);
        // Later events of the tree carry the session.
        Assert.Equal(session.Id, s.Node(s.Open(child.Key, 200_001, "/etc/shadow")));
    }

    [Fact]
    public void Tick_AllowedExecWithNoProcess_AuditOnlySession()
    {
        var s = new CorrelationScenario();
        s.ContainerInit(AppId, 100);
        foreach (var stage in ExecStages("a-ghost", 0, 300, ["no-such-binary"])) s.Audit(stage);
        Assert.Empty(s.Tick(5_000));

        var outputs = s.Tick(10_041);

        var session = Assert.Single(outputs.OfType<SessionChanged>()).Session;
        Assert.Equal(SessionKind.AuditOnly, session.Kind);
        Assert.Equal(SessionConfidence.Unattributed, session.Confidence);
        Assert.Null(session.RootProcessKey);
        Assert.Equal(101, session.ResponseCode);
    }

    [Fact]
    public void OnAuditEvent_ExecDenied_NoSessionButLowFinding()
    {
        var s = new CorrelationScenario();
        s.ContainerInit(AppId, 100);
        var outputs = s.Audit(ExecAudit("a-denied", AuditStage.ResponseComplete, 0, 10, Shell, code: 403, user: "mallory"));
        s.Tick(300_000);

        var finding = Assert.Single(outputs.OfType<FindingRaised>()).Finding;
        Assert.Equal(FindingKinds.ExecDenied, finding.Kind);
        Assert.Equal(FindingSeverity.Low, finding.Severity);
        Assert.Equal("mallory", finding.User);
        Assert.Empty(s.Correlator.Sessions());
    }

    [Theory]
    [InlineData(AuditStage.ResponseComplete, 400)]
    [InlineData(AuditStage.Panic, null)]
    public void OnAuditEvent_FailedRequest_NoSessionNoFindingCounted(AuditStage stage, int? code)
    {
        var s = new CorrelationScenario();
        s.ContainerInit(AppId, 100);
        s.Audit(ExecAudit("a-fail", AuditStage.RequestReceived, 0, 0, Shell));
        s.Audit(ExecAudit("a-fail", stage, 0, 30, Shell) with { ResponseCode = code });
        s.Tick(300_000);
        Assert.Empty(s.Outputs);
        Assert.Equal(1, s.Correlator.Counters.AuditFailed);
    }

    [Fact]
    public void Join_EphemeralContainer_AllItsProcessesBelongToTheDebugSessionCertain()
    {
        var s = new CorrelationScenario();
        s.ContainerInit(AppId, 100);
        s.Audit(ExecAudit("a-debug", AuditStage.ResponseComplete, 0, 30, [], container: "debugger-x7k2p", verb: "patch", code: 200,
            subresource: "ephemeralcontainers"));
        // The kubelet starts the container; the pod status lists it shortly after.
        s.Pods.Set(s.Pods.FindPodByUid(PodUid)! with
        {
            Containers = [.. s.Pods.FindPodByUid(PodUid)!.Containers, new PodContainerSpec { Name = "debugger-x7k2p", ContainerId = DebuggerId, IsEphemeral = true }],
        });
        var init = s.RuntimeExec(700, 900, DebuggerId, "sh");
        var result = s.Feed(init);
        var child = s.Fork(init.Key, 701, 1_000, DebuggerId);

        Assert.Equal("a-debug", result.SessionId);
        Assert.Equal("a-debug", s.Node(child));
        var session = s.Session("a-debug");
        Assert.Equal(SessionKind.Debug, session.Kind);
        Assert.Equal(SessionConfidence.Certain, session.Confidence);
        Assert.Equal(init.Key, session.RootProcessKey);
        Assert.Equal(2, session.ProcessCount);
        s.Tick(300_000);
        Assert.Empty(s.Of<FindingRaised>());
    }

    [Fact]
    public void Join_EphemeralContainerProcessesBeforeAudit_ClaimedWhenAuditArrives()
    {
        var s = new CorrelationScenario();
        s.Pods.Set(s.Pods.FindPodByUid(PodUid)! with
        {
            Containers = [.. s.Pods.FindPodByUid(PodUid)!.Containers, new PodContainerSpec { Name = "debugger-x7k2p", ContainerId = DebuggerId, IsEphemeral = true }],
        });
        var init = s.RuntimeExec(700, 900, DebuggerId, "sh");
        Assert.Null(s.Node(init));

        var outputs = s.Audit(ExecAudit("a-debug", AuditStage.ResponseComplete, 0, 30, [], container: "debugger-x7k2p", verb: "patch", code: 200,
            subresource: "ephemeralcontainers"));

        var attribution = outputs.OfType<AttributionUpdated>().Single();
        Assert.Equal([init.Key], attribution.ProcessKeys);
        Assert.Equal([init.Sequence], attribution.Sequences);
    }

    [Fact]
    public void Tick_EphemeralContainerWithoutAudit_UnattributedDebugFinding()
    {
        var s = new CorrelationScenario();
        s.Pods.Set(s.Pods.FindPodByUid(PodUid)! with
        {
            Containers = [.. s.Pods.FindPodByUid(PodUid)!.Containers, new PodContainerSpec { Name = "debugger-x7k2p", ContainerId = DebuggerId, IsEphemeral = true }],
        });
        s.Node(s.RuntimeExec(700, 900, DebuggerId, "sh"));
        var outputs = s.Tick(200_000);
        Assert.Equal(FindingKinds.UnattributedEphemeralContainer, Assert.Single(outputs.OfType<FindingRaised>()).Finding.Kind);
        Assert.Equal(SessionKind.Debug, Assert.Single(s.Correlator.Sessions()).Kind);
    }

    [Fact]
    public void Join_Attach_ProcessesOfMainTreeInsideWindowOnly()
    {
        var s = new CorrelationScenario();
        var init = s.ContainerInit(AppId, 100);
        var before = s.Fork(init, 150, -10_000, AppId);
        Assert.Null(s.Node(before));

        var outputs = s.Audit(ExecAudit("a-attach", AuditStage.ResponseStarted, 0, 40, [], subresource: "attach"));
        var session = Assert.Single(outputs.OfType<SessionChanged>()).Session;
        Assert.Equal(SessionKind.Attach, session.Kind);
        Assert.Equal(SessionConfidence.Probable, session.Confidence);
        Assert.Equal(init, session.RootProcessKey);

        var typed = s.Fork(init, 151, 5_000, AppId);
        Assert.Equal("a-attach", s.Node(typed));
        Assert.Equal("a-attach", s.Node(s.ChildExec(typed.Key, init, 5_001, AppId, "ls")));
        s.Audit(ExecAudit("a-attach", AuditStage.ResponseComplete, 0, 60_000, [], subresource: "attach"));
        Assert.Null(s.Node(s.Fork(init, 152, 62_001, AppId)));
        Assert.Null(s.Node(s.Fork(init, 153, 61_000, SidecarId)));
        Assert.Equal(1, s.Session("a-attach").ProcessCount);
    }

    [Fact]
    public void Join_ExecDuringAttach_ExecTreeWaitsForItsOwnRequestNotTheAttach()
    {
        var s = new CorrelationScenario();
        s.ContainerInit(AppId, 100);
        s.Audit(ExecAudit("a-attach", AuditStage.ResponseStarted, 0, 40, [], subresource: "attach"));
        var root = s.RuntimeExec(300, 1_000, AppId, "sh");
        Assert.Null(s.Node(root));
        var child = s.Fork(root.Key, 301, 1_100, AppId);
        Assert.Null(s.Node(child));

        foreach (var stage in ExecStages("a-exec", 900, 5_000, Shell)) s.Audit(stage);

        Assert.Equal("a-exec", s.Correlator.SessionOf(root.Key));
        Assert.Equal("a-exec", s.Correlator.SessionOf(child.Key));
        Assert.Equal(0, s.Session("a-attach").ProcessCount);
    }

    [Fact]
    public void Join_PortForward_RuntimeLoopbackConnectsInThePodsNetnsAreItsConnections()
    {
        var s = new CorrelationScenario();
        var pf = ExecAudit("a-pf", AuditStage.ResponseStarted, 0, 40, []) with { Subresource = "portforward", Container = null, Ports = [8080] };
        s.Audit(pf);
        var containerd = Key(812, 5);

        var inside = s.Feed(s.Connect(containerd, 1_000, IPAddress.Loopback, 8080, networkPodUid: PodUid, workload: HostWorkload));
        Assert.Equal("a-pf", inside.SessionId);
        Assert.Equal(SessionConfidence.Certain, s.Session("a-pf").Confidence);
        Assert.Null(s.Node(s.Connect(containerd, 1_100, IPAddress.Parse("10.0.0.5"), 8080, networkPodUid: PodUid, workload: HostWorkload)));
        Assert.Null(s.Node(s.Connect(containerd, 1_200, IPAddress.Loopback, 9090, networkPodUid: PodUid, workload: HostWorkload)));
        s.Audit(pf with { Stage = AuditStage.ResponseComplete, StageTimestamp = At(30_000) });
        Assert.Null(s.Node(s.Connect(containerd, 32_001, IPAddress.Loopback, 8080, networkPodUid: PodUid, workload: HostWorkload)));
        Assert.Equal(1, s.Session("a-pf").ConnectCount);
    }

    [Fact]
    public void Join_PortForwardWithoutNetnsKnown_MatchedByPortIsOnlyProbable()
    {
        var s = new CorrelationScenario();
        s.Audit(ExecAudit("a-pf", AuditStage.ResponseStarted, 0, 40, [], verb: "get") with { Subresource = "portforward", Ports = [8080] });
        Assert.Equal("a-pf", s.Node(s.Connect(Key(812, 5), 1_000, IPAddress.Loopback, 8080, workload: HostWorkload)));
        Assert.Equal(SessionConfidence.Probable, s.Session("a-pf").Confidence);
    }

    [Fact]
    public void OnAuditEvent_TokenUsedByPodProcessConnectedToApiServer_AttributedToThatProcess()
    {
        var s = new CorrelationScenario();
        var init = s.ContainerInit(AppId, 100);
        s.Node(s.Connect(init, -60_000, ApiServer.Address, ApiServer.Port));
        s.Node(s.Connect(init, -50_000, IPAddress.Parse("10.96.0.10"), 53));

        var outputs = s.Audit(TokenAudit("t-1", PodIp.ToString()));

        var use = Assert.Single(outputs.OfType<TokenUseAttributed>());
        Assert.Equal([init], use.ProcessKeys);
        Assert.Equal(SessionConfidence.Probable, use.Confidence);
        s.Tick(60_000);
        Assert.Empty(s.Of<FindingRaised>());
    }

    [Fact]
    public void OnAuditEvent_TokenUsedFromForeignAddress_TokenUsedOutsidePodFinding()
    {
        var s = new CorrelationScenario();
        var init = s.ContainerInit(AppId, 100);
        s.Node(s.Connect(init, -60_000, ApiServer.Address, ApiServer.Port));

        var outputs = s.Audit(TokenAudit("t-2", "203.0.113.66"));

        var finding = Assert.Single(outputs.OfType<FindingRaised>()).Finding;
        Assert.Equal(FindingKinds.TokenUsedOutsidePod, finding.Kind);
        Assert.Equal(FindingSeverity.High, finding.Severity);
        Assert.Equal("203.0.113.66", finding.Evidence["sourceIPs"]);
        Assert.Equal(PodIp.ToString(), finding.Evidence["podIPs"]);
        Assert.Equal("t-2", finding.Evidence["auditId"]);
        Assert.Empty(s.Audit(TokenAudit("t-2", "203.0.113.66")));
    }

    [Fact]
    public void Tick_TokenFromPodAddressButNoProcessConnected_FindingAfterGrace()
    {
        var s = new CorrelationScenario();
        s.ContainerInit(AppId, 100);
        Assert.Empty(s.Audit(TokenAudit("t-3", PodIp.ToString())));
        Assert.Empty(s.Tick(3_000));
        var finding = Assert.Single(s.Tick(7_001).OfType<FindingRaised>()).Finding;
        Assert.Equal(FindingKinds.TokenUsedOutsidePod, finding.Kind);
        Assert.Contains("no process", finding.Summary, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(-2_000, true)]
    [InlineData(-2_001, false)]
    [InlineData(5_040, true)]
    [InlineData(5_041, false)]
    public void Join_RootAtWindowEdges_InsideByOneMsJoinsOutsideByOneMsDoesNot(double rootMs, bool joins)
    {
        var s = new CorrelationScenario();
        s.ContainerInit(AppId, 100);
        // requestReceived 0, ResponseStarted 40: window [0 − 2 s skew, 40 ms + 5 s].
        foreach (var stage in ExecStages("a-edge", 0, 9_000, Shell)[..2]) s.Audit(stage);
        var root = s.RuntimeExec(222, rootMs, AppId, "sh");
        Assert.Equal(joins ? "a-edge" : null, s.Node(root));
        s.Tick(300_000);
        Assert.Equal(joins ? SessionKind.Exec : SessionKind.AuditOnly, s.Session("a-edge").Kind);
    }

    [Fact]
    public void OnAuditEvent_DuplicatesAndAnyStageOrder_OneSession()
    {
        var s = new CorrelationScenario();
        s.ContainerInit(AppId, 100);
        var root = s.RuntimeExec(200, 150, AppId, "hostname");
        s.Node(root);
        var stages = ExecStages("a-dup", 0, 900, Hostname);
        s.Audit(stages[2]);
        s.Audit(stages[0]);
        s.Audit(stages[2]);
        s.Audit(stages[1]);
        s.Audit(stages[1]);
        s.Tick(300_000);

        var session = Assert.Single(s.Correlator.Sessions());
        Assert.Equal("a-dup", session.Id);
        Assert.Equal(SessionConfidence.Certain, session.Confidence);
        Assert.Equal(At(40), session.ResponseStarted);
        Assert.Equal(At(900), session.ResponseComplete);
        Assert.Equal(2, s.Correlator.Counters.DuplicateAuditEvents);
        Assert.Single(s.Of<AttributionUpdated>());
    }

    [Fact]
    public void Join_ArrivalOrderOfAuditAndNodeEvents_DoesNotChangeTheResult()
    {
        static IReadOnlyList<ExecSession> Run(bool auditFirst, bool reverseAudits)
        {
            var s = new CorrelationScenario();
            s.ContainerInit(AppId, 100);
            var audits = ExecStages("a-1", 0, 5_000, Shell, user: "alice").Concat(ExecStages("a-2", 3_000, 9_000, Shell, user: "bob")).ToList();
            if (reverseAudits) audits.Reverse();
            var nodes = new NodeRecord[] { s.RuntimeExec(201, 100, AppId, "sh"), s.RuntimeExec(202, 3_100, AppId, "sh") };
            if (auditFirst) { audits.ForEach(a => s.Audit(a)); foreach (var n in nodes) s.Node(n); }
            else { foreach (var n in nodes) s.Node(n); audits.ForEach(a => s.Audit(a)); }
            s.Tick(300_000);
            return s.Correlator.Sessions();
        }

        var expected = Run(auditFirst: true, reverseAudits: false);
        Assert.Equal(2, expected.Count);
        // 3.1 s is inside a-1's window too, but the 0.1 s root can only be a-1's: the pairing is forced, not ambiguous.
        Assert.All(expected, x => Assert.Equal(SessionConfidence.Certain, x.Confidence));
        foreach (var (auditFirst, reverse) in new[] { (false, false), (true, true), (false, true) })
        {
            var actual = Run(auditFirst, reverse);
            Assert.Equal(expected.Select(x => (x.Id, x.RootProcessKey, x.Confidence)), actual.Select(x => (x.Id, x.RootProcessKey, x.Confidence)));
        }
    }

    [Fact]
    public void Join_PidReused_TwoProcessesWithSamePidStayApart()
    {
        var s = new CorrelationScenario();
        s.ContainerInit(AppId, 100);
        foreach (var stage in ExecStages("a-1", 0, 900, Hostname)) s.Audit(stage);
        var first = s.RuntimeExec(4242, 100, AppId, "hostname");
        s.Node(first);
        s.Node(s.Exit(first.Key, 120));
        var reused = s.RuntimeExec(4242, 60_000, AppId, "hostname");
        Assert.NotEqual(first.Key, reused.Key);

        Assert.Null(s.Node(reused));
        s.Tick(300_000);

        Assert.Equal(first.Key, s.Session("a-1").RootProcessKey);
        var other = s.Session("node-" + reused.Key);
        Assert.Equal(SessionKind.UnattributedExec, other.Kind);
        Assert.Equal(reused.Key, other.RootProcessKey);
    }

    [Fact]
    public void Join_WebSocketGetVerbExec_JoinsLikeCreate()
    {
        var s = new CorrelationScenario();
        s.ContainerInit(AppId, 100);
        foreach (var stage in ExecStages("a-ws", 0, 900, Hostname, verb: "get")) s.Audit(stage);
        Assert.Equal("a-ws", s.Node(s.RuntimeExec(200, 150, AppId, "hostname")));
        Assert.Equal("get", s.Session("a-ws").Verb);
    }

    [Fact]
    public void Join_NoContainerParameter_DefaultContainerInferredProbable()
    {
        var s = new CorrelationScenario();
        s.ContainerInit(AppId, 100);
        foreach (var stage in ExecStages("a-def", 0, 900, Hostname, container: null)) s.Audit(stage);
        Assert.Equal("a-def", s.Node(s.RuntimeExec(200, 150, AppId, "hostname")));
        var session = s.Session("a-def");
        Assert.Equal(SessionConfidence.Probable, session.Confidence);
        Assert.Equal("app", session.Container);
        Assert.Contains("default container", session.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Join_DefaultContainerAnnotation_PicksTheAnnotatedContainer()
    {
        var s = new CorrelationScenario(defaultContainerAnnotation: "sidecar");
        s.ContainerInit(AppId, 100);
        s.ContainerInit(SidecarId, 110);
        foreach (var stage in ExecStages("a-def", 0, 900, Hostname, container: null)) s.Audit(stage);
        Assert.Null(s.Node(s.RuntimeExec(200, 150, AppId, "hostname")));
        Assert.Equal("a-def", s.Node(s.RuntimeExec(201, 160, SidecarId, "hostname")));
        Assert.Equal("sidecar", s.Session("a-def").Container);
    }

    [Fact]
    public void Join_RootOnlyRecognisedByOutsideParent_Probable()
    {
        var s = new CorrelationScenario();
        s.ContainerInit(AppId, 100);
        foreach (var stage in ExecStages("a-1", 0, 900, Hostname)) s.Audit(stage);
        Assert.Equal("a-1", s.Node(s.RuntimeExec(200, 150, AppId, "hostname") with { PreviousImageWasRuntime = false }));
        Assert.Equal(SessionConfidence.Probable, s.Session("a-1").Confidence);
    }

    [Fact]
    public void OnNodeEvent_FirstProcessOfANewContainer_IsItsInitNotAnExec()
    {
        var s = new CorrelationScenario();
        s.Node(s.RuntimeExec(100, 0, AppId, "/app/server"));
        var second = s.RuntimeExec(200, 1_000, AppId, "sh");
        s.Node(second);
        s.Tick(300_000);
        var session = Assert.Single(s.Correlator.Sessions());
        Assert.Equal(second.Key, session.RootProcessKey);
    }

    [Fact]
    public void OnNodeEvent_RuncInitStagesForkBeforeEntrypoint_EntrypointAndItsReExecAreTheInit()
    {
        // runc create: runc init's nsexec stage runs in the container's cgroup and forks the process that execs
        // the entrypoint, whose parent (the stage) still counts as outside; the entrypoint may exec again.
        var s = new CorrelationScenario();
        var stage = s.Fork(CorrelationScenario.Key(990_001, 1), 100, 0, AppId);
        s.Node(stage);
        var child = s.Fork(stage.Key, 101, 5, AppId);
        s.Node(child);
        var entrypoint = s.RuntimeExec(101, 10, AppId, "sh", "-c", "prepare; exec /app/server") with { Key = child.Key, ParentKey = stage.Key };
        s.Node(entrypoint);
        s.Node(s.ChildExec(entrypoint.Key, stage.Key, 20, AppId, "/app/server") with { ParentOutsideContainer = true });
        var exec = s.RuntimeExec(200, 1_000, AppId, "sh");
        s.Node(exec);
        s.Tick(300_000);

        var session = Assert.Single(s.Correlator.Sessions());
        Assert.Equal(exec.Key, session.RootProcessKey);
        Assert.Equal(SessionKind.UnattributedExec, session.Kind);
    }

    [Fact]
    public void OnNodeEvent_RuncInitExecSeenInsideTheCgroup_EntrypointBelowItIsStillTheInit()
    {
        // Sometimes runc adds its child to the container's cgroup before the child execs "runc init": that exec is
        // then the container's first, with the runtime's image and an outside parent, and the entrypoint two nsexec
        // forks further down must not count as a second entry (seen on kernel 6.18 with runc 1.1).
        var s = new CorrelationScenario();
        var runcInit = s.RuntimeExec(100, 0, AppId, "runc", "init");
        s.Node(runcInit);
        var stage1 = s.Fork(runcInit.Key, 101, 1, AppId);
        s.Node(stage1);
        var stage2 = s.Fork(stage1.Key, 102, 2, AppId);
        s.Node(stage2);
        var entrypoint = s.ChildExec(stage2.Key, stage1.Key, 10, AppId, "sh", "-c", "prepare; exec /app/server") with { PreviousImageWasRuntime = true };
        s.Node(entrypoint);
        s.Node(s.ChildExec(entrypoint.Key, stage1.Key, 20, AppId, "/app/server"));
        var exec = s.RuntimeExec(200, 1_000, AppId, "sh");
        s.Node(exec);
        s.Tick(300_000);

        var session = Assert.Single(s.Correlator.Sessions());
        Assert.Equal(exec.Key, session.RootProcessKey);
        Assert.Equal(SessionKind.UnattributedExec, session.Kind);
    }

    [Fact]
    public void Join_EphemeralContainerRuncInitExecSeenInsideTheCgroup_OneDebugSessionNoFinding()
    {
        // The same race in a kubectl debug container: its entrypoint belongs to the debug session, no unattributed entry.
        var s = new CorrelationScenario();
        s.ContainerInit(AppId, 100);
        s.Pods.Set(s.Pods.FindPodByUid(PodUid)! with
        {
            Containers = [.. s.Pods.FindPodByUid(PodUid)!.Containers, new PodContainerSpec { Name = "debugger-x7k2p", ContainerId = DebuggerId, IsEphemeral = true }],
        });
        s.Audit(ExecAudit("a-debug", AuditStage.ResponseComplete, 0, 30, [], container: "debugger-x7k2p", verb: "patch", code: 200,
            subresource: "ephemeralcontainers"));
        var runcInit = s.RuntimeExec(700, 900, DebuggerId, "runc", "init");
        s.Node(runcInit);
        var stage1 = s.Fork(runcInit.Key, 701, 901, DebuggerId);
        s.Node(stage1);
        var stage2 = s.Fork(stage1.Key, 702, 902, DebuggerId);
        s.Node(stage2);
        var shell = s.ChildExec(stage2.Key, stage1.Key, 950, DebuggerId, "sh", "-c", "cat /etc/hostname; sleep 3600") with { PreviousImageWasRuntime = true };
        Assert.Equal("a-debug", s.Node(shell));
        s.Tick(300_000);

        var debug = Assert.Single(s.Correlator.Sessions());
        Assert.Equal(SessionKind.Debug, debug.Kind);
        Assert.Equal(3, debug.ProcessCount); // runc init and its two nsexec stages, the last of which became the shell
        Assert.Empty(s.Of<FindingRaised>());
    }

    [Fact]
    public void Tick_AfterRetention_SessionsAndProcessesAreForgotten()
    {
        var s = new CorrelationScenario();
        s.ContainerInit(AppId, 100);
        foreach (var stage in ExecStages("a-1", 0, 900, Hostname)) s.Audit(stage);
        var root = s.RuntimeExec(200, 150, AppId, "hostname");
        s.Node(root);
        s.Node(s.Exit(root.Key, 160));
        s.Tick(200_000);
        Assert.Single(s.Correlator.Sessions());

        s.Tick(30 * 60_000);

        Assert.Empty(s.Correlator.Sessions());
        var counters = s.Correlator.Counters;
        Assert.Equal(1, counters.SessionsExpired);
        Assert.Equal(1, counters.TrackedProcesses); // the container's init is alive
        Assert.Equal(0, counters.PendingRoots);
    }

    [Fact]
    public void OnAuditEvent_PodOfAnotherNode_Ignored()
    {
        var s = new CorrelationScenario();
        var outputs = s.Audit(ExecAudit("a-far", AuditStage.ResponseStarted, 0, 40, Shell) with { Name = "elsewhere-0" });
        Assert.Empty(outputs);
        s.Tick(300_000);
        Assert.Empty(s.Correlator.Sessions());
        Assert.Equal(1, s.Correlator.Counters.AuditForeignPod);
    }

    [Fact]
    public void OnAuditEvent_ResponseStartedArrivesLater_WidensTheWindowAndJoins()
    {
        var s = new CorrelationScenario();
        s.ContainerInit(AppId, 100);
        var stages = ExecStages("a-slow", 0, 20_000, Hostname);
        s.Audit(stages[0]);
        // 6 s after requestReceived: outside rr + 5 s until ResponseStarted (at 2 s) moves the window.
        var root = s.RuntimeExec(200, 6_000, AppId, "hostname");
        Assert.Null(s.Node(root));

        var outputs = s.Audit(stages[1] with { StageTimestamp = At(2_000) });

        Assert.Contains(outputs.OfType<AttributionUpdated>(), u => u.SessionId == "a-slow" && u.ProcessKeys.Contains(root.Key));
    }

    [Fact]
    public void Tick_PodMetadataArrivesAfterAudit_RequestResolvedAndJoined()
    {
        var lagging = new CorrelationScenario();
        var pod = lagging.Pods.FindPodByUid(PodUid)!;
        // The informer has not seen the pod under this name yet.
        lagging.Pods.Set(pod with { Name = "not-yet" });
        lagging.ContainerInit(AppId, 100);
        foreach (var stage in ExecStages("a-1", 0, 900, Hostname)) Assert.Empty(lagging.Audit(stage));
        Assert.Null(lagging.Node(lagging.RuntimeExec(200, 150, AppId, "hostname")));
        Assert.Equal(1, lagging.Correlator.Counters.PendingAudits);

        lagging.Pods.Set(pod);
        var outputs = lagging.Tick(1_000);

        Assert.Contains(outputs.OfType<AttributionUpdated>(), u => u.SessionId == "a-1");
        Assert.Equal(0, lagging.Correlator.Counters.PendingAudits);
    }

    [Fact]
    public void OnAuditEvent_RequestWithoutNamespaceOrName_CountedNotFatal()
    {
        var s = new CorrelationScenario();
        var outputs = s.Audit(ExecAudit("a-bad", AuditStage.ResponseStarted, 0, 40, Shell) with { Namespace = null, Name = null });
        Assert.Empty(outputs);
        s.Tick(300_000);
        Assert.Empty(s.Correlator.Sessions());
        Assert.Equal(1, s.Correlator.Counters.AuditForeignPod);
        Assert.Equal(1, s.Correlator.Counters.RememberedAuditRequests);
        s.Tick(16 * 60_000);
        Assert.Equal(0, s.Correlator.Counters.RememberedAuditRequests);
    }

    [Fact]
    public void OnNodeEvent_TrackedProcessBoundReached_OldestExitedForgottenThenNewOnesDropped()
    {
        var s = new CorrelationScenario();
        s.Options.MaxTrackedProcesses = 3;
        var init = s.ContainerInit(AppId, 100);
        var a = s.Fork(init, 201, 10, AppId);
        var b = s.Fork(init, 202, 20, AppId);
        s.Node(a);
        s.Node(b);
        s.Node(s.Exit(a.Key, 30));
        s.Node(s.Fork(init, 203, 40, AppId));
        s.Node(s.Fork(init, 204, 50, AppId));

        var counters = s.Correlator.Counters;
        Assert.Equal(3, counters.TrackedProcesses);
        Assert.Equal(1, counters.ProcessesExpired);
        Assert.Equal(1, counters.ProcessesDropped);
    }

    [Fact]
    public void Correlator_SameInputsTwice_IdenticalOutputs()
    {
        static List<string> Run()
        {
            var s = new CorrelationScenario();
            s.ContainerInit(AppId, 100);
            foreach (var stage in ExecStages("a-1", 0, 5_000, Shell, user: "alice")) s.Audit(stage);
            foreach (var stage in ExecStages("a-2", 200, 5_000, Shell, user: "bob")) s.Audit(stage);
            var r1 = s.RuntimeExec(201, 300, AppId, "sh");
            var r2 = s.RuntimeExec(202, 320, AppId, "sh");
            s.Node(r2);
            s.Node(r1);
            s.Node(s.Fork(r1.Key, 301, 400, AppId));
            s.Node(s.RuntimeExec(500, 1_000, AppId, "sh", "-i"));
            s.Node(s.RuntimeExec(501, 1_100, AppId, Probe));
            s.Tick(10_000);
            s.Tick(300_000);
            return s.Outputs.Select(o => o switch
            {
                SessionChanged c => $"S {c.Session.Id} {c.Session.Kind} {c.Session.Confidence} {c.Session.RootProcessKey} [{string.Join(',', c.Session.Alternatives)}] {c.Session.ProcessCount}",
                AttributionUpdated u => $"A {u.SessionId} {u.Confidence} [{string.Join(',', u.ProcessKeys)}] [{string.Join(',', u.Sequences)}]",
                FindingRaised f => $"F {f.Finding.Id} {f.Finding.Severity}",
                _ => o.ToString()!,
            }).ToList();
        }

        var first = Run();
        Assert.Equal(first, Run());
        Assert.Contains(first, line => line.StartsWith("F unattributed-exec:node-500@", StringComparison.Ordinal));
        Assert.Contains(first, line => line.StartsWith("S node-501@", StringComparison.Ordinal) && line.Contains("Probe", StringComparison.Ordinal));
    }

    [Fact]
    public void Constructor_ExitedProcessesForgottenBeforeAuditsCanArrive_Rejected()
    {
        var options = new CorrelationOptions { AuditLatencyAllowance = TimeSpan.FromMinutes(10), ExitedProcessRetention = TimeSpan.FromMinutes(5) };
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new ExecSessionCorrelator(options, new PodTable(), TimeProvider.System));
        Assert.Equal(nameof(CorrelationOptions.ExitedProcessRetention), error.ParamName);
    }

    private static AuditRequest TokenAudit(string auditId, string sourceIp) => new()
    {
        AuditId = auditId,
        Stage = AuditStage.ResponseComplete,
        Verb = "list",
        User = $"system:serviceaccount:{Ns}:web",
        SourceIps = [sourceIp],
        Namespace = Ns,
        Resource = "secrets",
        RequestReceived = At(0),
        StageTimestamp = At(20),
        ResponseCode = 200,
        Token = new PodBoundToken(PodName, PodUid, "node-1", "JTI=7c9f0d2e-1b7a-4e0e-a0f1-2c3d4e5f6a7b"),
    };
}
