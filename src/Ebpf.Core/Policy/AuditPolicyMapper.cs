using System.Text.RegularExpressions;
using static Ebpf.Core.Policy.AuditPolicyLoader;

namespace Ebpf.Core.Policy;

/// <summary>Turns the YAML tree into an <see cref="AuditPolicy"/>, collecting every problem with its position.</summary>
internal sealed partial class PolicyMapper(AuditPolicyLoaderOptions options)
{
    private readonly List<AuditPolicyError> _errors = [];

    // The message kube-apiserver >= 1.24 prints for a removed version: the strict decoder in
    // k8s.io/apiserver/pkg/audit/policy/reader.go (LoadPolicyFromBytes) only has audit.k8s.io/v1
    // registered in k8s.io/apiserver/pkg/audit/scheme.go, so decoding fails before validation.
    // v1alpha1/v1beta1 were removed by kubernetes/kubernetes#108092.
    internal static string RemovedVersionMessage(string apiVersion) =>
        $"failed decoding: no kind \"Policy\" is registered for version \"{apiVersion}\" in scheme \"k8s.io/apiserver/pkg/audit/scheme.go:30\"" +
        $" — kube-apiserver 1.24 and later reject {apiVersion} (removed by kubernetes/kubernetes#108092)";

    private static readonly HashSet<string> PolicyFields = ["apiVersion", "kind", "metadata", "rules", "omitStages", "omitManagedFields"];
    private static readonly HashSet<string> RuleFields = ["level", "users", "userGroups", "verbs", "resources", "namespaces", "nonResourceURLs", "omitStages", "omitManagedFields"];
    private static readonly HashSet<string> GroupResourceFields = ["group", "resources", "resourceNames"];

    public AuditPolicy Map(YNode root)
    {
        if (root is not YMapping map)
            throw new AuditPolicyException(new AuditPolicyError(root.Line, root.Column, "", "a policy must be a YAML mapping with apiVersion, kind and rules",
                "start the file with 'apiVersion: audit.k8s.io/v1' and 'kind: Policy'"));

        var apiVersion = Get(map, "apiVersion");
        var kind = Get(map, "kind");
        if (apiVersion is null || apiVersion is YScalar { IsNull: true })
        {
            throw new AuditPolicyException(new AuditPolicyError(map.Line, map.Column, "apiVersion",
                "failed decoding: Object 'apiVersion' is missing", $"add 'apiVersion: {ApiVersionV1}'"));
        }
        if (apiVersion is not YScalar version)
            throw new AuditPolicyException(Err(apiVersion, "apiVersion", "must be a string", $"use 'apiVersion: {ApiVersionV1}'"));
        if (version.Value != ApiVersionV1)
        {
            var fix = $"change apiVersion to {ApiVersionV1}; the Policy fields are the same, so nothing else needs to change";
            var message = version.Value is "audit.k8s.io/v1beta1" or "audit.k8s.io/v1alpha1"
                ? RemovedVersionMessage(version.Value)
                : $"failed decoding: no kind \"Policy\" is registered for version \"{version.Value}\" (the only supported version is {ApiVersionV1})";
            throw new AuditPolicyException(Err(version, "apiVersion", message, fix));
        }
        if (kind is null || kind is YScalar { IsNull: true })
            throw new AuditPolicyException(new AuditPolicyError(map.Line, map.Column, "kind", "failed decoding: Object 'Kind' is missing", "add 'kind: Policy'"));
        if (kind is not YScalar { Value: "Policy" })
            throw new AuditPolicyException(Err(kind, "kind", $"kind must be Policy, not '{(kind as YScalar)?.Value ?? "(not a string)"}'", "set 'kind: Policy'"));

        CheckFields(map, "", PolicyFields);
        if (Get(map, "metadata") is { } metadata && metadata is not YMapping && !(metadata is YScalar { IsNull: true }))
            _errors.Add(Err(metadata, "metadata", "metadata must be a mapping"));

        var omitStages = Stages(Get(map, "omitStages"), "omitStages");
        var omitManagedFields = Bool(Get(map, "omitManagedFields"), "omitManagedFields") ?? false;

        var rules = new List<AuditPolicyRule>();
        var rulesNode = Get(map, "rules");
        if (rulesNode is YSequence seq)
        {
            if (seq.Items.Count > options.MaxRules)
                throw new AuditPolicyException(Err(seq, "rules", $"the policy has {seq.Items.Count} rules, more than the {options.MaxRules} limit"));
            for (var i = 0; i < seq.Items.Count; i++)
                rules.Add(Rule(seq.Items[i], i));
        }
        else if (rulesNode is not null && rulesNode is not YScalar { IsNull: true })
        {
            _errors.Add(Err(rulesNode, "rules", "rules must be a list", "write rules as a YAML list: 'rules:' then '- level: Metadata'"));
        }

        if (_errors.Count == 0 && rules.Count == 0)
        {
            // reader.go LoadPolicyFromBytes: "loaded illegal policy with 0 rules".
            _errors.Add(new AuditPolicyError(map.Line, map.Column, "rules", "loaded illegal policy with 0 rules",
                "add at least one rule, e.g. '- level: Metadata' as a catch-all"));
        }
        if (_errors.Count > 0)
            throw new AuditPolicyException(_errors);

        return new AuditPolicy { Rules = rules, OmitStages = omitStages, OmitManagedFields = omitManagedFields };
    }

    private AuditPolicyRule Rule(YNode node, int index)
    {
        var path = $"rules[{index}]";
        if (node is not YMapping map)
        {
            _errors.Add(Err(node, path, "a rule must be a mapping", "write the rule as '- level: Metadata' followed by its fields"));
            return new AuditPolicyRule { Index = index, Line = node.Line };
        }
        CheckFields(map, path, RuleFields);

        var level = AuditPolicyLevel.None;
        var levelNode = Get(map, "level");
        if (levelNode is null || levelNode is YScalar { IsNull: true } || levelNode is YScalar { Value: "" })
        {
            // validation.go validateLevel: an empty level is "Required value".
            _errors.Add(Err(levelNode ?? map, path + ".level", "Required value: every rule needs a level",
                "add 'level: None', 'level: Metadata', 'level: Request' or 'level: RequestResponse'"));
        }
        else if (levelNode is not YScalar levelScalar || !AuditPolicyNames.TryParseLevel(levelScalar.Value, out level))
        {
            var given = (levelNode as YScalar)?.Value ?? "(not a string)";
            _errors.Add(Err(levelNode, path + ".level",
                $"Unsupported value: \"{given}\": supported values: \"None\", \"Metadata\", \"Request\", \"RequestResponse\"",
                Suggest(given, ["None", "Metadata", "Request", "RequestResponse"]) is { } s ? $"use '{s}' (levels are case-sensitive)" : "use one of None, Metadata, Request, RequestResponse"));
        }

        var users = Strings(Get(map, "users"), path + ".users");
        var userGroups = Strings(Get(map, "userGroups"), path + ".userGroups");
        var verbs = Strings(Get(map, "verbs"), path + ".verbs");
        var namespaces = Strings(Get(map, "namespaces"), path + ".namespaces");
        var urls = Strings(Get(map, "nonResourceURLs"), path + ".nonResourceURLs");
        var resources = GroupResources(Get(map, "resources"), path + ".resources");
        var omitStages = Stages(Get(map, "omitStages"), path + ".omitStages");
        var omitManagedFields = Bool(Get(map, "omitManagedFields"), path + ".omitManagedFields");

        // validation.go validateNonResourceURLs.
        var urlNode = Get(map, "nonResourceURLs") as YSequence;
        for (var i = 0; i < urls.Length; i++)
        {
            var url = urls[i];
            var at = (YNode?)urlNode?.Items.ElementAtOrDefault(i) ?? map;
            if (url == "*")
                continue;
            if (!url.StartsWith('/'))
                _errors.Add(Err(at, $"{path}.nonResourceURLs[{i}]", $"Invalid value: \"{url}\": non-resource URL rules must begin with a '/' character", $"use '/{url.TrimStart('*')}'"));
            if (url.Length > 0 && url.AsSpan(0, url.Length - 1).Contains('*'))
                _errors.Add(Err(at, $"{path}.nonResourceURLs[{i}]", $"Invalid value: \"{url}\": non-resource URL wildcards '*' must be the final character of the rule", "only a trailing '*' is a wildcard, e.g. '/apis/*'"));
        }
        // validation.go validatePolicyRule: resource and non-resource selectors cannot be mixed.
        if (urls.Length > 0 && (resources.Length > 0 || namespaces.Length > 0))
        {
            _errors.Add(Err(Get(map, "nonResourceURLs")!, path + ".nonResourceURLs",
                "Invalid value: rules cannot apply to both regular resources and non-resource URLs", "split this rule into one rule with resources/namespaces and one with nonResourceURLs"));
        }

        return new AuditPolicyRule
        {
            Index = index,
            Line = map.Line,
            Level = level,
            Users = users,
            UserGroups = userGroups,
            Verbs = verbs,
            Namespaces = namespaces,
            NonResourceUrls = urls,
            Resources = resources,
            OmitStages = omitStages,
            OmitManagedFields = omitManagedFields,
        };
    }

    private AuditPolicyGroupResources[] GroupResources(YNode? node, string path)
    {
        if (node is null || node is YScalar { IsNull: true })
            return [];
        if (node is not YSequence seq)
        {
            _errors.Add(Err(node, path, "resources must be a list of {group, resources, resourceNames}", "write '- group: \"\"' then 'resources: [\"pods\"]'"));
            return [];
        }
        var result = new List<AuditPolicyGroupResources>(seq.Items.Count);
        for (var i = 0; i < seq.Items.Count; i++)
        {
            var itemPath = $"{path}[{i}]";
            if (seq.Items[i] is not YMapping map)
            {
                _errors.Add(Err(seq.Items[i], itemPath, "each resources entry must be a mapping with group and resources", "write '- group: \"\"' then 'resources: [\"pods\"]'"));
                continue;
            }
            CheckFields(map, itemPath, GroupResourceFields);
            var group = "";
            var groupNode = Get(map, "group");
            if (groupNode is YScalar gs && !gs.IsNull)
                group = gs.Value;
            else if (groupNode is not null && groupNode is not YScalar)
                _errors.Add(Err(groupNode, itemPath + ".group", "group must be a string"));
            var resources = Strings(Get(map, "resources"), itemPath + ".resources");
            var names = Strings(Get(map, "resourceNames"), itemPath + ".resourceNames");

            // validation.go validateResources: a non-empty group must be a DNS-1123 subdomain.
            if (group.Length > 0 && !IsDnsSubdomain(group))
            {
                var fix = group.Contains('/')
                    ? $"drop the version: use 'group: \"{group[..group.IndexOf('/')]}\"' (a policy names groups, not group/versions)"
                    : "use the lower-case API group name, e.g. 'apps' or 'rbac.authorization.k8s.io'";
                _errors.Add(Err(groupNode!, itemPath + ".group",
                    $"Invalid value: \"{group}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character", fix));
            }
            if (names.Length > 0 && resources.Length == 0)
            {
                _errors.Add(Err(map, itemPath + ".resourceNames", "Invalid value: using resourceNames requires at least one resource", "add 'resources: [...]' naming the resource the names belong to"));
            }
            result.Add(new AuditPolicyGroupResources { Group = group, Resources = resources, ResourceNames = names });
        }
        return result.ToArray();
    }

    private string[] Strings(YNode? node, string path)
    {
        if (node is null || node is YScalar { IsNull: true })
            return [];
        if (node is not YSequence seq)
        {
            var hint = node is YScalar s ? $"write it as a list: [\"{s.Value}\"]" : "write it as a list of strings";
            _errors.Add(Err(node, path, "must be a list of strings", hint));
            return [];
        }
        var result = new string[seq.Items.Count];
        for (var i = 0; i < seq.Items.Count; i++)
        {
            if (seq.Items[i] is YScalar item)
                result[i] = item.IsNull ? "" : item.Value;
            else
                _errors.Add(Err(seq.Items[i], $"{path}[{i}]", "must be a string"));
            result[i] ??= "";
        }
        return result;
    }

    private AuditStageFlags Stages(YNode? node, string path)
    {
        var names = Strings(node, path);
        var stages = AuditStageFlags.None;
        var seq = node as YSequence;
        for (var i = 0; i < names.Length; i++)
        {
            if (AuditPolicyNames.TryParse(names[i], out var stage))
            {
                stages |= stage;
                continue;
            }
            // validation.go validateOmitStages.
            var suggestion = Suggest(names[i], AuditPolicyNames.All.Select(a => a.Name).ToArray());
            _errors.Add(Err(seq?.Items[i] ?? node!, $"{path}[{i}]",
                $"Invalid value: \"{names[i]}\": allowed stages are RequestReceived,ResponseStarted,ResponseComplete,Panic",
                suggestion is null ? null : $"use '{suggestion}' (stages are case-sensitive)"));
        }
        return stages;
    }

    private bool? Bool(YNode? node, string path)
    {
        if (node is null || node is YScalar { IsNull: true })
            return null;
        if (node is YScalar { Style: YamlDotNet.Core.ScalarStyle.Plain or YamlDotNet.Core.ScalarStyle.Any } s)
        {
            switch (s.Value)
            {
                case "true" or "True" or "TRUE": return true;
                case "false" or "False" or "FALSE": return false;
            }
        }
        _errors.Add(Err(node, path, $"must be true or false, not {Describe(node)}", "write 'true' or 'false' without quotes"));
        return null;
    }

    private void CheckFields(YMapping map, string path, HashSet<string> known)
    {
        foreach (var (key, _) in map.Entries)
        {
            if (known.Contains(key.Value))
                continue;
            var suggestion = Suggest(key.Value, known.ToArray());
            var prefix = path.Length == 0 ? "" : path + ".";
            _errors.Add(new AuditPolicyError(key.Line, key.Column, prefix + key.Value,
                $"unknown field \"{key.Value}\"",
                suggestion is null ? $"remove it; known fields here: {string.Join(", ", known)}" : $"did you mean '{suggestion}'?"));
        }
    }

    private static YNode? Get(YMapping map, string key)
    {
        foreach (var (k, v) in map.Entries)
        {
            if (k.Value == key)
                return v;
        }
        return null;
    }

    private static string Describe(YNode node) => node switch
    {
        YScalar s => $"\"{s.Value}\"",
        YSequence => "a list",
        _ => "a mapping",
    };

    private static AuditPolicyError Err(YNode node, string path, string message, string? fix = null) =>
        new(node.Line, node.Column, path, message, fix);

    internal static bool IsDnsSubdomain(string value) => value.Length <= 253 && DnsSubdomain().IsMatch(value);

    [GeneratedRegex(@"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", RegexOptions.CultureInvariant)]
    private static partial Regex DnsSubdomain();

    /// <summary>The closest candidate by edit distance (case-insensitive), when it is close enough to be a typo.</summary>
    internal static string? Suggest(string given, IReadOnlyCollection<string> candidates)
    {
        string? best = null;
        var bestDistance = int.MaxValue;
        foreach (var c in candidates)
        {
            var d = EditDistance.Compute(given.ToLowerInvariant(), c.ToLowerInvariant());
            if (d < bestDistance)
            {
                bestDistance = d;
                best = c;
            }
        }
        return best is not null && bestDistance <= Math.Max(2, given.Length / 3) && !string.Equals(best, given, StringComparison.Ordinal) ? best : null;
    }
}

/// <summary>Levenshtein distance, bounded to short identifiers.</summary>
internal static class EditDistance
{
    public static int Compute(string a, string b)
    {
        if (a.Length > 256 || b.Length > 256)
            return int.MaxValue;
        var prev = new int[b.Length + 1];
        var cur = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++)
            prev[j] = j;
        for (var i = 1; i <= a.Length; i++)
        {
            cur[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                cur[j] = Math.Min(Math.Min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + cost);
            }
            (prev, cur) = (cur, prev);
        }
        return prev[b.Length];
    }
}
