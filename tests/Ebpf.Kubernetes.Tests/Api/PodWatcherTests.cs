using System.Net;
using System.Text.Json.Nodes;
using Ebpf.Core.Identity;
using Ebpf.Kubernetes.Api;
using Ebpf.Testing.KubeApi;

namespace Ebpf.Kubernetes.Tests.Api;

public sealed class PodWatcherTests : IAsyncLifetime
{
    private const string Node = "node-a";
    private KubeApiTestServer _server = null!;
    private readonly List<IAsyncDisposable> _disposables = [];

    public async Task InitializeAsync() => _server = await KubeApiTestServer.StartAsync();

    public async Task DisposeAsync()
    {
        foreach (var d in _disposables) await d.DisposeAsync();
        await _server.DisposeAsync();
    }

    private static PodWatcherOptions Options(int pageSize = 500, int maxLine = 4 << 20) => new()
    {
        NodeName = Node, PageSize = pageSize, MaxWatchLineBytes = maxLine,
        InitialBackoff = TimeSpan.FromMilliseconds(20), MaxBackoff = TimeSpan.FromMilliseconds(200),
    };

    private PodWatcher StartWatcher(PodWatcherOptions? options = null, string? token = null, KubeClientConfig? config = null)
    {
        var client = new KubeApiClient(config ?? new KubeClientConfig { Server = _server.BaseAddress, Token = token ?? _server.Token });
        var watcher = new PodWatcher(client, options ?? Options());
        _disposables.Add(watcher);
        watcher.Start();
        return watcher;
    }

    private static async Task SyncedAsync(PodWatcher watcher) => await watcher.Synced.WaitAsync(TimeSpan.FromSeconds(15));

    [Fact]
    public async Task Synced_PagedListOfThisNode_FillsNamesLabelsAndContainers()
    {
        var webId = KubePodTemplate.NewContainerId();
        var initId = KubePodTemplate.NewContainerId();
        var web = KubePodTemplate.Create("shop", "web-0", Node, containerId: webId, initContainerId: initId, labels: new Dictionary<string, string> { ["app"] = "web", ["tier"] = "front" });
        _server.AddPod(web);
        _server.AddPod(KubePodTemplate.Create("shop", "web-1", Node));
        _server.AddPod(KubePodTemplate.Create("kube-system", "proxy", Node));
        _server.AddPod(KubePodTemplate.Create("shop", "elsewhere", "node-b"));

        var watcher = StartWatcher(Options(pageSize: 2));
        Assert.Equal("syncing", watcher.State);
        await SyncedAsync(watcher);
        Assert.Equal("synced", watcher.State);
        Assert.Equal(3, watcher.Count);
        Assert.Equal(2, _server.ListRequests); // two pages of at most 2

        Assert.True(watcher.TryGetPod("shop", "web-0", out var pod));
        Assert.Equal((string)web["metadata"]!["uid"]!, pod.Uid);
        Assert.Equal("front", pod.Labels["tier"]);
        Assert.Equal(Node, pod.NodeName);
        Assert.Equal("default", pod.ServiceAccountName);
        Assert.Equal(["10.244.1.17"], pod.PodIPs);
        Assert.Equal("ReplicaSet", Assert.Single(pod.Owners).Kind);
        Assert.True(watcher.TryGetContainer(webId, out var byId, out var container));
        Assert.Same(pod, byId);
        Assert.Equal(("web", PodContainerKind.Regular, ContainerRuntime.Containerd, "running"), (container.Name, container.Kind, container.Runtime, container.State));
        Assert.Equal(["nginx"], container.Command);
        Assert.Equal([KubeletExecKind.LivenessProbe, KubeletExecKind.PreStop], container.KubeletExecs.Select(e => e.Kind));
        Assert.Equal(["cat", "/tmp/healthy"], container.KubeletExecs[0].Command);
        Assert.True(watcher.TryGetContainer(initId, out _, out var init));
        Assert.Equal(("init-config", PodContainerKind.Init, "terminated"), (init.Name, init.Kind, init.State));
        Assert.False(watcher.TryGetPod("shop", "elsewhere", out _));
    }

    [Fact]
    public async Task Watch_AddModifyDeleteAndBookmarks_KeepCacheCurrent()
    {
        var watcher = StartWatcher();
        await SyncedAsync(watcher);
        var changed = new List<string>();
        watcher.PodChanged += uid => { lock (changed) changed.Add(uid); };

        var pod = KubePodTemplate.Create("shop", "late", Node, containerId: "");
        string uid = (string)pod["metadata"]!["uid"]!;
        _server.AddPod(pod);
        await Wait.UntilAsync(() => watcher.TryGetPod(uid, out _), "ADDED pod");
        Assert.Equal("waiting", watcher.Pods.Single().Containers.Single(c => c.Name == "web").State);

        var id = KubePodTemplate.NewContainerId();
        KubePodTemplate.SetContainerStarted(pod, "web", id);
        pod["metadata"]!["labels"]!["version"] = "2";
        _server.ModifyPod(pod);
        await Wait.UntilAsync(() => watcher.TryGetContainer(id, out _, out _), "MODIFIED pod");
        Assert.True(watcher.TryGetPod(uid, out var modified));
        Assert.Equal("2", modified.Labels["version"]);

        _server.DeletePod("shop", "late");
        await Wait.UntilAsync(() => !watcher.TryGetPod(uid, out _), "DELETED pod");
        Assert.False(watcher.TryGetContainer(id, out _, out _));
        // PodChanged is raised after the cache is updated, so the test can see the removal before the event.
        await Wait.UntilAsync(() => { lock (changed) return changed.Count >= 3; }, "PodChanged for the delete");
        lock (changed) Assert.Equal([uid, uid, uid], changed);

        // Changes on another node are filtered by the server; bookmarks still move our resourceVersion forward.
        long rv = _server.AddPod(KubePodTemplate.Create("shop", "other", "node-b"));
        await Wait.UntilAsync(() => watcher.ResourceVersion == rv.ToString(), "bookmark with the newest resourceVersion");
        Assert.Equal(1, watcher.Lists);
    }

    [Fact]
    public async Task Watch_ConnectionDropped_ReconnectsFromLastVersionWithoutRelist()
    {
        var watcher = StartWatcher();
        await SyncedAsync(watcher);
        await Wait.UntilAsync(() => _server.OpenWatches == 1, "watch open");
        _server.DropWatches();
        _server.AddPod(KubePodTemplate.Create("shop", "during-drop", Node));
        await Wait.UntilAsync(() => watcher.TryGetPod("shop", "during-drop", out _), "pod added around the drop");
        await Wait.UntilAsync(() => _server.WatchRequests >= 2, "second watch");
        Assert.Equal(1, _server.ListRequests);
        Assert.Equal("synced", watcher.State);
    }

    [Fact]
    public async Task Watch_410GoneEvent_RelistsAndStaysConsistent()
    {
        _server.AddPod(KubePodTemplate.Create("shop", "a", Node));
        var watcher = StartWatcher();
        await SyncedAsync(watcher);
        await Wait.UntilAsync(() => _server.OpenWatches == 1, "watch open");
        _server.DeletePod("shop", "a");
        _server.AddPod(KubePodTemplate.Create("shop", "b", Node));
        _server.ExpireResourceVersions();
        await Wait.UntilAsync(() => watcher.TryGetPod("shop", "b", out _) && !watcher.TryGetPod("shop", "a", out _), "state after 410");
        // Either the events arrived before the ERROR, or the re-list brought them; a 410 always re-lists.
        await Wait.UntilAsync(() => watcher.Lists == 2, "re-list after 410");
        Assert.Equal(1, watcher.Count);
    }

    [Fact]
    public async Task Restart_ServerDownThenUpWithOlderVersionsGone_RecoversAndRelists()
    {
        _server.AddPod(KubePodTemplate.Create("shop", "keep", Node));
        var watcher = StartWatcher();
        await SyncedAsync(watcher);
        await Wait.UntilAsync(() => _server.OpenWatches == 1, "watch open");

        await _server.StopAsync();
        await Wait.UntilAsync(() => watcher.State.StartsWith("error:", StringComparison.Ordinal), "error state while down");
        Assert.True(watcher.IsSynced); // cached data stays usable
        Assert.True(watcher.TryGetPod("shop", "keep", out _));
        _server.AddPod(KubePodTemplate.Create("shop", "while-down", Node));
        await _server.StartAgainAsync();

        await Wait.UntilAsync(() => watcher.TryGetPod("shop", "while-down", out _), "pod added while the server was down");
        await Wait.UntilAsync(() => watcher.State == "synced", "synced again");
        Assert.True(watcher.Lists >= 2);
        Assert.True(watcher.Errors >= 1);
    }

    [Fact]
    public async Task Restart_Http410OnWatch_Relists()
    {
        await _server.DisposeAsync();
        _server = await KubeApiTestServer.StartAsync(new KubeApiTestServerOptions { ExpiredWatchAsHttp410 = true });
        var watcher = StartWatcher();
        await SyncedAsync(watcher);
        await Wait.UntilAsync(() => _server.OpenWatches == 1, "watch open");
        _server.AddPod(KubePodTemplate.Create("shop", "x", Node));
        await Wait.UntilAsync(() => watcher.TryGetPod("shop", "x", out _), "pod x");
        _server.AddPod(KubePodTemplate.Create("shop", "unseen", "node-b"));
        await _server.RestartAsync();
        _server.AddPod(KubePodTemplate.Create("shop", "y", Node));
        await Wait.UntilAsync(() => watcher.TryGetPod("shop", "y", out _), "pod y after restart");
        Assert.True(watcher.TryGetPod("shop", "x", out _));
    }

    [Fact]
    public async Task Start_WrongToken_ReportsUnauthorizedAndNeverSyncs()
    {
        var watcher = StartWatcher(token: "wrong");
        await Wait.UntilAsync(() => watcher.State.StartsWith("error:", StringComparison.Ordinal), "error state");
        Assert.Contains("401", watcher.State);
        Assert.Contains("rejected", watcher.State);
        Assert.False(watcher.IsSynced);
        Assert.True(_server.UnauthorizedRequests >= 1);

        using var client = new KubeApiClient(new KubeClientConfig { Server = _server.BaseAddress, Token = "wrong" });
        var e = await Assert.ThrowsAsync<KubeApiException>(() => client.ListPodsAsync("spec.nodeName=" + Node, 10, null, CancellationToken.None));
        Assert.Equal(HttpStatusCode.Unauthorized, e.StatusCode);
        Assert.Equal("Unauthorized", e.ApiStatus?.Reason);
    }

    [Fact]
    public async Task Watch_TokenFileRotated_NewTokenUsedOnReconnect()
    {
        var dir = Directory.CreateTempSubdirectory("ebpf-token-").FullName;
        try
        {
            var tokenFile = Path.Combine(dir, "token");
            File.WriteAllText(tokenFile, _server.Token);
            var client = new KubeApiClient(new KubeClientConfig { Server = _server.BaseAddress, TokenFile = tokenFile },
                new KubeApiClientOptions { TokenRefreshInterval = TimeSpan.Zero });
            var watcher = new PodWatcher(client, Options());
            _disposables.Add(watcher);
            watcher.Start();
            await SyncedAsync(watcher);
            await Wait.UntilAsync(() => _server.OpenWatches == 1, "watch open");

            _server.Token = "rotated-token";
            File.WriteAllText(tokenFile, "rotated-token");
            _server.DropWatches();
            _server.AddPod(KubePodTemplate.Create("shop", "after-rotation", Node));
            await Wait.UntilAsync(() => watcher.TryGetPod("shop", "after-rotation", out _), "pod after token rotation");
            Assert.Equal(0, _server.UnauthorizedRequests);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public async Task Watch_HostileEvents_AreSkippedAndCountedWithoutLosingOthers()
    {
        var watcher = StartWatcher(Options(maxLine: 64 * 1024));
        await SyncedAsync(watcher);
        await Wait.UntilAsync(() => _server.OpenWatches == 1, "watch open");

        _server.InjectWatchText("{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"" + new string('x', 5 << 20) + "\"}}}\n");
        _server.InjectWatchText("this is not json\n");
        _server.InjectWatchText("{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":5,\"uid\":[1]}}}\n");
        _server.InjectWatchText("{\"type\":\"ADDED\",\"object\":{\"spec\":{\"containers\":\"nope\"},\"metadata\":{\"name\":\"p\",\"namespace\":\"n\",\"uid\":\"u\"}}}\n");
        _server.InjectWatchText("{\"type\":\"ADDED\",\"object\":\"a string\"}\n");
        _server.InjectWatchText("{\"type\":\"SOMETHING\",\"object\":{}}\n");
        _server.InjectWatchText("{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":7}}}\n");
        _server.InjectWatchText("[1,2,3]\n");
        _server.AddPod(KubePodTemplate.Create("shop", "good", Node));
        await Wait.UntilAsync(() => watcher.TryGetPod("shop", "good", out _), "good pod after hostile lines");
        Assert.Equal(1, watcher.OversizedLines);
        Assert.True(watcher.SkippedObjects >= 5, $"skipped {watcher.SkippedObjects}");
        Assert.Equal(1, watcher.Count);

        // A truncated object then a cut connection: dropped, the watch resumes.
        _server.InjectWatchText("{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"na", thenAbort: true);
        _server.AddPod(KubePodTemplate.Create("shop", "after-truncation", Node));
        await Wait.UntilAsync(() => watcher.TryGetPod("shop", "after-truncation", out _), "pod after truncated stream");
        Assert.Equal(2, watcher.Count);
        Assert.Equal(1, watcher.Lists);
    }

    [Fact]
    public async Task List_HostileBodies_RetriesAndKeepsGoodItems()
    {
        var good = KubePodTemplate.Create("shop", "good", Node);
        _server.AddPod(good);
        _server.OverrideNextListBody("{\"kind\":\"PodList\",\"items\":[{\"metadata\":"); // truncated
        var watcher = StartWatcher();
        // Synced completes only after a list was applied: the truncated one failed (counted), the retry succeeded.
        await SyncedAsync(watcher);
        Assert.True(watcher.Errors >= 1, $"errors {watcher.Errors}");
        Assert.Equal(2, _server.ListRequests);
        Assert.Equal(1, watcher.Lists);
        Assert.True(watcher.TryGetPod("shop", "good", out _));

        // A list whose items are partly malformed keeps the good ones. The 410 that forces the re-list must reach
        // an open watch: a watch still connecting starts at the current resourceVersion, which compaction keeps.
        await Wait.UntilAsync(() => _server.OpenWatches == 1, "watch open");
        var items = new JsonArray { good.DeepClone(), new JsonObject { ["metadata"] = new JsonObject { ["uid"] = 42 } }, "str" };
        var body = new JsonObject { ["kind"] = "PodList", ["metadata"] = new JsonObject { ["resourceVersion"] = _server.ResourceVersion.ToString() }, ["items"] = items };
        _server.OverrideNextListBody(body.ToJsonString());
        _server.ExpireResourceVersions(); // forces a re-list
        // Lists counts a list once it is in the cache, so the assertions below see the re-list's result.
        await Wait.UntilAsync(() => watcher.Lists >= 2, "re-list with malformed items");
        Assert.Equal(3, _server.ListRequests);
        Assert.True(watcher.TryGetPod("shop", "good", out _));
        Assert.Equal(1, watcher.Count);
        Assert.Equal(2, watcher.SkippedObjects);
    }

    [Fact]
    public async Task List_UnexpectedExceptionWhileApplying_CountedAndRetriedNotFatal()
    {
        _server.AddPod(KubePodTemplate.Create("shop", "good", Node));
        var client = new KubeApiClient(new KubeClientConfig { Server = _server.BaseAddress, Token = _server.Token });
        var watcher = new PodWatcher(client, Options());
        _disposables.Add(watcher);
        int calls = 0;
        // An exception type no list/watch step expects: it must be counted and retried, not end the loop.
        watcher.PodChanged += _ => { if (Interlocked.Increment(ref calls) == 1) throw new ArgumentException("handler bug"); };
        watcher.Start();
        await SyncedAsync(watcher);
        Assert.Equal(1, watcher.Errors);
        Assert.Equal(2, _server.ListRequests);
        _server.AddPod(KubePodTemplate.Create("shop", "later", Node));
        await Wait.UntilAsync(() => watcher.TryGetPod("shop", "later", out _), "watch still running after the failure");
    }

    [Fact]
    public async Task Watch_SilentConnection_ReopenedAfterIdleTimeout()
    {
        await _server.DisposeAsync();
        _server = await KubeApiTestServer.StartAsync(new KubeApiTestServerOptions { BookmarkInterval = TimeSpan.FromHours(1) });
        var options = Options();
        options.WatchIdleTimeout = TimeSpan.FromMilliseconds(300);
        var watcher = StartWatcher(options);
        await SyncedAsync(watcher);
        await Wait.UntilAsync(() => _server.WatchRequests >= 3, "watch reopened after silence");
        Assert.Equal(1, watcher.Lists);
        Assert.Equal(0, watcher.Errors);
        _server.AddPod(KubePodTemplate.Create("shop", "after-idle", Node));
        await Wait.UntilAsync(() => watcher.TryGetPod("shop", "after-idle", out _), "pod after idle reconnects");
    }

    [Fact]
    public async Task List_HugeBody_RejectedWithClearErrorThenRecovers()
    {
        string huge = "{\"kind\":\"PodList\",\"metadata\":{\"resourceVersion\":\"1\"},\"items\":[" + string.Join(",", Enumerable.Repeat("{}", 1 << 20)) + "]}";
        _server.AddPod(KubePodTemplate.Create("shop", "good", Node));
        var client = new KubeApiClient(new KubeClientConfig { Server = _server.BaseAddress, Token = _server.Token },
            new KubeApiClientOptions { MaxListResponseBytes = 1 << 20 });
        _server.OverrideNextListBody(huge);
        var e = await Assert.ThrowsAsync<KubeApiException>(() => client.ListPodsAsync(null, 10, null, CancellationToken.None));
        Assert.Contains("larger than 1048576 bytes", e.Message);

        _server.OverrideNextListBody(huge);
        var watcher = new PodWatcher(client, Options());
        _disposables.Add(watcher);
        watcher.Start();
        await SyncedAsync(watcher);
        Assert.Equal(1, watcher.Errors);
        Assert.True(watcher.TryGetPod("shop", "good", out _));
        Assert.Equal(3, _server.ListRequests);
    }

    [Fact]
    public async Task Start_Standalone_SyncedAtOnceAndEmpty()
    {
        await using var watcher = new PodWatcher(null, new PodWatcherOptions());
        watcher.Start();
        Assert.True(watcher.Synced.IsCompletedSuccessfully);
        Assert.Equal("standalone", watcher.State);
        Assert.False(watcher.TryGetPod("any", out _));
        Assert.False(watcher.TryGetContainer("any", out _, out _));
    }

    [Fact]
    public async Task Synced_TlsServerFromKubeconfigWithCaData_Syncs()
    {
        await _server.DisposeAsync();
        _server = await KubeApiTestServer.StartAsync(new KubeApiTestServerOptions { UseTls = true });
        _server.AddPod(KubePodTemplate.Create("shop", "tls", Node));
        var config = KubeClientConfig.ParseKubeconfig(_server.Kubeconfig(), ".");
        var watcher = StartWatcher(config: config);
        await SyncedAsync(watcher);
        Assert.True(watcher.TryGetPod("shop", "tls", out _));

        // Another CA: the server is not trusted.
        await using var other = await KubeApiTestServer.StartAsync(new KubeApiTestServerOptions { UseTls = true });
        var wrongCa = KubeClientConfig.ParseKubeconfig(other.Kubeconfig().Replace(other.Port.ToString(), _server.Port.ToString()), ".");
        using var client = new KubeApiClient(wrongCa);
        await Assert.ThrowsAsync<HttpRequestException>(() => client.ListPodsAsync(null, 1, null, CancellationToken.None));
    }

    [Fact]
    public void Options_MissingNodeName_Rejected()
    {
        using var client = new KubeApiClient(new KubeClientConfig { Server = _server.BaseAddress });
        Assert.Throws<ArgumentException>(() => new PodWatcher(client, new PodWatcherOptions()));
    }
}
