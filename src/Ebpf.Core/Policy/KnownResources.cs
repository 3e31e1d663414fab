namespace Ebpf.Core.Policy;

/// <summary>
/// Built-in Kubernetes API resources and their subresources by API group, as served by kube-apiserver
/// (`kubectl api-resources` plus the subresources registered in pkg/registry/*/rest storage), including
/// removed legacy resources that old policies still name (extensions, policy/podsecuritypolicies).
/// Used to catch misspelled resources in policies; CRDs and aggregated APIs are outside this table.
/// </summary>
public static class KnownResources
{
    private static readonly Dictionary<string, Dictionary<string, string[]>> Table = new(StringComparer.Ordinal)
    {
        [""] = new(StringComparer.Ordinal)
        {
            ["bindings"] = [],
            ["componentstatuses"] = [],
            ["configmaps"] = [],
            ["endpoints"] = [],
            ["events"] = [],
            ["limitranges"] = [],
            ["namespaces"] = ["status", "finalize"],
            ["nodes"] = ["status", "proxy"],
            ["persistentvolumeclaims"] = ["status"],
            ["persistentvolumes"] = ["status"],
            ["pods"] = ["attach", "binding", "ephemeralcontainers", "eviction", "exec", "log", "portforward", "proxy", "resize", "status"],
            ["podtemplates"] = [],
            ["replicationcontrollers"] = ["scale", "status"],
            ["resourcequotas"] = ["status"],
            ["secrets"] = [],
            ["serviceaccounts"] = ["token"],
            ["services"] = ["proxy", "status"],
        },
        ["admissionregistration.k8s.io"] = Plain("mutatingwebhookconfigurations", "validatingwebhookconfigurations", "validatingadmissionpolicybindings", "mutatingadmissionpolicies", "mutatingadmissionpolicybindings")
            .With("validatingadmissionpolicies", "status"),
        ["apiextensions.k8s.io"] = Plain().With("customresourcedefinitions", "status"),
        ["apiregistration.k8s.io"] = Plain().With("apiservices", "status"),
        ["apps"] = Plain("controllerrevisions")
            .With("daemonsets", "status").With("deployments", "scale", "status", "rollback").With("replicasets", "scale", "status").With("statefulsets", "scale", "status"),
        ["authentication.k8s.io"] = Plain("tokenreviews", "selfsubjectreviews"),
        ["authorization.k8s.io"] = Plain("localsubjectaccessreviews", "selfsubjectaccessreviews", "selfsubjectrulesreviews", "subjectaccessreviews"),
        ["autoscaling"] = Plain().With("horizontalpodautoscalers", "status"),
        ["batch"] = Plain().With("cronjobs", "status").With("jobs", "status"),
        ["certificates.k8s.io"] = Plain("clustertrustbundles").With("certificatesigningrequests", "approval", "status"),
        ["coordination.k8s.io"] = Plain("leases", "leasecandidates"),
        ["discovery.k8s.io"] = Plain("endpointslices"),
        ["events.k8s.io"] = Plain("events"),
        ["extensions"] = Plain("podsecuritypolicies", "networkpolicies")
            .With("daemonsets", "status").With("deployments", "scale", "status", "rollback").With("ingresses", "status")
            .With("replicasets", "scale", "status").With("replicationcontrollers", "scale"),
        ["flowcontrol.apiserver.k8s.io"] = Plain().With("flowschemas", "status").With("prioritylevelconfigurations", "status"),
        ["internal.apiserver.k8s.io"] = Plain().With("storageversions", "status"),
        ["metrics.k8s.io"] = Plain("nodes", "pods"),
        ["networking.k8s.io"] = Plain("ingressclasses", "ipaddresses").With("ingresses", "status").With("networkpolicies", "status").With("servicecidrs", "status"),
        ["node.k8s.io"] = Plain("runtimeclasses"),
        ["policy"] = Plain("podsecuritypolicies").With("poddisruptionbudgets", "status"),
        ["rbac.authorization.k8s.io"] = Plain("clusterrolebindings", "clusterroles", "rolebindings", "roles"),
        ["resource.k8s.io"] = Plain("deviceclasses", "resourceclaimtemplates", "resourceslices").With("resourceclaims", "status"),
        ["scheduling.k8s.io"] = Plain("priorityclasses"),
        ["storage.k8s.io"] = Plain("csidrivers", "csinodes", "csistoragecapacities", "storageclasses", "volumeattributesclasses").With("volumeattachments", "status"),
        ["storagemigration.k8s.io"] = Plain().With("storageversionmigrations", "status"),
    };

    private static Dictionary<string, string[]> Plain(params string[] resources) =>
        resources.ToDictionary(r => r, _ => Array.Empty<string>(), StringComparer.Ordinal);

    private static Dictionary<string, string[]> With(this Dictionary<string, string[]> d, string resource, params string[] subresources)
    {
        d[resource] = subresources;
        return d;
    }

    public static IEnumerable<string> Groups => Table.Keys;

    public static bool IsKnownGroup(string group) => Table.ContainsKey(group);

    public static IReadOnlyCollection<string> ResourcesOf(string group) =>
        Table.TryGetValue(group, out var r) ? r.Keys : Array.Empty<string>();

    public static bool IsKnownResource(string group, string resource) =>
        Table.TryGetValue(group, out var r) && r.ContainsKey(resource);

    public static IReadOnlyList<string> SubresourcesOf(string group, string resource) =>
        Table.TryGetValue(group, out var r) && r.TryGetValue(resource, out var s) ? s : [];

    /// <summary>Every subresource name served by any resource of <paramref name="group"/>.</summary>
    public static IReadOnlyCollection<string> AllSubresourcesOf(string group) =>
        Table.TryGetValue(group, out var r) ? r.Values.SelectMany(s => s).Distinct().ToArray() : [];

    /// <summary>Groups (other than <paramref name="exceptGroup"/>) that serve <paramref name="resource"/>.</summary>
    public static IReadOnlyList<string> GroupsServing(string resource, string exceptGroup) =>
        Table.Where(kv => kv.Key != exceptGroup && kv.Value.ContainsKey(resource)).Select(kv => kv.Key).ToArray();

    /// <summary>Verbs that appear in audit events: RequestInfo verbs for resource requests, lower-case HTTP methods otherwise.</summary>
    public static readonly IReadOnlySet<string> Verbs = new HashSet<string>(StringComparer.Ordinal)
    {
        "get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "proxy",
        "post", "put", "head", "options",
    };
}
