using Ebpf.Events;
using Ebpf.Kubernetes.Api;
using Ebpf.Kubernetes.Tests.Cgroups;
using Ebpf.Testing.KubeApi;

namespace Ebpf.Kubernetes.Tests;

public class NodeIdentityTests
{
    [RootFact]
    public async Task Observe_ExecInContainerCgroup_ResolvesPodAndTracksProcess()
    {
        await using var server = await KubeApiTestServer.StartAsync();
        using var tree = new TestCgroupTree();
        string uid = Guid.NewGuid().ToString(), containerId = KubePodTemplate.NewContainerId();
        server.AddPod(KubePodTemplate.Create("payments", "api-0", "node-a", uid: uid, containerId: containerId));

        var api = KubeClientConfig.ParseKubeconfig(server.Kubeconfig(), ".");
        await using var identity = NodeIdentity.Start(new NodeIdentityOptions { NodeName = "node-a" }, api: api);
        await identity.Pods.Synced.WaitAsync(TimeSpan.FromSeconds(15));
        Assert.True(identity.Processes.TryGetLive(Environment.ProcessId, out _)); // seeded from /proc

        // The container's cgroup appears after start; its mkdir record comes first, as from the kernel.
        var path = tree.Below($"/kubepods/besteffort/pod{uid}/{containerId}");
        ulong cgroupId = identity.Cgroups.IdOf(path);
        identity.Observe(new CgroupEvent(EventKind.CgroupMkdir) { TargetCgroupId = cgroupId, Path = path, CgroupId = 1 });
        var who = identity.Observe(new ExecEvent { Tgid = 4_000_001, Tid = 4_000_001, StartBootTimeNs = 5_000_000_000, CgroupId = cgroupId, Filename = "/bin/sh", Argv = ["sh"] });
        Assert.Equal(("payments", "api-0", "web"), (who.Namespace, who.PodName, who.ContainerName));
        Assert.True(identity.Processes.TryGetLive(4_000_001, out var sh));
        Assert.Equal("/bin/sh", sh.Filename);
        Assert.Equal("synced", identity.State);
    }

    [Fact]
    public async Task Start_Standalone_NeverBlocksAndHasNoNames()
    {
        await using var identity = NodeIdentity.Start(new NodeIdentityOptions { Standalone = true, ScanProc = false });
        Assert.Equal("standalone", identity.State);
        Assert.True(identity.Pods.IsSynced);
        Assert.Null(NodeIdentity.DiscoverApi(null, standalone: true));
        var who = identity.Observe(new ExitEvent { Tgid = 1, CgroupId = identity.Cgroups.IdOf("/") });
        Assert.Equal("/", who.CgroupPath);
        Assert.False(who.MetadataAvailable);
    }
}
