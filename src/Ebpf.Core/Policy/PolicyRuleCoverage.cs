namespace Ebpf.Core.Policy;

/// <summary>
/// Decides whether one rule matches a superset of the requests another matches, by comparing selectors
/// with the matching rules of k8s.io/apiserver/pkg/audit/policy/checker.go. Conservative: "true" is
/// always right; some exotic supersets (e.g. two rules that together cover a third) are not detected.
/// </summary>
internal static class PolicyRuleCoverage
{
    public static bool Covers(AuditPolicyRule earlier, AuditPolicyRule later)
    {
        if (!CoversList(earlier.Users, later.Users))
            return false;
        // userGroups is any-of: later matches users in any of its groups, so each must be in earlier's list.
        if (!CoversList(earlier.UserGroups, later.UserGroups))
            return false;
        if (!CoversList(earlier.Verbs, later.Verbs))
            return false;

        if (earlier.IsResourceRule)
        {
            // earlier only ever matches resource requests, so later must be restricted to them too.
            if (!later.IsResourceRule)
                return false;
            if (!CoversList(earlier.Namespaces, later.Namespaces))
                return false;
            if (earlier.Resources.Count == 0)
                return true;
            if (later.Resources.Count == 0)
                return false;
            return later.Resources.All(lg => earlier.Resources.Any(eg => CoversGroupResources(eg, lg)));
        }
        if (earlier.NonResourceUrls.Count > 0)
        {
            if (!later.IsNonResourceRule)
                return false;
            return later.NonResourceUrls.All(lu => earlier.NonResourceUrls.Any(eu => CoversUrl(eu, lu)));
        }
        // earlier has no resource or URL selector: it matches both kinds of request.
        return true;
    }

    private static bool CoversList(IReadOnlyList<string> earlier, IReadOnlyList<string> later) =>
        earlier.Count == 0 || (later.Count > 0 && later.All(earlier.Contains));

    private static bool CoversGroupResources(AuditPolicyGroupResources earlier, AuditPolicyGroupResources later)
    {
        if (earlier.Group != later.Group)
            return false;
        if (earlier.Resources.Count == 0)
            return true;
        if (earlier.ResourceNames.Count > 0 && (later.ResourceNames.Count == 0 || !later.ResourceNames.All(earlier.ResourceNames.Contains)))
            return false;
        if (later.Resources.Count == 0)
            return earlier.Resources.Contains("*");
        return later.Resources.All(lr => earlier.Resources.Any(er => CoversResource(er, lr)));
    }

    // Whether pattern 'earlier' matches every request that pattern 'later' matches (checker.go ruleMatchesResource).
    private static bool CoversResource(string earlier, string later)
    {
        if (earlier == "*" || earlier == later)
            return true;
        if (earlier.StartsWith("*/", StringComparison.Ordinal))
        {
            // "*/s" matches any resource's subresource s: covers "r/s".
            var sub = earlier[2..];
            var slash = later.IndexOf('/', StringComparison.Ordinal);
            return slash > 0 && later[(slash + 1)..] == sub && sub.Length > 0 && sub != "*";
        }
        if (earlier.EndsWith("/*", StringComparison.Ordinal))
        {
            // "r/*" matches r itself and all of r's subresources: covers "r", "r/s".
            var res = earlier[..^2];
            if (later == res)
                return true;
            var slash = later.IndexOf('/', StringComparison.Ordinal);
            return slash > 0 && later[..slash] == res && later[..slash] != "*";
        }
        return false;
    }

    // Whether URL spec 'earlier' matches every path that spec 'later' matches (checker.go pathMatches).
    private static bool CoversUrl(string earlier, string later)
    {
        if (earlier == "*" || earlier == later)
            return true;
        if (!earlier.EndsWith('*'))
            return false;
        var prefix = earlier.TrimEnd('*');
        var laterPrefix = later == "*" ? "" : later.TrimEnd('*');
        return later != "*" && laterPrefix.StartsWith(prefix, StringComparison.Ordinal);
    }
}
