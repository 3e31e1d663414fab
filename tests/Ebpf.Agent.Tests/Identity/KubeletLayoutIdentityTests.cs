using Ebpf.Agent.Tests.EndToEnd;
using Ebpf.Core.Identity;
using Ebpf.Events;
using Ebpf.Interop;
using Ebpf.Kubernetes;
using Ebpf.Testing.Runc;

namespace Ebpf.Agent.Tests.Identity;

/// <summary>
/// Real runc containers laid out as kubelets with the cgroupfs and the systemd driver lay them out, started after
/// capture and identity: their processes' kernel events resolve to the right pod UID, container id and QoS class
/// from the cgroup id alone (no API server), through the cgroup_mkdir records — no rescan needed.
/// </summary>
[Collection(EndToEndCollection.Name)]
public sealed class KubeletLayoutIdentityTests
{
    public static TheoryData<string, QosClass> Layouts() => new()
    {
        { "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice/cri-containerd-{id}.scope", QosClass.Burstable },
        { "/kubepods.slice/kubepods-pod{uid_}.slice/cri-containerd-{id}.scope", QosClass.Guaranteed },
        { "/kubepods/besteffort/pod{uid}/{id}", QosClass.BestEffort },
        { "/kubepods/pod{uid}/{id}", QosClass.Guaranteed },
    };

    [EndToEndTheory]
    [MemberData(nameof(Layouts))]
    public async Task Exec_ContainerStartedAfterTheAgent_ResolvesPodAndContainerFromItsCgroup(string layout, QosClass qos)
    {
        string podUid = Guid.NewGuid().ToString();
        string containerId = RuncContainer.NewContainerId();
        string cgroupsPath = layout.Replace("{uid_}", podUid.Replace('-', '_'), StringComparison.Ordinal)
            .Replace("{uid}", podUid, StringComparison.Ordinal).Replace("{id}", containerId, StringComparison.Ordinal);
        using var capture = KernelCapture.Start(new KernelCaptureOptions());
        await using var identity = NodeIdentity.Start(new NodeIdentityOptions { NodeName = "layout-test", Standalone = true, ScanProc = false });
        await using var container = await RuncContainer.StartAsync(new RuncContainerOptions { CgroupsPath = cgroupsPath });
        string marker = "layout-" + Guid.NewGuid().ToString("N");

        var exec = await container.ExecAsync(["sh", "-c", $"echo {marker}"]);
        Assert.Equal(0, exec.ExitCode);

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        WorkloadIdentity? resolved = null;
        await foreach (var e in capture.Events.ReadAllAsync(timeout.Token))
        {
            var identityOfEvent = identity.Observe(e);
            if (e is ExecEvent x && x.Argv.Contains($"echo {marker}"))
            {
                Assert.Equal(container.CgroupId, x.CgroupId);
                resolved = identityOfEvent;
                break;
            }
        }

        Assert.NotNull(resolved);
        Assert.Equal(cgroupsPath, resolved.CgroupPath);
        Assert.NotNull(resolved.Container);
        Assert.Equal(podUid, resolved.Container.PodUid);
        Assert.Equal(containerId, resolved.Container.ContainerId);
        Assert.Equal(qos, resolved.Container.Qos);
        Assert.False(resolved.MetadataAvailable);
    }
}

public sealed class EndToEndTheoryAttribute : TheoryAttribute
{
    public EndToEndTheoryAttribute() => Skip = new EndToEndFactAttribute().Skip;
}
