using Ebpf.Agent.Pipeline;
using Ebpf.Api.V1;
using Ebpf.Core.Correlation;
using Ebpf.Core.Identity;
using Ebpf.Core.Processes;
using Ebpf.Events;
using Google.Protobuf.WellKnownTypes;
using NodeEvent = Ebpf.Api.V1.NodeEvent;
using Record = Ebpf.Api.V1.Record;

namespace Ebpf.Agent.Tests.Pipeline;

public sealed class StoredRecordMapperTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 22, 10, 0, 0, TimeSpan.Zero);
    private static readonly WorkloadIdentity Container = new()
    {
        CgroupId = 42,
        Container = new ContainerCgroup("8a6c3e2f-5b1d-4c2e-9f3a-1d2e3f4a5b6c", new string('a', 64), QosClass.BestEffort, ContainerRuntime.Containerd),
    };

    private static Record Stored(ulong sequence, NodeEvent e) => new() { Sequence = sequence, Time = Timestamp.FromDateTimeOffset(T0), NodeEvent = e };

    [Fact]
    public void FromStored_RuntimeStartedExec_ExecRecordWithStoredSequenceAndKeys()
    {
        var record = Stored(17, new NodeEvent
        {
            Time = Timestamp.FromDateTimeOffset(T0.AddMilliseconds(5)),
            BootTimeNs = 123,
            Pid = 4242,
            ProcessKey = "4242@900",
            Exec = new ExecDetails { ParentProcessKey = "4200@899", Argv = { "sh", "-c", "id" }, Filename = "/bin/sh", PreviousImageWasRuntime = true },
        });

        var exec = Assert.IsType<ProcessExecRecord>(StoredRecordMapper.FromStored(record, Container, parentInSameContainer: false));

        Assert.Equal(new ProcessKey(4242, 900), exec.Key);
        Assert.Equal(new ProcessKey(4200, 899), exec.ParentKey);
        Assert.Equal(17UL, exec.Sequence);
        Assert.Equal(T0.AddMilliseconds(5), exec.Time);
        Assert.Equal(["sh", "-c", "id"], exec.Argv);
        Assert.True(exec.PreviousImageWasRuntime);
        Assert.True(exec.ParentOutsideContainer);
        Assert.Same(Container, exec.Workload);
    }

    [Fact]
    public void FromStored_ExecWhoseContainerNoLongerResolves_Null()
    {
        var record = Stored(1, new NodeEvent { ProcessKey = "1@1", Exec = new ExecDetails { Argv = { "sh" } } });

        Assert.Null(StoredRecordMapper.FromStored(record, workload: null, parentInSameContainer: false));
    }

    [Theory]
    [InlineData("not-a-key")]
    [InlineData("")]
    [InlineData("12@")]
    public void FromStored_HostileProcessKey_NullInsteadOfThrowing(string key)
    {
        Assert.Null(StoredRecordMapper.FromStored(Stored(1, new NodeEvent { ProcessKey = key, Exit = new ExitDetails { ExitCode = 0 } }), Container, false));
        Assert.Null(StoredRecordMapper.FromStored(Stored(2, new NodeEvent { ProcessKey = key, Exec = new ExecDetails() }), Container, false));
    }

    [Fact]
    public void FromStored_ConnectAndOpen_ActorKeyAndDetails()
    {
        var connect = Assert.IsType<ConnectRecord>(StoredRecordMapper.FromStored(Stored(5, new NodeEvent
        {
            ProcessKey = "10@20",
            Connect = new ConnectDetails { Family = "inet", Address = "127.0.0.1", Port = 8080, Result = -115 },
        }), Container, false));
        Assert.Equal(new ProcessKey(10, 20), connect.Key);
        Assert.Equal(SocketFamily.Inet, connect.Family);
        Assert.Equal("127.0.0.1", connect.Address?.ToString());
        Assert.Equal(8080, connect.Port);
        Assert.Equal(-115, connect.Result);

        var open = Assert.IsType<FileOpenRecord>(StoredRecordMapper.FromStored(Stored(6, new NodeEvent
        {
            ProcessKey = "10@20",
            FileOpen = new FileOpenDetails { Path = "/etc/hostname", Result = 3 },
        }), Container, false));
        Assert.Equal("/etc/hostname", open.Path);
        Assert.Equal(3, open.Result);

        Assert.Null(StoredRecordMapper.FromStored(Stored(7, new NodeEvent { ProcessKey = "10@20", Connect = new ConnectDetails { Family = "netlink" } }), Container, false));
    }

    [Fact]
    public void FromStored_ExecAuditEventWithImpersonation_RequestStageForTheImpersonatedUser()
    {
        var audit = new AuditEvent
        {
            AuditId = "a1",
            Stage = "ResponseStarted",
            Verb = "create",
            User = new UserInfo { Username = "admin", Groups = { "system:masters" } },
            ImpersonatedUser = new UserInfo { Username = "alice", Groups = { "developers" } },
            AttributedUser = "alice",
            SourceIps = { "10.0.0.1" },
            Resource = "pods",
            Subresource = "exec",
            Namespace = "default",
            Name = "web",
            Container = "web",
            Command = { "sh" },
            ResponseCode = 101,
            RequestReceived = Timestamp.FromDateTimeOffset(T0),
            StageTimestamp = Timestamp.FromDateTimeOffset(T0.AddMilliseconds(30)),
        };

        var request = StoredRecordMapper.FromStored(audit);

        Assert.NotNull(request);
        Assert.Equal(AuditStage.ResponseStarted, request.Stage);
        Assert.Equal(AuditRequestKind.Exec, request.Kind);
        Assert.Equal("alice", request.User);
        Assert.Equal(["developers"], request.Groups);
        Assert.Equal(101, request.ResponseCode);
        Assert.Equal(T0, request.RequestReceived);
        Assert.Equal(["sh"], request.Command);
    }

    [Fact]
    public void FromStored_AuditEventWithoutTimestampsOrStage_Null()
    {
        Assert.Null(StoredRecordMapper.FromStored(new AuditEvent { AuditId = "a", Stage = "ResponseStarted" }));
        Assert.Null(StoredRecordMapper.FromStored(new AuditEvent
        {
            AuditId = "a", Stage = "Bogus", RequestReceived = Timestamp.FromDateTimeOffset(T0), StageTimestamp = Timestamp.FromDateTimeOffset(T0),
        }));
    }
}
