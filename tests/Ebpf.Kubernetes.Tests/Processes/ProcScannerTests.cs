using System.Diagnostics;
using Ebpf.Core.Processes;
using Ebpf.Interop;
using Ebpf.Kubernetes.Cgroups;
using Ebpf.Kubernetes.Processes;
using Ebpf.Kubernetes.Tests.Cgroups;

namespace Ebpf.Kubernetes.Tests.Processes;

public class ProcScannerTests
{
    private static Process StartSleep(string seconds = "30") =>
        Process.Start(new ProcessStartInfo("sleep", seconds) { UseShellExecute = false, WorkingDirectory = "/tmp" })!;

    private static void Stop(Process process)
    {
        try { process.Kill(); } catch (InvalidOperationException) { }
        process.WaitForExit();
        process.Dispose();
    }

    [Fact]
    public void Scan_ChildSleep_ReportsParentArgvExeCwdStartAndCgroup()
    {
        var sleep = StartSleep();
        try
        {
            int self = Environment.ProcessId;
            var scanner = new ProcScanner(cgroupMount: CgroupV2.FindMount());
            var seeds = scanner.Scan([self, sleep.Id]).ToDictionary(s => s.Tgid);
            var child = seeds[sleep.Id];
            var me = seeds[self];

            Assert.Equal(self, child.ParentTgid);
            Assert.Equal(["sleep", "30"], child.Argv);
            Assert.EndsWith("sleep", child.Exe);
            Assert.Equal("/tmp", child.Cwd);
            Assert.True(child.StartTicks >= me.StartTicks);
            Assert.NotNull(child.StartTime);
            Assert.InRange(child.StartTime!.Value, DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddSeconds(2));
            // Our own start ticks, read independently: field 22 counted from the end of comm.
            var stat = File.ReadAllText($"/proc/{self}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            Assert.Equal(ulong.Parse(fields[19]), me.StartTicks);
            Assert.Equal(int.Parse(fields[1]), me.ParentTgid);
            Assert.Equal(ProcScanner.ParseCgroupV2Path(File.ReadAllText($"/proc/{sleep.Id}/cgroup")), child.CgroupPath);
            Assert.NotEqual(0UL, child.CgroupId);
            Assert.Equal(GetUid(), child.Uid);
        }
        finally { Stop(sleep); }
    }

    [RootFact]
    public void Scan_ChildMovedIntoTestCgroup_ReportsThatCgroupsPathAndId()
    {
        using var tree = new TestCgroupTree();
        var sleep = StartSleep();
        try
        {
            var cgroup = tree.Below("/sleeper");
            tree.MoveProcess(sleep.Id, cgroup);
            var hierarchy = new CgroupHierarchy();
            var seed = new ProcScanner(cgroupMount: hierarchy.MountPoint).Scan([sleep.Id]).Single();
            Assert.Equal(cgroup, seed.CgroupPath);
            Assert.Equal(hierarchy.IdOf(cgroup), seed.CgroupId);
        }
        finally { Stop(sleep); }
    }

    [Fact]
    public void Scan_PidThatVanished_IsSkippedAndCounted()
    {
        var gone = StartSleep();
        int goneId = gone.Id;
        Stop(gone); // killed and reaped: the pid no longer exists
        var alive = StartSleep();
        try
        {
            var scanner = new ProcScanner();
            var seeds = scanner.Scan([goneId, alive.Id]);
            Assert.Equal([alive.Id], seeds.Select(s => s.Tgid));
            Assert.Equal(1, scanner.Skipped);
        }
        finally { Stop(alive); }
    }

    [Fact]
    public void Scan_WholeProc_FindsInitAndThisProcessAndSeedsATable()
    {
        var seeds = new ProcScanner(cgroupMount: CgroupV2.FindMount()).Scan();
        Assert.Contains(seeds, s => s.Tgid == 1);
        Assert.Contains(seeds, s => s.Tgid == Environment.ProcessId);
        var table = new ProcessTable();
        table.Seed(seeds);
        Assert.True(table.TryGetLive(Environment.ProcessId, out var me));
        Assert.NotNull(me.ParentKey);
        Assert.NotEmpty(table.Ancestry(me.Key));
    }

    [Theory]
    [InlineData("42 (bash) S 7 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 123456 1 2 3", 7, 123456UL)]
    [InlineData("42 (a) b) (c d) R 9 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 1", 9, 99UL)]
    [InlineData("42 () Z 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 5", 1, 5UL)]
    public void TryParseStat_CommWithSpacesAndParens_ReadsPpidAndStartTicks(string stat, int ppid, ulong ticks)
    {
        Assert.True(ProcScanner.TryParseStat(stat, out var p, out var t));
        Assert.Equal((ppid, ticks), (p, t));
    }

    [Theory]
    [InlineData("")]
    [InlineData("42 bash S 7")]
    [InlineData("42 (bash) S x 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 123456")]
    [InlineData("42 (bash) S 7 42 42")]
    [InlineData("42 (bash) S 7 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 -5")]
    public void TryParseStat_Malformed_ReturnsFalse(string stat) => Assert.False(ProcScanner.TryParseStat(stat, out _, out _));

    [Fact]
    public void ParseCmdline_NulSeparated_SplitsAndIgnoresTrailingNul()
    {
        Assert.Equal(["a", "", "b c"], ProcScanner.ParseCmdline("a\0\0b c\0"u8.ToArray()));
        Assert.Empty(ProcScanner.ParseCmdline([]));
        Assert.Equal(["rewritten title"], ProcScanner.ParseCmdline("rewritten title"u8.ToArray()));
    }

    // id(1), not a P/Invoke: native calls live only in Ebpf.Interop, and a separate tool checks the parser independently.
    private static uint GetUid()
    {
        var psi = new ProcessStartInfo("id", ["-u"]) { RedirectStandardOutput = true };
        using var id = Process.Start(psi)!;
        var output = id.StandardOutput.ReadToEnd();
        id.WaitForExit();
        return uint.Parse(output.Trim(), System.Globalization.CultureInfo.InvariantCulture);
    }
}
