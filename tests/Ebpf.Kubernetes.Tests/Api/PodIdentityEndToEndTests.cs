using Ebpf.Core.Identity;
using Ebpf.Core.Processes;
using Ebpf.Events;
using Ebpf.Kubernetes.Api;
using Ebpf.Kubernetes.Cgroups;
using Ebpf.Kubernetes.Processes;
using Ebpf.Kubernetes.Tests.Cgroups;
using Ebpf.Testing.KubeApi;

namespace Ebpf.Kubernetes.Tests.Api;

/// <summary>Real cgroup directories + the pod watcher against the API test server + the resolver and process table.</summary>
public class PodIdentityEndToEndTests
{
    [RootFact]
    public async Task Resolve_MetadataArrivesAfterFirstResolution_EnrichedIdentityFollows()
    {
        await using var server = await KubeApiTestServer.StartAsync();
        using var tree = new TestCgroupTree();
        string uid = Guid.NewGuid().ToString();
        string containerId = KubePodTemplate.NewContainerId();
        // A kind-style prefix (the test root) in front of a systemd-driver container cgroup.
        var path = tree.Below($"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid.Replace('-', '_')}.slice/cri-containerd-{containerId}.scope");

        var hierarchy = new CgroupHierarchy();
        hierarchy.Scan();
        ulong cgroupId = hierarchy.IdOf(path);
        var client = new KubeApiClient(new KubeClientConfig { Server = server.BaseAddress, Token = server.Token });
        await using var watcher = new PodWatcher(client, new PodWatcherOptions { NodeName = "node-a" });
        watcher.Start();
        await watcher.Synced.WaitAsync(TimeSpan.FromSeconds(15));
        using var resolver = new PodIdentityResolver(hierarchy, watcher);

        var before = resolver.Resolve(cgroupId);
        Assert.Equal(new ContainerCgroup(uid, containerId, QosClass.BestEffort, ContainerRuntime.Containerd), before.Container);
        Assert.False(before.MetadataAvailable);

        var pod = KubePodTemplate.Create("payments", "api-0", "node-a", uid: uid, containerId: "");
        server.AddPod(pod);
        await Wait.UntilAsync(() => resolver.Resolve(cgroupId).PodName == "api-0", "pod names");
        Assert.Null(resolver.Resolve(cgroupId).ContainerName); // container not started yet

        KubePodTemplate.SetContainerStarted(pod, "web", containerId);
        server.ModifyPod(pod);
        await Wait.UntilAsync(() => resolver.Resolve(cgroupId).ContainerName == "web", "container name");
        var after = resolver.Resolve(cgroupId);
        Assert.Equal(("payments", "api-0", path), (after.Namespace, after.PodName, after.CgroupPath));

        // The process table, scoped by container, over a real process placed in that cgroup.
        var sleep = System.Diagnostics.Process.Start("sleep", "30");
        try
        {
            tree.MoveProcess(sleep.Id, path);
            var table = new ProcessTable(containerOfCgroup: id => resolver.Resolve(id).Container?.ContainerId);
            table.Seed(new ProcScanner(cgroupMount: hierarchy.MountPoint).Scan());
            Assert.True(table.TryGetLive(sleep.Id, out var process));
            Assert.Equal(cgroupId, process.CgroupId);
            // Its parent (this test process) is on the host: the chain ends at the container's first process.
            Assert.Equal([sleep.Id], table.Ancestry(process.Key).Select(p => p.Tgid));
            Assert.Equal("web", resolver.Resolve(process.CgroupId).ContainerName);
        }
        finally
        {
            sleep.Kill();
            sleep.WaitForExit();
        }
    }

    [RootFact]
    public void Resolve_CgroupCreatedAfterStartWithMkdirRecord_ResolvesWithoutRescan()
    {
        using var tree = new TestCgroupTree();
        var hierarchy = new CgroupHierarchy(new CgroupHierarchyOptions { RescanMinInterval = TimeSpan.FromHours(1) });
        hierarchy.Scan();
        using var resolver = new PodIdentityResolver(hierarchy);
        string uid = Guid.NewGuid().ToString();
        string id = KubePodTemplate.NewContainerId();
        var pod = tree.Below($"/kubepods/besteffort/pod{uid}");
        var container = tree.Below($"/kubepods/besteffort/pod{uid}/{id}");
        hierarchy.Apply(new CgroupEvent(EventKind.CgroupMkdir) { TargetCgroupId = hierarchy.IdOf(pod), Path = pod });
        hierarchy.Apply(new CgroupEvent(EventKind.CgroupMkdir) { TargetCgroupId = hierarchy.IdOf(container), Path = container });
        Assert.Equal(id, resolver.Resolve(hierarchy.IdOf(container)).Container?.ContainerId);
        Assert.Equal("", resolver.Resolve(hierarchy.IdOf(pod)).Container?.ContainerId);
        Assert.Equal(0, hierarchy.Rescans);
    }
}
