using Ebpf.Core.Processes;

namespace Ebpf.Core.Tests.Processes;

public sealed class ProcessTableLiveProcessesTests
{
    [Fact]
    public void LiveProcesses_SeededThenOneExits_OnlyLiveListed()
    {
        var table = new ProcessTable();
        table.Seed([
            new ProcessSeed { Tgid = 10, ParentTgid = 1, StartTicks = 100, Argv = ["init"] },
            new ProcessSeed { Tgid = 11, ParentTgid = 10, StartTicks = 200, Argv = ["sh"] },
        ]);
        table.Apply(new Ebpf.Events.ExitEvent { Tgid = 11, Tid = 11, StartBootTimeNs = 200 * ProcessKey.NanosecondsPerTick, GroupDead = true });

        var live = table.LiveProcesses();

        var only = Assert.Single(live);
        Assert.Equal(new ProcessKey(10, 100), only.Key);
    }
}
