using Ebpf.Core.Identity;
using Ebpf.Core.Processes;
using Ebpf.Events;
using Ebpf.Kubernetes.Api;
using Ebpf.Kubernetes.Cgroups;
using Ebpf.Kubernetes.Processes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ebpf.Kubernetes;

/// <summary>Options for <see cref="NodeIdentity"/>.</summary>
public sealed class NodeIdentityOptions
{
    /// <summary>This node's name; required unless <see cref="Standalone"/>.</summary>
    public string NodeName { get; set; } = "";

    /// <summary>No API server: identities carry what cgroup paths say (pod UID, container id, QoS), no names. Defaults to false.</summary>
    public bool Standalone { get; set; }

    /// <summary>A kubeconfig to use. Defaults to null: in-cluster configuration, or standalone when there is none.</summary>
    public string? Kubeconfig { get; set; }

    /// <summary>Scan /proc at start to seed the process table. Defaults to true.</summary>
    public bool ScanProc { get; set; } = true;

    /// <summary>/proc to scan. Defaults to /proc.</summary>
    public string ProcRoot { get; set; } = "/proc";

    public CgroupHierarchyOptions Cgroups { get; set; } = new();
    public KubeApiClientOptions Api { get; set; } = new();
    /// <summary>Watch options; <see cref="PodWatcherOptions.NodeName"/> is taken from <see cref="NodeName"/>.</summary>
    public PodWatcherOptions Pods { get; set; } = new();
    public ProcessTableOptions Processes { get; set; } = new();
}

/// <summary>
/// The identity stage of the agent in one object: cgroup hierarchy, pod watcher (or standalone), resolver and
/// process table, wired together. Feed every node event to <see cref="Observe"/> in order from one thread;
/// lookups are safe from any thread.
/// </summary>
public sealed class NodeIdentity : IAsyncDisposable
{
    private NodeIdentity(CgroupHierarchy cgroups, PodWatcher pods, PodIdentityResolver resolver, ProcessTable processes)
    {
        Cgroups = cgroups;
        Pods = pods;
        Resolver = resolver;
        Processes = processes;
    }

    public CgroupHierarchy Cgroups { get; }
    public PodWatcher Pods { get; }
    public PodIdentityResolver Resolver { get; }
    public ProcessTable Processes { get; }

    /// <summary>Pod metadata state: syncing | synced | standalone | error: ...</summary>
    public string State => Pods.State;

    /// <summary>
    /// Picks the API configuration: an explicit kubeconfig, else in-cluster, else null (standalone).
    /// Throws <see cref="KubeConfigException"/> when an explicit kubeconfig is unusable.
    /// </summary>
    public static KubeClientConfig? DiscoverApi(string? kubeconfig, bool standalone)
    {
        if (standalone) return null;
        if (!string.IsNullOrEmpty(kubeconfig)) return KubeClientConfig.FromKubeconfig(kubeconfig);
        return KubeClientConfig.IsInCluster() ? KubeClientConfig.InCluster() : null;
    }

    /// <summary>Walks the cgroup hierarchy, seeds processes from /proc and starts the pod watcher (never waits for it).</summary>
    public static NodeIdentity Start(NodeIdentityOptions options, TimeProvider? time = null, ILoggerFactory? loggers = null,
        KubeClientConfig? api = null)
    {
        loggers ??= NullLoggerFactory.Instance;
        api ??= DiscoverApi(options.Kubeconfig, options.Standalone);
        var cgroups = new CgroupHierarchy(options.Cgroups, time, loggers.CreateLogger<CgroupHierarchy>());
        cgroups.Scan();
        options.Pods.NodeName = options.NodeName;
        var client = api is null ? null : new KubeApiClient(api, options.Api, time);
        var pods = new PodWatcher(client, options.Pods, time, loggers.CreateLogger<PodWatcher>());
        var resolver = new PodIdentityResolver(cgroups, pods);
        var processes = new ProcessTable(options.Processes, time, id => resolver.Resolve(id).Container?.ContainerId);
        if (options.ScanProc)
            processes.Seed(new ProcScanner(options.ProcRoot, cgroups.MountPoint, loggers.CreateLogger<ProcScanner>()).Scan());
        pods.Start();
        return new NodeIdentity(cgroups, pods, resolver, processes);
    }

    /// <summary>Applies a record to the cgroup map and the process table; returns the identity of the record's cgroup.</summary>
    public WorkloadIdentity Observe(NodeEvent record)
    {
        if (record is CgroupEvent cgroupEvent) Cgroups.Apply(cgroupEvent);
        else Processes.Apply(record);
        return Resolver.Resolve(record.CgroupId);
    }

    public async ValueTask DisposeAsync()
    {
        Resolver.Dispose();
        await Pods.DisposeAsync().ConfigureAwait(false);
    }
}
