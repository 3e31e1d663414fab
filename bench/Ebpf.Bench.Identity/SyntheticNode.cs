using System.Diagnostics.CodeAnalysis;
using Ebpf.Core.Identity;
using Ebpf.Core.Processes;

namespace Ebpf.Bench.Identity;

/// <summary>A node's worth of identity state built in memory: pods with container cgroups, and live processes.</summary>
internal sealed class SyntheticNode
{
    public required PodIdentityResolver Resolver { get; init; }
    public required ProcessTable Table { get; init; }
    public required ulong[] ContainerCgroupIds { get; init; }
    public required PodMetadataStore Pods { get; init; }

    public static SyntheticNode Build(int pods, int containersPerPod, int liveProcesses)
    {
        var map = new CgroupPathMap();
        var store = new PodMetadataStore();
        var ids = new List<ulong>();
        ulong nextId = 10_000;
        for (int p = 0; p < pods; p++)
        {
            string uid = Guid.NewGuid().ToString();
            var containers = new List<PodContainer>();
            for (int c = 0; c < containersPerPod; c++)
            {
                string containerId = Convert.ToHexStringLower(Guid.NewGuid().ToByteArray()) + Convert.ToHexStringLower(Guid.NewGuid().ToByteArray());
                ulong id = nextId++;
                map.Set(id, $"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid.Replace('-', '_')}.slice/cri-containerd-{containerId}.scope");
                ids.Add(id);
                containers.Add(new PodContainer
                {
                    Name = "container-" + c, ContainerId = containerId, Runtime = ContainerRuntime.Containerd, Image = "registry.example/team/app:1.2." + c,
                    Command = ["/app/server"], Args = ["--port", "8080", "--log-level", "info"],
                    KubeletExecs = [new KubeletExecCommand(KubeletExecKind.LivenessProbe, ["cat", "/tmp/healthy"])], State = "running",
                });
            }
            store.Set(new PodMetadata
            {
                Uid = uid, Namespace = "team-" + (p % 20), Name = $"app-{p}-7c5ddbdf54-x2x9q", NodeName = "node-a", ServiceAccountName = "default",
                Labels = new Dictionary<string, string> { ["app"] = "app-" + p, ["pod-template-hash"] = "7c5ddbdf54", ["tier"] = "backend" },
                Annotations = new Dictionary<string, string> { ["kubectl.kubernetes.io/restartedAt"] = "2026-11-22T09:58:10Z" },
                Owners = [new PodOwner("ReplicaSet", $"app-{p}-7c5ddbdf54", Guid.NewGuid().ToString(), true)],
                PodIPs = ["10.244." + (p / 250) + "." + (p % 250)], Phase = "Running", Containers = containers,
            });
        }
        var resolver = new PodIdentityResolver(new MapResolver(map), store);
        var idArray = ids.ToArray();
        var table = new ProcessTable(new ProcessTableOptions { ExitedRetention = TimeSpan.Zero }, containerOfCgroup: id => resolver.Resolve(id).Container?.ContainerId);
        var seeds = new List<ProcessSeed>(liveProcesses) { new() { Tgid = 100, ParentTgid = 1, StartTicks = 1, Exe = "/usr/bin/containerd-shim-runc-v2" } };
        for (int i = 0; i < liveProcesses - 1; i++)
            seeds.Add(new ProcessSeed
            {
                Tgid = 200 + i, ParentTgid = 100, StartTicks = (ulong)(1000 + i), Exe = "/usr/local/bin/app-server",
                Argv = ["/usr/local/bin/app-server", "--config", "/etc/app/config.yaml", "--port", (8000 + i % 1000).ToString()],
                Cwd = "/srv/app", Uid = 1000, CgroupId = idArray[i % idArray.Length], StartTime = DateTimeOffset.UtcNow,
            });
        table.Seed(seeds);
        return new SyntheticNode { Resolver = resolver, Table = table, ContainerCgroupIds = idArray, Pods = store };
    }

    private sealed class MapResolver(CgroupPathMap map) : ICgroupPathResolver
    {
        public long Version => map.Version;
        public bool TryResolve(ulong cgroupId, out string path) => map.TryGetPath(cgroupId, out path);
    }
}

/// <summary>In-memory pod metadata indexed like PodWatcher's cache (by uid and by container id).</summary>
internal sealed class PodMetadataStore : IPodMetadataSource
{
    private readonly Dictionary<string, PodMetadata> _byUid = new();
    private readonly Dictionary<string, string> _uidByContainer = new();
    public event Action<string>? PodChanged;

    public void Set(PodMetadata pod)
    {
        _byUid[pod.Uid] = pod;
        foreach (var c in pod.Containers) _uidByContainer[c.ContainerId] = pod.Uid;
        PodChanged?.Invoke(pod.Uid);
    }

    public bool TryGetPod(string podUid, [NotNullWhen(true)] out PodMetadata? pod) => _byUid.TryGetValue(podUid, out pod);

    public bool TryGetContainer(string containerId, [NotNullWhen(true)] out PodMetadata? pod, [NotNullWhen(true)] out PodContainer? container)
    {
        container = null;
        pod = null;
        if (!_uidByContainer.TryGetValue(containerId, out var uid) || !_byUid.TryGetValue(uid, out pod)) return false;
        container = pod.FindContainerById(containerId);
        return container is not null;
    }
}
