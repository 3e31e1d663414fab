using Ebpf.Events;
using Ebpf.Testing.Runc;

namespace Ebpf.Interop.Tests;

/// <summary>Under load nothing is lost silently: every exec arrives, and open losses show in the counters.</summary>
[Collection(KernelCollection.Name)]
public sealed class BurstTests(CaptureFixture fixture)
{
    private const int Execs = 3000;
    private const int Opens = 30000;

    [KernelFact]
    public async Task Burst_ThousandsOfExecsAndTensOfThousandsOfOpens_EveryExecArrivesAndOpenLossIsCounted()
    {
        await using var container = await RuncContainer.StartAsync();
        using var events = fixture.SubscribeCgroup(container.CgroupId);
        var marker = "burst" + Guid.NewGuid().ToString("N")[..8];
        var openTarget = "/tmp/" + marker;
        var before = fixture.Capture.Snapshot();

        // Execs: /bin/true by path always forks and execs (no NOFORK applet shortcut). Opens: `read < file` is
        // one open(2)/openat(2) by the shell itself per iteration.
        var script = $"echo x > {openTarget}; i=0; while [ $i -lt {Execs} ]; do /bin/true {marker} $i; i=$((i+1)); done; "
            + $"i=0; while [ $i -lt {Opens} ]; do read l < {openTarget}; i=$((i+1)); done; echo done";
        var result = await container.ShellAsync(script, TimeSpan.FromMinutes(3));
        Assert.Equal(0, result.ExitCode);
        Assert.Contains("done", result.StandardOutput, StringComparison.Ordinal);

        static bool IsBurstExec(NodeEvent e, string m) => e is ExecEvent x && x.Argv.Count == 3 && x.Argv[1] == m;
        bool IsBurstRead(NodeEvent e) => e is FileOpenEvent o && o.Path == openTarget && (o.Flags & 3) == 0;

        var seen = await events.CollectUntilAsync(
            s => s.Count(e => IsBurstExec(e, marker)) >= Execs && s.Count(IsBurstRead) >= Opens,
            TimeSpan.FromSeconds(20));
        var after = fixture.Capture.Snapshot();

        var execArgs = seen.Where(e => IsBurstExec(e, marker)).Select(e => ((ExecEvent)e).Argv[2]).ToHashSet();
        Assert.Equal(Execs, execArgs.Count);
        Assert.True(Enumerable.Range(0, Execs).All(i => execArgs.Contains(i.ToString())));

        var opensDelivered = (ulong)seen.Count(IsBurstRead);
        var openDrops = after.DropsOf(EventKind.FileOpen) - before.DropsOf(EventKind.FileOpen);
        Assert.True(opensDelivered <= Opens, $"{opensDelivered} opens delivered for {Opens} made");
        Assert.True(opensDelivered + openDrops >= Opens,
            $"silent loss: {Opens} opens made, {opensDelivered} delivered, {openDrops} counted as dropped");
        Assert.True(after.Events - before.Events >= (ulong)(Execs + opensDelivered));
    }
}
