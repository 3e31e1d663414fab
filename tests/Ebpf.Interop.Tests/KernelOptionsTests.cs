using Ebpf.Events;
using Ebpf.Testing.Runc;

namespace Ebpf.Interop.Tests;

/// <summary>Load-time options reach the BPF globals and change what the kernel emits.</summary>
[Collection(KernelCollection.Name)]
public sealed class KernelOptionsTests
{
    [KernelFact]
    public async Task Start_PathPrefixAndFailedOpensOff_KernelEmitsOnlySuccessfulOpensUnderPrefix()
    {
        await using var container = await RuncContainer.StartAsync();
        var tag = Guid.NewGuid().ToString("N")[..8];
        using var capture = KernelCapture.Start(new KernelCaptureOptions { FilePathPrefixes = ["/etc/"], CaptureFailedOpens = false });

        await container.ShellAsync($"echo x > /tmp/{tag}; cat /tmp/{tag}; cat /etc/missing-{tag}; cat /etc/hostname");
        // Past the poll timeout everything is in the channel; disposing completes it.
        await Task.Delay(1000);
        capture.Dispose();
        var opens = new List<FileOpenEvent>();
        await foreach (var e in capture.Events.ReadAllAsync())
        {
            if (e is FileOpenEvent o && o.CgroupId == container.CgroupId)
                opens.Add(o);
        }
        Assert.Contains(opens, o => o.Path == "/etc/hostname" && o.Result >= 0);
        Assert.All(opens, o => Assert.StartsWith("/etc/", o.Path, StringComparison.Ordinal));
        Assert.All(opens, o => Assert.True(o.Result >= 0, $"{o.Path} = {o.Result}"));
        Assert.DoesNotContain(opens, o => o.Path.Contains(tag, StringComparison.Ordinal));
    }

    [KernelFact]
    public async Task Start_FilterModeAll_CapturesHostProcesses()
    {
        var marker = "all-" + Guid.NewGuid().ToString("N");
        using var capture = KernelCapture.Start(new KernelCaptureOptions { FilterMode = CaptureFilterMode.All, DiscoverKubernetesRoots = false });
        (await HostProcess.RunAsync("/bin/busybox", ["true", marker])).EnsureSuccess("host true");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await foreach (var e in capture.Events.ReadAllAsync(cts.Token))
        {
            if (e is ExecEvent x && x.Argv.Contains(marker))
            {
                Assert.Equal(["/bin/busybox", "true", marker], x.Argv);
                Assert.Equal(Environment.ProcessId, x.ParentTgid);
                return;
            }
        }
    }
}
