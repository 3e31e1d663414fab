namespace Ebpf.Core.Policy;

public enum PolicyFindingSeverity
{
    Info = 0,
    Warning = 1,
    Error = 2,
}

/// <summary>One lint finding: how bad, which rule (null for the whole policy), what is wrong and the concrete fix.</summary>
public sealed record PolicyFinding(PolicyFindingSeverity Severity, string Code, int? RuleIndex, string Message, string Fix);

/// <summary>Stable codes of <see cref="PolicyFinding"/>s, for filtering and tests.</summary>
public static class PolicyFindingCodes
{
    public const string NoCatchAll = "no-catch-all";
    public const string SecretPayload = "secret-payload";
    public const string RequestReceivedNotOmitted = "request-received-not-omitted";
    public const string CorrelationNotCaptured = "correlation-not-captured";
    public const string CorrelationStageOmitted = "correlation-stage-omitted";
    public const string ServiceAccountNotCaptured = "service-account-not-captured";
    public const string ShadowedRule = "shadowed-rule";
    public const string UnknownVerb = "unknown-verb";
    public const string UnknownResource = "unknown-resource";
    public const string UnknownSubresource = "unknown-subresource";
    public const string UnknownGroup = "unknown-group";
}

/// <summary>
/// Checks an audit policy for what matters to ExecTrace: secret material written to the log, the requests
/// correlation depends on not being captured, wasted volume, dead rules and typos. Capture checks run
/// synthetic requests through <see cref="AuditPolicyEvaluator"/>, so they see exactly what the API server would.
/// </summary>
public static class PolicyLinter
{
    private static readonly (string User, string[] Groups)[] Identities =
    [
        ("alice@example.com", ["system:authenticated"]),
        ("kubernetes-admin", ["kubeadm:cluster-admins", "system:masters", "system:authenticated"]),
        ("system:serviceaccount:default:app", ["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"]),
        ("system:serviceaccount:kube-system:deployment-controller", ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]),
        ("system:node:node-1", ["system:nodes", "system:authenticated"]),
        ("system:kube-controller-manager", ["system:authenticated"]),
    ];

    private static readonly string[] Namespaces = ["default", "kube-system", "prod"];
    private static readonly string[] WriteVerbs = ["create", "update", "patch"];
    private static readonly string[] ReadVerbs = ["get", "list", "watch", "delete"];

    public static IReadOnlyList<PolicyFinding> Lint(AuditPolicy policy)
    {
        var evaluator = new AuditPolicyEvaluator(policy);
        var findings = new List<PolicyFinding>();
        CheckCatchAll(policy, evaluator, findings);
        CheckSecretPayloads(evaluator, findings);
        CheckCorrelationCapture(evaluator, findings);
        CheckServiceAccountCapture(evaluator, findings);
        CheckRequestReceived(policy, findings);
        CheckShadowedRules(policy, findings);
        CheckVerbs(policy, findings);
        CheckResources(policy, findings);
        return findings
            .OrderByDescending(f => f.Severity)
            .ThenBy(f => f.RuleIndex ?? -1)
            .ToArray();
    }

    private static void CheckCatchAll(AuditPolicy policy, AuditPolicyEvaluator evaluator, List<PolicyFinding> findings)
    {
        // A rule with no selectors matches everything (checker.go ruleMatches returns true).
        var hasCatchAll = policy.Rules.Any(r => r.Users.Count == 0 && r.UserGroups.Count == 0 && r.Verbs.Count == 0 &&
            r.Resources.Count == 0 && r.Namespaces.Count == 0 && r.NonResourceUrls.Count == 0);
        if (hasCatchAll)
            return;
        var unusual = new PolicyRequest
        {
            User = "mallory", Groups = ["system:authenticated"], Verb = "create", IsResourceRequest = true,
            ApiGroup = "example.attacker.io", ApiVersion = "v1", Resource = "widgets", Namespace = "default", Name = "w",
        };
        var decision = evaluator.Evaluate(unusual);
        if (decision.Matched)
            return;
        findings.Add(new PolicyFinding(PolicyFindingSeverity.Warning, PolicyFindingCodes.NoCatchAll, null,
            "no catch-all rule: requests no rule matches (new API groups, CRDs, unexpected users) are not audited at all (default level None)",
            "end the rules with '- level: Metadata' (no selectors) so anything unforeseen is still recorded"));
    }

    private sealed record Probe(string Group, string Resource, string Subresource, string Verb, AuditPolicyLevel LeaksAt, string What);

    private static IEnumerable<Probe> SecretProbes()
    {
        foreach (var resource in new[] { "secrets", "configmaps" })
        {
            // A write carries the data in the request body (logged from Request up); reads return it in the
            // response body (logged only at RequestResponse).
            foreach (var verb in WriteVerbs)
                yield return new Probe("", resource, "", verb, AuditPolicyLevel.Request, $"{resource} data in the request body");
            foreach (var verb in ReadVerbs)
                yield return new Probe("", resource, "", verb, AuditPolicyLevel.RequestResponse, $"{resource} data in the response body");
        }
        // TokenReview.spec.token is the bearer token being reviewed.
        yield return new Probe("authentication.k8s.io", "tokenreviews", "", "create", AuditPolicyLevel.Request, "bearer tokens in TokenReview requests");
        // TokenRequest.status.token is a freshly minted service-account token.
        yield return new Probe("", "serviceaccounts", "token", "create", AuditPolicyLevel.RequestResponse, "minted service-account tokens in TokenRequest responses");
    }

    private static void CheckSecretPayloads(AuditPolicyEvaluator evaluator, List<PolicyFinding> findings)
    {
        var reported = new HashSet<(int, string)>();
        foreach (var probe in SecretProbes())
        {
            foreach (var (user, groups) in Identities)
            {
                foreach (var ns in Namespaces)
                {
                    var request = ResourceRequest(user, groups, probe.Verb, probe.Group, probe.Resource, probe.Subresource, probe.Group == "authentication.k8s.io" ? "" : ns, "x");
                    var decision = evaluator.Evaluate(request);
                    if (decision.Level < probe.LeaksAt)
                        continue;
                    var resourceName = probe.Subresource.Length > 0 ? $"{probe.Resource}/{probe.Subresource}" : probe.Resource;
                    if (!reported.Add((decision.RuleIndex, resourceName)))
                        continue;
                    var groupText = probe.Group.Length == 0 ? "\"\"" : $"\"{probe.Group}\"";
                    findings.Add(new PolicyFinding(PolicyFindingSeverity.Error, PolicyFindingCodes.SecretPayload, decision.RuleIndex,
                        $"rule {decision.RuleIndex} logs {resourceName} at {decision.Level} (e.g. {request}): {probe.What} would be written to the audit log",
                        $"insert before rule {decision.RuleIndex}: '- level: Metadata' with 'resources: [{{group: {groupText}, resources: [\"{resourceName}\"]}}]'"));
                }
            }
        }
    }

    private static readonly (string Resource, string Subresource, string[] Verbs, string Impact)[] CorrelationRequests =
    [
        // SPDY exec/attach/port-forward are "create"; kubectl >= 1.30 uses WebSockets, recorded as "get".
        ("pods", "exec", ["create", "get"], "exec sessions cannot be attributed to the user who started them"),
        ("pods", "attach", ["create", "get"], "attach sessions cannot be attributed to the user who started them"),
        ("pods", "portforward", ["create", "get"], "port-forward tunnels into pods cannot be attributed"),
        // kubectl debug adds an ephemeral container with a patch (update for older clients).
        ("pods", "ephemeralcontainers", ["patch", "update"], "debug containers (kubectl debug) cannot be attributed"),
        ("serviceaccounts", "token", ["create"], "minted service-account tokens cannot be traced back to who requested them"),
    ];

    private static void CheckCorrelationCapture(AuditPolicyEvaluator evaluator, List<PolicyFinding> findings)
    {
        foreach (var (resource, subresource, verbs, impact) in CorrelationRequests)
        {
            var combined = $"{resource}/{subresource}";
            PolicyRequest? missed = null;
            int missedRule = -1;
            var stageProblem = (PolicyRequest?)null;
            var stageRule = -1;
            foreach (var verb in verbs)
            {
                foreach (var (user, groups) in Identities)
                {
                    foreach (var ns in Namespaces)
                    {
                        var request = ResourceRequest(user, groups, verb, "", resource, subresource, ns, "web-0");
                        var decision = evaluator.Evaluate(request);
                        if (decision.Level == AuditPolicyLevel.None)
                        {
                            missed ??= request;
                            if (missedRule < 0)
                                missedRule = decision.RuleIndex;
                        }
                        else if (subresource is "exec" or "attach" or "portforward" &&
                                 decision.IsStageOmitted(AuditStageFlags.ResponseStarted))
                        {
                            stageProblem ??= request;
                            if (stageRule < 0)
                                stageRule = decision.RuleIndex;
                        }
                    }
                }
            }
            if (missed is { } m)
            {
                var why = missedRule >= 0 ? $"rule {missedRule} sets level None for it" : "no rule matches it (default level None)";
                findings.Add(new PolicyFinding(PolicyFindingSeverity.Error, PolicyFindingCodes.CorrelationNotCaptured, missedRule >= 0 ? missedRule : null,
                    $"{combined} is not audited ({m}): {why}; {impact}",
                    $"insert near the top: '- level: Metadata' with 'resources: [{{group: \"\", resources: [\"{combined}\"]}}]'"));
            }
            if (stageProblem is { } sp)
            {
                findings.Add(new PolicyFinding(PolicyFindingSeverity.Warning, PolicyFindingCodes.CorrelationStageOmitted, stageRule,
                    $"rule {stageRule} omits stage ResponseStarted for {combined} ({sp}): the session's start (101 upgrade) is only logged when it ends",
                    $"remove ResponseStarted from omitStages for {combined} (at the policy level and in rule {stageRule})"));
            }
        }
    }

    private static void CheckServiceAccountCapture(AuditPolicyEvaluator evaluator, List<PolicyFinding> findings)
    {
        // A stolen service-account token shows up as requests by system:serviceaccount:* users.
        var (user, groups) = Identities[2];
        PolicyRequest[] probes =
        [
            ResourceRequest(user, groups, "list", "", "secrets", "", "default", ""),
            ResourceRequest(user, groups, "create", "", "pods", "", "default", ""),
            ResourceRequest(user, groups, "create", "rbac.authorization.k8s.io", "clusterrolebindings", "", "", ""),
        ];
        foreach (var probe in probes)
        {
            var decision = evaluator.Evaluate(probe);
            if (decision.Level != AuditPolicyLevel.None)
                continue;
            findings.Add(new PolicyFinding(PolicyFindingSeverity.Warning, PolicyFindingCodes.ServiceAccountNotCaptured, decision.Matched ? decision.RuleIndex : null,
                $"requests by service-account tokens are not audited ({probe}): use of a stolen token would be invisible",
                "add '- level: Metadata' with 'userGroups: [\"system:serviceaccounts\"]' before any rule that drops them"));
            return;
        }
    }

    private static void CheckRequestReceived(AuditPolicy policy, List<PolicyFinding> findings)
    {
        if ((policy.OmitStages & AuditStageFlags.RequestReceived) != 0)
            return;
        var affected = policy.Rules
            .Where(r => r.Level != AuditPolicyLevel.None && (r.OmitStages & AuditStageFlags.RequestReceived) == 0)
            .Select(r => r.Index)
            .ToArray();
        if (affected.Length == 0)
            return;
        findings.Add(new PolicyFinding(PolicyFindingSeverity.Warning, PolicyFindingCodes.RequestReceivedNotOmitted, affected[0],
            $"stage RequestReceived is logged for rules {string.Join(", ", affected)}: every request then produces an extra event carrying nothing that ResponseComplete lacks, about doubling the log volume",
            "add 'omitStages: [\"RequestReceived\"]' at the top level of the policy"));
    }

    private static void CheckShadowedRules(AuditPolicy policy, List<PolicyFinding> findings)
    {
        for (var j = 1; j < policy.Rules.Count; j++)
        {
            for (var i = 0; i < j; i++)
            {
                if (!PolicyRuleCoverage.Covers(policy.Rules[i], policy.Rules[j]))
                    continue;
                findings.Add(new PolicyFinding(PolicyFindingSeverity.Warning, PolicyFindingCodes.ShadowedRule, j,
                    $"rule {j} ({policy.Rules[j].Summary()}) never applies: every request it matches is matched first by rule {i} ({policy.Rules[i].Summary()})",
                    $"move rule {j} before rule {i}, or delete it"));
                break;
            }
        }
    }

    private static void CheckVerbs(AuditPolicy policy, List<PolicyFinding> findings)
    {
        foreach (var rule in policy.Rules)
        {
            foreach (var verb in rule.Verbs)
            {
                if (KnownResources.Verbs.Contains(verb))
                    continue;
                if (verb == "*")
                {
                    findings.Add(new PolicyFinding(PolicyFindingSeverity.Warning, PolicyFindingCodes.UnknownVerb, rule.Index,
                        $"rule {rule.Index} lists verb \"*\": audit policies have no verb wildcard (checker.go compares verbs exactly), so it only matches a literal \"*\"",
                        $"remove 'verbs' from rule {rule.Index} to match every verb"));
                    continue;
                }
                var suggestion = PolicyMapper.Suggest(verb, KnownResources.Verbs.ToArray());
                findings.Add(new PolicyFinding(PolicyFindingSeverity.Warning, PolicyFindingCodes.UnknownVerb, rule.Index,
                    $"rule {rule.Index} lists unknown verb \"{verb}\", which no request carries",
                    suggestion is not null ? $"use \"{suggestion}\"" : $"use one of {string.Join(", ", KnownResources.Verbs)}"));
            }
        }
    }

    private static void CheckResources(AuditPolicy policy, List<PolicyFinding> findings)
    {
        foreach (var rule in policy.Rules)
        {
            foreach (var gr in rule.Resources)
            {
                if (!KnownResources.IsKnownGroup(gr.Group))
                {
                    var groupSuggestion = PolicyMapper.Suggest(gr.Group, KnownResources.Groups.Where(g => g.Length > 0).ToArray());
                    var (severity, fix) = gr.Group == "core"
                        ? (PolicyFindingSeverity.Warning, "the core API group is written 'group: \"\"', so this entry never matches")
                        : groupSuggestion is not null
                            ? (PolicyFindingSeverity.Warning, $"did you mean 'group: \"{groupSuggestion}\"'?")
                            : (PolicyFindingSeverity.Info, "nothing to do if this is a CRD or aggregated API group; otherwise check the spelling");
                    findings.Add(new PolicyFinding(severity, PolicyFindingCodes.UnknownGroup, rule.Index,
                        $"rule {rule.Index} names API group \"{gr.Group}\", which is not a built-in group", fix));
                    continue;
                }
                foreach (var pattern in gr.Resources)
                    CheckResourcePattern(rule.Index, gr.Group, pattern, findings);
            }
        }
    }

    private static void CheckResourcePattern(int ruleIndex, string group, string pattern, List<PolicyFinding> findings)
    {
        if (pattern == "*")
            return;
        var slash = pattern.IndexOf('/', StringComparison.Ordinal);
        var resource = slash < 0 ? pattern : pattern[..slash];
        var subresource = slash < 0 ? "" : pattern[(slash + 1)..];
        var groupText = group.Length == 0 ? "core group \"\"" : $"group \"{group}\"";
        if (resource != "*" && !KnownResources.IsKnownResource(group, resource))
        {
            var suggestion = PolicyMapper.Suggest(resource, KnownResources.ResourcesOf(group).ToArray());
            var elsewhere = KnownResources.GroupsServing(resource, group);
            string fix;
            if (suggestion is not null)
                fix = $"did you mean \"{(subresource.Length > 0 ? suggestion + "/" + subresource : suggestion)}\"?";
            else if (elsewhere.Count > 0)
                fix = $"\"{resource}\" is served by group {string.Join(" or ", elsewhere.Select(g => g.Length == 0 ? "\"\"" : $"\"{g}\""))}: move it to that group's entry";
            else
                fix = $"check the spelling; resources are plural and lower-case (e.g. \"{KnownResources.ResourcesOf(group).First()}\")";
            findings.Add(new PolicyFinding(PolicyFindingSeverity.Warning, PolicyFindingCodes.UnknownResource, ruleIndex,
                $"rule {ruleIndex}: \"{pattern}\" is not a resource of the {groupText}, so this entry never matches", fix));
            return;
        }
        if (subresource.Length == 0 || subresource == "*")
            return;
        var known = resource == "*" ? KnownResources.AllSubresourcesOf(group) : KnownResources.SubresourcesOf(group, resource);
        if (known.Contains(subresource))
            return;
        var subSuggestion = PolicyMapper.Suggest(subresource, known.ToArray());
        findings.Add(new PolicyFinding(PolicyFindingSeverity.Warning, PolicyFindingCodes.UnknownSubresource, ruleIndex,
            $"rule {ruleIndex}: \"{pattern}\" names subresource \"{subresource}\", which {(resource == "*" ? $"no resource of the {groupText}" : $"\"{resource}\"")} has",
            subSuggestion is not null ? $"did you mean \"{resource}/{subSuggestion}\"?"
                : known.Count > 0 ? $"known subresources: {string.Join(", ", known)}" : $"\"{resource}\" has no subresources; use \"{resource}\""));
    }

    private static PolicyRequest ResourceRequest(string user, string[] groups, string verb, string group, string resource, string subresource, string ns, string name) => new()
    {
        User = user,
        Groups = groups,
        Verb = verb,
        IsResourceRequest = true,
        ApiGroup = group,
        ApiVersion = "v1",
        Resource = resource,
        Subresource = subresource,
        Namespace = ns,
        Name = name,
        Path = $"/api/v1/namespaces/{ns}/{resource}/{name}" + (subresource.Length > 0 ? "/" + subresource : ""),
    };
}
