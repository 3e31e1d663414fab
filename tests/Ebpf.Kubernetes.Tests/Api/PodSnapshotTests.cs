using System.Text.Json.Nodes;
using Ebpf.Kubernetes.Api;
using Ebpf.Testing.KubeApi;

namespace Ebpf.Kubernetes.Tests.Api;

public sealed class PodSnapshotTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ebpf-pods-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string text)
    {
        string path = Path.Combine(_dir, Guid.NewGuid().ToString("N") + ".json");
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public async Task LoadSnapshot_KubectlList_PodsOfThisNodeResolvable()
    {
        string containerId = KubePodTemplate.NewContainerId();
        var mine = KubePodTemplate.Create("shop", "web-1", "node-a", containerId: containerId);
        var other = KubePodTemplate.Create("shop", "web-2", "node-b");
        string path = Write(new JsonObject { ["apiVersion"] = "v1", ["kind"] = "List", ["items"] = new JsonArray(mine, other) }.ToJsonString());
        await using var watcher = new PodWatcher(null, new PodWatcherOptions { NodeName = "node-a" });

        int loaded = watcher.LoadSnapshot(path);

        Assert.Equal(1, loaded);
        Assert.True(watcher.TryGetPod("shop", "web-1", out var pod));
        Assert.False(watcher.TryGetPod("shop", "web-2", out _));
        Assert.True(watcher.TryGetContainer(containerId, out _, out var container));
        Assert.Equal(pod!.Containers[0].Name, container!.Name);
        Assert.StartsWith("standalone (pod snapshot: 1 pods)", watcher.State, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("not json at all", "not JSON")]
    [InlineData("{\"kind\":\"Deployment\",\"items\":[]}", "not a pod list")]
    [InlineData("[1,2,3]", "not JSON")]
    public async Task LoadSnapshot_NotAPodList_ClearError(string text, string expected)
    {
        await using var watcher = new PodWatcher(null, new PodWatcherOptions { NodeName = "node-a" });

        var e = Assert.Throws<InvalidDataException>(() => watcher.LoadSnapshot(Write(text)));

        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task LoadSnapshot_MalformedItem_SkippedOthersLoaded()
    {
        var good = KubePodTemplate.Create("ns", "ok", "node-a");
        string path = Write(new JsonObject { ["kind"] = "PodList", ["items"] = new JsonArray(new JsonObject { ["metadata"] = 42 }, good) }.ToJsonString());
        await using var watcher = new PodWatcher(null, new PodWatcherOptions { NodeName = "node-a" });

        Assert.Equal(1, watcher.LoadSnapshot(path));
        Assert.Equal(1, watcher.SkippedObjects);
    }
}
