namespace Ebpf.Core.Policy;

/// <summary>
/// Decides the audit level of a request exactly as kube-apiserver does, following
/// k8s.io/apiserver/pkg/audit/policy/checker.go: <c>NewPolicyRuleEvaluator</c> (stage union),
/// <c>EvaluatePolicyRule</c> (first match wins, default None), <c>isOmitManagedFields</c>,
/// <c>ruleMatches</c>, <c>ruleMatchesResource</c>, <c>ruleMatchesNonResource</c> and <c>pathMatches</c>.
/// Thread-safe and allocation-free per evaluation.
/// </summary>
/// <remarks>
/// The level is returned exactly as the matching rule states it, also Request/RequestResponse for non-resource
/// requests: k8s.io/apiserver/pkg/endpoints/filters/audit.go (evaluatePolicyAndCreateAuditEvent) records that
/// level on the event unchanged; such requests simply never have a request/response object to log.
/// </remarks>
public sealed class AuditPolicyEvaluator
{
    private readonly CompiledRule[] _rules;
    private readonly AuditStageFlags _policyOmitStages;
    private readonly bool _policyOmitManagedFields;

    public AuditPolicyEvaluator(AuditPolicy policy)
    {
        Policy = policy;
        _policyOmitStages = policy.OmitStages;
        _policyOmitManagedFields = policy.OmitManagedFields;
        _rules = new CompiledRule[policy.Rules.Count];
        for (var i = 0; i < _rules.Length; i++)
            _rules[i] = new CompiledRule(policy.Rules[i], policy);
    }

    public AuditPolicy Policy { get; }

    /// <summary>Level, omitted stages, managed-fields omission and the deciding rule for <paramref name="request"/>.</summary>
    public PolicyDecision Evaluate(in PolicyRequest request)
    {
        var rules = _rules;
        for (var i = 0; i < rules.Length; i++)
        {
            var rule = rules[i];
            if (rule.Matches(request))
                return new PolicyDecision(rule.Level, rule.OmitStages, rule.OmitManagedFields, i);
        }
        // checker.go EvaluatePolicyRule: no rule matched -> DefaultAuditLevel (None) with the policy's own stages.
        return new PolicyDecision(AuditPolicyLevel.None, _policyOmitStages, _policyOmitManagedFields, -1);
    }

    /// <summary>True when rule <paramref name="ruleIndex"/> alone matches <paramref name="request"/> (ignoring earlier rules).</summary>
    public bool RuleMatches(int ruleIndex, in PolicyRequest request) => _rules[ruleIndex].Matches(request);

    private sealed class CompiledRule
    {
        public readonly AuditPolicyLevel Level;
        public readonly AuditStageFlags OmitStages;
        public readonly bool OmitManagedFields;
        private readonly string[] _users;
        private readonly string[] _userGroups;
        private readonly string[] _verbs;
        private readonly string[] _namespaces;
        private readonly string[] _urls;
        private readonly CompiledGroupResources[] _resources;
        private readonly bool _resourceBranch;

        public CompiledRule(AuditPolicyRule rule, AuditPolicy policy)
        {
            Level = rule.Level;
            // checker.go NewPolicyRuleEvaluator: each rule's omitStages becomes policy ∪ rule.
            OmitStages = policy.OmitStages | rule.OmitStages;
            // checker.go isOmitManagedFields: the rule's setting, when present, overrides the policy default.
            OmitManagedFields = rule.OmitManagedFields ?? policy.OmitManagedFields;
            _users = rule.Users.ToArray();
            _userGroups = rule.UserGroups.ToArray();
            _verbs = rule.Verbs.ToArray();
            _namespaces = rule.Namespaces.ToArray();
            _urls = rule.NonResourceUrls.ToArray();
            _resources = rule.Resources.Select(gr => new CompiledGroupResources(gr)).ToArray();
            _resourceBranch = _namespaces.Length > 0 || _resources.Length > 0;
        }

        // checker.go ruleMatches.
        public bool Matches(in PolicyRequest r)
        {
            if (_users.Length > 0)
            {
                if (r.User is null || !Has(_users, r.User))
                    return false;
            }
            if (_userGroups.Length > 0)
            {
                var groups = r.Groups;
                if (r.User is null || groups is null)
                    return false;
                var matched = false;
                for (var i = 0; i < groups.Count; i++)
                {
                    if (Has(_userGroups, groups[i]))
                    {
                        matched = true;
                        break;
                    }
                }
                if (!matched)
                    return false;
            }
            if (_verbs.Length > 0 && !Has(_verbs, r.Verb ?? ""))
                return false;

            // Namespaces or resources present: the resource branch decides alone, even if nonResourceURLs
            // is also set (validation forbids that combination, but the checker's order is what counts).
            if (_resourceBranch)
                return MatchesResource(r);
            if (_urls.Length > 0)
                return MatchesNonResource(r);
            return true;
        }

        // checker.go ruleMatchesNonResource + pathMatches.
        private bool MatchesNonResource(in PolicyRequest r)
        {
            if (r.IsResourceRequest)
                return false;
            var path = r.Path ?? "";
            foreach (var spec in _urls)
            {
                if (spec == "*" || string.Equals(spec, path, StringComparison.Ordinal))
                    return true;
                // A trailing '*' is a prefix match; TrimRight removes every trailing '*'.
                if (spec.Length > 0 && spec[^1] == '*' && path.AsSpan().StartsWith(spec.AsSpan().TrimEnd('*'), StringComparison.Ordinal))
                    return true;
            }
            return false;
        }

        // checker.go ruleMatchesResource.
        private bool MatchesResource(in PolicyRequest r)
        {
            if (!r.IsResourceRequest)
                return false;
            // Cluster-scoped requests carry namespace "", which a rule selects by listing "".
            if (_namespaces.Length > 0 && !Has(_namespaces, r.Namespace ?? ""))
                return false;
            if (_resources.Length == 0)
                return true;

            var apiGroup = r.ApiGroup ?? "";
            var resource = r.Resource ?? "";
            var subresource = r.Subresource ?? "";
            var name = r.Name ?? "";
            foreach (var gr in _resources)
            {
                if (!string.Equals(gr.Group, apiGroup, StringComparison.Ordinal))
                    continue;
                if (gr.Resources.Length == 0)
                    return true;
                // resourceNames filters by exact name; a request without a name ("") matches only if "" is listed.
                if (gr.ResourceNames.Length > 0 && !Has(gr.ResourceNames, name))
                    continue;
                foreach (var res in gr.Resources)
                {
                    if (res == "*" || IsCombined(res, resource, subresource))
                        return true;
                    // "*/subresource": that subresource of any resource.
                    if (subresource.Length > 0 && res.Length > 2 && res[0] == '*' && res[1] == '/' &&
                        res.AsSpan(2).SequenceEqual(subresource))
                        return true;
                    // "resource/*": upstream compares only the resource part, so "pods/*" also matches
                    // plain "pods" requests, not only its subresources.
                    if (res.Length >= 2 && res[^1] == '*' && res[^2] == '/' &&
                        res.AsSpan(0, res.Length - 2).SequenceEqual(resource))
                        return true;
                }
            }
            return false;
        }

        // res == resource or res == resource + "/" + subresource, without building the combined string.
        private static bool IsCombined(string res, string resource, string subresource)
        {
            if (subresource.Length == 0)
                return string.Equals(res, resource, StringComparison.Ordinal);
            return res.Length == resource.Length + 1 + subresource.Length &&
                   res.AsSpan().StartsWith(resource) &&
                   res[resource.Length] == '/' &&
                   res.AsSpan(resource.Length + 1).SequenceEqual(subresource);
        }

        private static bool Has(string[] values, string value)
        {
            foreach (var v in values)
            {
                if (string.Equals(v, value, StringComparison.Ordinal))
                    return true;
            }
            return false;
        }
    }

    private sealed class CompiledGroupResources(AuditPolicyGroupResources gr)
    {
        public readonly string Group = gr.Group;
        public readonly string[] Resources = gr.Resources.ToArray();
        public readonly string[] ResourceNames = gr.ResourceNames.ToArray();
    }
}
