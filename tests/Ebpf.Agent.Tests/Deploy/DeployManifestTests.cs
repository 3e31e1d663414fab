using Ebpf.Testing;
using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace Ebpf.Agent.Tests.Deploy;

/// <summary>
/// Every manifest under deploy/ parses, has a known apiVersion/kind and the fields the API server requires,
/// and the DaemonSet carries what the agent needs on a node. No cluster here, so this is the check we can run.
/// </summary>
public sealed class DeployManifestTests
{
    private static readonly string DeployDir = Path.Combine(RepoPaths.Root, "deploy");

    // (apiVersion, kind) → paths that must be present (dot-separated; '[]' = every element of a sequence).
    private static readonly Dictionary<(string, string), string[]> Schema = new()
    {
        [("v1", "Namespace")] = ["metadata.name"],
        [("v1", "ServiceAccount")] = ["metadata.name", "metadata.namespace"],
        [("v1", "ConfigMap")] = ["metadata.name", "metadata.namespace", "data"],
        [("v1", "Service")] = ["metadata.name", "metadata.namespace", "spec.selector", "spec.ports[].port", "spec.ports[].targetPort"],
        [("v1", "Config")] = ["clusters[].cluster.server", "contexts[].context.cluster", "current-context"],
        [("rbac.authorization.k8s.io/v1", "ClusterRole")] = ["metadata.name", "rules[].verbs", "rules[].resources"],
        [("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")] = ["metadata.name", "roleRef.kind", "roleRef.name", "subjects[].name"],
        [("apps/v1", "DaemonSet")] = ["metadata.name", "metadata.namespace", "spec.selector.matchLabels", "spec.template.metadata.labels",
            "spec.template.spec.containers[].name", "spec.template.spec.containers[].image"],
        [("audit.k8s.io/v1", "Policy")] = ["rules[].level"],
        [("kustomize.config.k8s.io/v1beta1", "Kustomization")] = [],
    };

    public static TheoryData<string> ManifestFiles()
    {
        var data = new TheoryData<string>();
        foreach (string file in Directory.EnumerateFiles(DeployDir, "*.yaml", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
            data.Add(Path.GetRelativePath(DeployDir, file));
        return data;
    }

    private static List<YamlMappingNode> Documents(string relative)
    {
        var stream = new YamlStream();
        using (var reader = new StreamReader(Path.Combine(DeployDir, relative)))
            stream.Load(reader);
        return stream.Documents.Select(d => Assert.IsType<YamlMappingNode>(d.RootNode)).ToList();
    }

    [Theory]
    [MemberData(nameof(ManifestFiles))]
    public void Manifest_EveryDocument_KnownKindWithRequiredFields(string relative)
    {
        var documents = Documents(relative);
        Assert.NotEmpty(documents);
        foreach (var doc in documents)
        {
            string apiVersion = Scalar(doc, "apiVersion") ?? "";
            string kind = Scalar(doc, "kind") ?? "";
            Assert.True(Schema.TryGetValue((apiVersion, kind), out var required), $"{relative}: unknown apiVersion/kind '{apiVersion}' '{kind}'");
            foreach (string path in required!)
            {
                var missing = Missing(doc, path.Split('.'), "");
                Assert.True(missing is null, $"{relative} ({kind}): required field {missing} is missing");
            }
        }
    }

    [Fact]
    public void Kustomizations_ReferenceExistingFiles()
    {
        foreach (string file in Directory.EnumerateFiles(DeployDir, "kustomization.yaml", SearchOption.AllDirectories))
        {
            var doc = Documents(Path.GetRelativePath(DeployDir, file)).Single();
            if (doc.Children.TryGetValue(new YamlScalarNode("resources"), out var resources))
            {
                foreach (var item in ((YamlSequenceNode)resources).Children)
                {
                    string target = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(file)!, ((YamlScalarNode)item).Value!));
                    Assert.True(File.Exists(target) || File.Exists(Path.Combine(target, "kustomization.yaml")), $"{file}: resource {target} does not exist");
                }
            }
        }
    }

    [Fact]
    public void DaemonSet_HasWhatTheAgentNeedsOnANode()
    {
        var ds = Documents("base/daemonset.yaml").Single(d => Scalar(d, "kind") == "DaemonSet");
        var pod = Map(ds, "spec.template.spec");
        Assert.Equal("true", Scalar(pod, "hostPID"));
        var container = (YamlMappingNode)((YamlSequenceNode)Node(pod, "containers")).Children[0];
        var env = ((YamlSequenceNode)Node(container, "env")).Children.Cast<YamlMappingNode>();
        Assert.Contains(env, e => Scalar(e, "name") == "NODE_NAME" && Scalar(Map(e, "valueFrom.fieldRef"), "fieldPath") == "spec.nodeName");
        Assert.Equal("/healthz", Scalar(Map(container, "livenessProbe.httpGet"), "path"));
        Assert.Equal("/readyz", Scalar(Map(container, "readinessProbe.httpGet"), "path"));
        Assert.NotNull(Scalar(Map(container, "resources.limits"), "memory"));
        var mounts = ((YamlSequenceNode)Node(container, "volumeMounts")).Children.Cast<YamlMappingNode>().Select(m => Scalar(m, "mountPath")).ToHashSet();
        foreach (string needed in new[] { "/sys/kernel/btf", "/sys/fs/cgroup", "/sys/kernel/tracing", "/var/lib/ebpf-agent" })
            Assert.Contains(needed, mounts);
    }

    [Fact]
    public void DaemonSet_AuditForwarding_NamespaceTokenAndWebhookPortWhereTheConfigSaysSo()
    {
        var ds = Documents("base/daemonset.yaml").Single(d => Scalar(d, "kind") == "DaemonSet");
        var pod = Map(ds, "spec.template.spec");
        var container = (YamlMappingNode)((YamlSequenceNode)Node(pod, "containers")).Children[0];
        var env = ((YamlSequenceNode)Node(container, "env")).Children.Cast<YamlMappingNode>();
        Assert.Contains(env, e => Scalar(e, "name") == "POD_NAMESPACE" && Scalar(Map(e, "valueFrom.fieldRef"), "fieldPath") == "metadata.namespace");
        // Peers find each other's webhook by the container port name.
        var ports = ((YamlSequenceNode)Node(container, "ports")).Children.Cast<YamlMappingNode>();
        Assert.Contains(ports, p => Scalar(p, "name") == "webhook");
        // The configured token file lies in the mount of the (optional) forwarding Secret.
        var config = Documents("base/configmap.yaml").Single(d => Scalar(d, "kind") == "ConfigMap");
        var agentYaml = new YamlStream();
        agentYaml.Load(new StringReader(Scalar(Map(config, "data"), "agent.yaml")!));
        var forwarding = Map((YamlMappingNode)agentYaml.Documents[0].RootNode, "audit.forwarding");
        string tokenFile = Scalar(forwarding, "tokenFile")!;
        var mount = ((YamlSequenceNode)Node(container, "volumeMounts")).Children.Cast<YamlMappingNode>()
            .Single(m => tokenFile.StartsWith(Scalar(m, "mountPath") + "/", StringComparison.Ordinal));
        var volume = ((YamlSequenceNode)Node(pod, "volumes")).Children.Cast<YamlMappingNode>().Single(v => Scalar(v, "name") == Scalar(mount, "name"));
        Assert.Equal("ebpf-agent-forwarding-token", Scalar(Map(volume, "secret"), "secretName"));
        Assert.Equal("true", Scalar(Map(volume, "secret"), "optional"));
    }

    [Fact]
    public void ClusterRole_OnlyReadsPods()
    {
        var role = Documents("base/rbac.yaml").Single(d => Scalar(d, "kind") == "ClusterRole");
        var rule = Assert.Single(((YamlSequenceNode)Node(role, "rules")).Children.Cast<YamlMappingNode>());
        Assert.Equal(["pods"], ((YamlSequenceNode)Node(rule, "resources")).Children.Select(c => ((YamlScalarNode)c).Value));
        Assert.Equal(["get", "list", "watch"], ((YamlSequenceNode)Node(rule, "verbs")).Children.Select(c => ((YamlScalarNode)c).Value));
    }

    [Fact]
    public void Dockerfile_CopySourcesExist()
    {
        string dockerfile = File.ReadAllText(Path.Combine(RepoPaths.Root, "Dockerfile"));
        var copies = Regex.Matches(dockerfile, @"^COPY\s+(?!--from)(.+)$", RegexOptions.Multiline);
        Assert.NotEmpty(copies);
        foreach (Match copy in copies)
        {
            var parts = copy.Groups[1].Value.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            foreach (string source in parts[..^1])
                Assert.True(File.Exists(Path.Combine(RepoPaths.Root, source)) || Directory.Exists(Path.Combine(RepoPaths.Root, source)),
                    $"Dockerfile copies '{source}', which does not exist");
        }
    }

    private static string? Scalar(YamlMappingNode node, string key) =>
        node.Children.TryGetValue(new YamlScalarNode(key), out var value) ? (value as YamlScalarNode)?.Value : null;

    private static YamlMappingNode Map(YamlMappingNode node, string path) => (YamlMappingNode)Node(node, path);

    private static YamlNode Node(YamlMappingNode node, string path)
    {
        YamlNode current = node;
        foreach (string part in path.Split('.'))
            current = ((YamlMappingNode)current).Children[new YamlScalarNode(part)];
        return current;
    }

    /// <summary>The first missing path below <paramref name="node"/>, or null when all are present.</summary>
    private static string? Missing(YamlNode node, ReadOnlySpan<string> parts, string at)
    {
        if (parts.IsEmpty)
            return null;
        bool each = parts[0].EndsWith("[]", StringComparison.Ordinal);
        string key = each ? parts[0][..^2] : parts[0];
        string here = at.Length == 0 ? key : $"{at}.{key}";
        if (node is not YamlMappingNode map || !map.Children.TryGetValue(new YamlScalarNode(key), out var child))
            return here;
        if (!each)
            return Missing(child, parts[1..], here);
        if (child is not YamlSequenceNode seq || seq.Children.Count == 0)
            return here + "[]";
        for (int i = 0; i < seq.Children.Count; i++)
        {
            var missing = Missing(seq.Children[i], parts[1..], $"{here}[{i}]");
            if (missing is not null)
                return missing;
        }
        return null;
    }
}
