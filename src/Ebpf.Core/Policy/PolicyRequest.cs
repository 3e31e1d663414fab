namespace Ebpf.Core.Policy;

/// <summary>
/// The request attributes an audit policy is evaluated against: the subset of
/// k8s.io/apiserver/pkg/authorization/authorizer.Attributes that
/// k8s.io/apiserver/pkg/audit/policy/checker.go reads. Null strings mean "".
/// </summary>
public readonly partial record struct PolicyRequest
{
    /// <summary>Authenticated user name; null when there is no user info (then user and group rules never match).</summary>
    public string? User { get; init; }

    public IReadOnlyList<string>? Groups { get; init; }

    /// <summary>Request verb (get, list, watch, create, update, patch, delete, deletecollection) or lower-case HTTP method for non-resource requests.</summary>
    public string? Verb { get; init; }

    public bool IsResourceRequest { get; init; }

    /// <summary>API group; "" is the core group.</summary>
    public string? ApiGroup { get; init; }

    public string? ApiVersion { get; init; }
    public string? Resource { get; init; }
    public string? Subresource { get; init; }

    /// <summary>Namespace; "" for cluster-scoped resources.</summary>
    public string? Namespace { get; init; }

    /// <summary>Object name; "" for list/watch/create-without-name.</summary>
    public string? Name { get; init; }

    /// <summary>URL path without the query, e.g. <c>/healthz</c>; used by nonResourceURLs.</summary>
    public string? Path { get; init; }

    public override string ToString()
    {
        if (!IsResourceRequest)
            return $"{Verb} {Path} by {User}";
        var res = string.IsNullOrEmpty(Subresource) ? Resource : $"{Resource}/{Subresource}";
        var group = string.IsNullOrEmpty(ApiGroup) ? "core" : ApiGroup;
        var ns = string.IsNullOrEmpty(Namespace) ? "" : $" in {Namespace}";
        var name = string.IsNullOrEmpty(Name) ? "" : $" {Name}";
        return $"{Verb} {group}:{res}{name}{ns} by {User}";
    }
}

/// <summary>What the policy decided for one request (k8s.io/apiserver/pkg/audit.RequestAuditConfig plus the rule that decided it).</summary>
public readonly record struct PolicyDecision(AuditPolicyLevel Level, AuditStageFlags OmitStages, bool OmitManagedFields, int RuleIndex)
{
    /// <summary>False when no rule matched and the API server's default (level None) applied.</summary>
    public bool Matched => RuleIndex >= 0;

    public bool IsStageOmitted(AuditStageFlags stage) => (OmitStages & stage) != 0;
}
