using Ebpf.Events;
using Ebpf.Testing.Runc;

namespace Ebpf.Interop.Tests;

/// <summary>
/// Loss is forced on purpose, once in the kernel (ring buffer full) and once in user space (channel full), and each
/// time the counters account for it: delivered + counted drops ≥ generated, with the right counter above zero.
/// </summary>
[Collection(KernelCollection.Name)]
public sealed class LossAccountingTests
{
    private const int Opens = 5000;

    [KernelFact]
    public async Task Snapshot_RingBufferOverflows_KernelDropsAccountForEveryLostOpen()
    {
        // 16 KiB holds ~200 open records; the reader sleeps up to 3 s per poll and is never woken (threshold
        // above anything that fits), so the burst overflows the ring and bpf_ringbuf_output fails.
        var options = new KernelCaptureOptions
        {
            RingBufferBytes = 16 * 1024,
            WakeupThresholdBytes = 16 * 1024 - 1,
            PollTimeoutMs = 3000,
        };
        var (delivered, before, after) = await RunOpenBurstAsync(options, readWhileRunning: true);

        var kernelDrops = after.KernelDropsByKind.GetValueOrDefault(EventKind.FileOpen) - before.KernelDropsByKind.GetValueOrDefault(EventKind.FileOpen);
        Assert.True(kernelDrops > 0, "the 16 KiB ring buffer must overflow");
        Assert.True(delivered < Opens, $"{delivered} delivered");
        Assert.True((ulong)delivered + (after.DropsOf(EventKind.FileOpen) - before.DropsOf(EventKind.FileOpen)) >= Opens,
            $"silent loss: {Opens} made, {delivered} delivered, {kernelDrops} kernel drops");
    }

    [KernelFact]
    public async Task Snapshot_ChannelFull_HandoffDropsAccountForEveryLostOpen()
    {
        var options = new KernelCaptureOptions { ChannelCapacity = 16 };
        var (delivered, before, after) = await RunOpenBurstAsync(options, readWhileRunning: false);

        var handoff = after.HandoffDropsByKind.GetValueOrDefault(EventKind.FileOpen) - before.HandoffDropsByKind.GetValueOrDefault(EventKind.FileOpen);
        Assert.True(handoff > 0, "a 16-event channel nobody reads must overflow");
        Assert.True(delivered <= 16);
        Assert.True((ulong)delivered + (after.DropsOf(EventKind.FileOpen) - before.DropsOf(EventKind.FileOpen)) >= Opens,
            $"silent loss: {Opens} made, {delivered} delivered, {handoff} hand-off drops");
    }

    private static async Task<(long Delivered, CaptureCounters Before, CaptureCounters After)> RunOpenBurstAsync(KernelCaptureOptions options, bool readWhileRunning)
    {
        await using var container = await RuncContainer.StartAsync();
        var target = "/tmp/loss-" + Guid.NewGuid().ToString("N")[..8];
        using var capture = KernelCapture.Start(options);
        long delivered = 0;
        bool IsOurs(NodeEvent e) => e is FileOpenEvent o && o.CgroupId == container.CgroupId && o.Path == target && (o.Flags & 3) == 0;
        Task Drain() => Task.Run(async () =>
        {
            await foreach (var e in capture.Events.ReadAllAsync())
            {
                if (IsOurs(e))
                    Interlocked.Increment(ref delivered);
            }
        });

        var before = capture.Snapshot();
        var reader = readWhileRunning ? Drain() : null;
        var result = await container.ShellAsync($"echo x > {target}; i=0; while [ $i -lt {Opens} ]; do read l < {target}; i=$((i+1)); done; echo done");
        Assert.Contains("done", result.StandardOutput, StringComparison.Ordinal);
        await Task.Delay(options.PollTimeoutMs + 500);
        var after = capture.Snapshot();
        capture.Dispose();
        if (reader is null)
        {
            // The channel keeps what it accepted before it filled up; count those now.
            while (capture.Events.TryRead(out var e))
            {
                if (IsOurs(e))
                    delivered++;
            }
        }
        else
        {
            await reader;
        }
        return (delivered, before, after);
    }
}

/// <summary>A pod root created after start (cgroup_mkdir) joins the kernel filter without a restart.</summary>
[Collection(KernelCollection.Name)]
public sealed class RootTrackingTests
{
    [KernelFact]
    public async Task Start_NewKubernetesRootCreatedLater_IsAddedFromCgroupMkdirAndItsContainersCaptured()
    {
        // A unique root name stands in for "kubepods" so the shared machine's real /kubepods is left alone.
        var rootName = "ebpf-kubepods-" + Guid.NewGuid().ToString("N")[..10];
        var rootDir = Path.Combine(RuncContainer.V2Mount, rootName);
        using var capture = KernelCapture.Start(new KernelCaptureOptions { KubernetesRootNames = [rootName] });
        Assert.Empty(capture.ContainerRoots);
        try
        {
            Directory.CreateDirectory(rootDir);
            var rootId = RuncContainer.ReadInode(rootDir);
            var deadline = DateTime.UtcNow.AddSeconds(5);
            while (!capture.ContainerRoots.ContainsKey(rootId) && DateTime.UtcNow < deadline)
                await Task.Delay(50);
            Assert.Equal("/" + rootName, Assert.Single(capture.ContainerRoots).Value);

            await using var container = await RuncContainer.StartAsync(new RuncContainerOptions
            {
                CgroupsPath = $"/{rootName}/besteffort/pod{Guid.NewGuid()}/{RuncContainer.NewContainerId()}",
            });
            await container.ExecAsync(["/bin/true", "tracked-root"]);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            ExecEvent? seen = null;
            await foreach (var e in capture.Events.ReadAllAsync(cts.Token))
            {
                if (e is ExecEvent x && x.CgroupId == container.CgroupId && x.Argv.Contains("tracked-root"))
                {
                    seen = x;
                    break;
                }
            }
            Assert.NotNull(seen);
        }
        finally
        {
            capture.Dispose();
            for (var i = 0; i < 20 && Directory.Exists(rootDir); i++)
            {
                try { Directory.Delete(rootDir); } catch (IOException) { await Task.Delay(100); }
            }
        }
    }
}
