using Ebpf.Core.Processes;
using Ebpf.Events;

namespace Ebpf.Core.Tests.Processes;

public class ProcessTableTests
{
    private const ulong Tick = ProcessKey.NanosecondsPerTick;
    private readonly ManualTimeProvider _time = new();

    private static ForkEvent Fork(int parent, int child, ulong childStartTicks, ulong cgroup = 100, bool thread = false) => new()
    {
        Tgid = parent, Tid = parent, ParentTgid = parent, ParentPid = parent,
        ChildTgid = thread ? parent : child, ChildPid = child, ChildStartBootTimeNs = childStartTicks * Tick + 12345,
        CgroupId = cgroup, ChildCgroupId = cgroup,
    };

    private static ExecEvent Exec(int tgid, ulong startTicks, string file, int parent = 0, ulong cgroup = 100, params string[] argv) => new()
    {
        Tgid = tgid, Tid = tgid, ParentTgid = parent, StartBootTimeNs = startTicks * Tick + 999, Filename = file,
        Argv = argv.Length > 0 ? argv : [file], CgroupId = cgroup, Uid = 1000, Cwd = "/srv",
    };

    private static ExitEvent Exit(int tgid, ulong startTicks, int status = 0) => new()
    {
        Tgid = tgid, Tid = tgid, StartBootTimeNs = startTicks * Tick, WaitStatus = status, GroupDead = true,
    };

    private ProcessTable NewTable(ProcessTableOptions? options = null, Func<ulong, string?>? containerOf = null) => new(options, _time, containerOf);

    [Fact]
    public void Apply_ForkThenExecThenExit_TracksImageParentAndExit()
    {
        var table = NewTable();
        table.Seed([new ProcessSeed { Tgid = 10, ParentTgid = 1, StartTicks = 5, Exe = "/bin/bash", Argv = ["bash"], Cwd = "/root" }]);
        var child = table.Apply(Fork(10, 11, 50))!;
        Assert.Equal(new ProcessKey(11, 50), child.Key);
        Assert.Equal(new ProcessKey(10, 5), child.ParentKey);
        Assert.Equal("/bin/bash", child.Filename); // a fork runs its parent's image
        Assert.Equal("11@50:0", child.ExecId);

        var exec = table.Apply(Exec(11, 50, "/usr/bin/ls", parent: 10, argv: ["ls", "-l"]))!;
        Assert.Equal(["ls", "-l"], exec.Argv);
        Assert.Equal("11@50:1", exec.ExecId);
        var second = table.Apply(Exec(11, 50, "/usr/bin/cat", parent: 10))!;
        Assert.Equal("11@50:2", second.ExecId);
        Assert.Equal(new ProcessKey(10, 5), second.ParentKey);

        var exited = table.Apply(Exit(11, 50, status: 2 << 8))!;
        Assert.True(exited.Exited);
        Assert.Equal(2 << 8, exited.WaitStatus);
        Assert.False(table.TryGetLive(11, out _));
        Assert.True(table.TryGet(new ProcessKey(11, 50), out var kept));
        Assert.Equal("/usr/bin/cat", kept.Filename);
        Assert.Single(table.Children(new ProcessKey(10, 5)));
    }

    [Fact]
    public void Apply_ThreadFork_IsIgnored()
    {
        var table = NewTable();
        table.Apply(Exec(20, 7, "/usr/bin/java"));
        Assert.Null(table.Apply(Fork(20, 21, 8, thread: true)));
        Assert.Equal(1, table.Count);
        Assert.Equal(1, table.ThreadForksIgnored);
        // A thread leaving is not the process ending.
        Assert.Null(table.Apply(new ExitEvent { Tgid = 20, Tid = 21, StartBootTimeNs = 7 * Tick, GroupDead = false }));
        Assert.True(table.TryGetLive(20, out _));
    }

    [Fact]
    public void Apply_PidReuse_NewProcessIsDistinctAndOldStaysForLateJoins()
    {
        var table = NewTable();
        table.Apply(Exec(30, 100, "/bin/old"));
        table.Apply(Exit(30, 100));
        table.Apply(Exec(30, 900, "/bin/new"));
        Assert.True(table.TryGetLive(30, out var live));
        Assert.Equal("/bin/new", live.Filename);
        Assert.True(table.TryGet(new ProcessKey(30, 100), out var old));
        Assert.Equal("/bin/old", old.Filename);
        Assert.True(old.Exited);
    }

    [Fact]
    public void Apply_PidReuseWithLostExit_OldProcessIsMarkedExited()
    {
        var table = NewTable();
        table.Apply(Exec(31, 100, "/bin/old"));
        table.Apply(Exec(31, 700, "/bin/new"));
        Assert.True(table.TryGet(new ProcessKey(31, 100), out var old));
        Assert.True(old.Exited);
        Assert.Equal(1, table.LiveCount);
    }

    [Fact]
    public void EvictExpired_AfterRetention_ExitedProcessesGo()
    {
        var table = NewTable(new ProcessTableOptions { ExitedRetention = TimeSpan.FromSeconds(30) });
        table.Apply(Exec(40, 1, "/bin/a"));
        table.Apply(Exec(41, 2, "/bin/b"));
        table.Apply(Exit(40, 1));
        _time.Advance(TimeSpan.FromSeconds(29));
        Assert.Equal(0, table.EvictExpired());
        Assert.True(table.TryGet(new ProcessKey(40, 1), out _));
        _time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(1, table.EvictExpired());
        Assert.False(table.TryGet(new ProcessKey(40, 1), out _));
        Assert.True(table.TryGetLive(41, out _));
        Assert.Equal(1, table.Expired);
    }

    [Fact]
    public void Apply_BeyondMaxProcesses_EvictsExitedFirstThenLeastRecentAndCounts()
    {
        var table = NewTable(new ProcessTableOptions { MaxProcesses = 16 });
        for (int i = 0; i < 16; i++) table.Apply(Exec(1000 + i, (ulong)i, "/bin/p"));
        table.Apply(Exit(1005, 5));
        table.Apply(Exec(2000, 1, "/bin/q"));
        Assert.Equal(16, table.Count);
        Assert.False(table.TryGet(new ProcessKey(1005, 5), out _)); // the exited one went first
        table.Apply(Exec(1000, 0, "/bin/p2")); // touch the oldest live one
        table.Apply(Exec(2001, 1, "/bin/q"));
        Assert.True(table.TryGetLive(1000, out _));
        Assert.False(table.TryGetLive(1001, out _)); // least recently touched
        Assert.Equal(2, table.EvictedForSize);
        for (int i = 0; i < 10_000; i++) table.Apply(Exec(5000 + i, 1, "/bin/flood"));
        Assert.Equal(16, table.Count);
    }

    [Fact]
    public void Ancestry_ContainerProcess_StopsAtContainersFirstProcess()
    {
        const ulong host = 1, container = 500;
        var table = NewTable(containerOf: cg => cg == container ? "c1" : null);
        table.Seed([
            new ProcessSeed { Tgid = 1, StartTicks = 1, Exe = "/sbin/init", CgroupId = host },
            new ProcessSeed { Tgid = 50, ParentTgid = 1, StartTicks = 10, Exe = "/usr/bin/containerd-shim", CgroupId = host },
        ]);
        table.Apply(Fork(50, 60, 20, cgroup: container));
        table.Apply(Exec(60, 20, "/bin/sh", parent: 50, cgroup: container));
        table.Apply(Fork(60, 61, 30, cgroup: container));
        table.Apply(Exec(61, 30, "/usr/bin/curl", parent: 60, cgroup: container));

        var chain = table.Ancestry(new ProcessKey(61, 30));
        Assert.Equal([61, 60], chain.Select(p => p.Tgid));

        var hostChain = table.Ancestry(new ProcessKey(50, 10));
        Assert.Equal([50, 1], hostChain.Select(p => p.Tgid));
        Assert.Empty(table.Ancestry(new ProcessKey(999, 1)));
    }

    [Fact]
    public void Seed_LinksParentsByTgid()
    {
        var table = NewTable();
        table.Seed([
            new ProcessSeed { Tgid = 300, ParentTgid = 200, StartTicks = 30 },
            new ProcessSeed { Tgid = 200, ParentTgid = 1, StartTicks = 20 },
            new ProcessSeed { Tgid = 300, ParentTgid = 200, StartTicks = 30 },
        ]);
        Assert.Equal(2, table.Count);
        Assert.True(table.TryGetLive(300, out var child));
        Assert.Equal(new ProcessKey(200, 20), child.ParentKey);
        Assert.Equal(ProcessOrigin.ProcScan, child.Origin);
        Assert.Equal([300], table.Children(new ProcessKey(200, 20)).Select(p => p.Tgid));
    }

    [Fact]
    public void Apply_ExitOfUnknownProcess_IsCountedNotThrown()
    {
        var table = NewTable();
        Assert.Null(table.Apply(Exit(77, 1)));
        Assert.Equal(1, table.UnknownExits);
        Assert.Null(table.Apply(new ConnectEvent()));
    }
}
