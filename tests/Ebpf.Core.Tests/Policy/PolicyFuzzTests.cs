using System.Text;
using Ebpf.Core.Policy;
using static Ebpf.Core.Tests.Policy.PolicyTestData;

namespace Ebpf.Core.Tests.Policy;

/// <summary>
/// Randomised tests with fixed seeds: generated policies are checked against a deliberately naive reference
/// of checker.go (string concatenation, no shortcuts), and mutated policy files must fail only with
/// <see cref="AuditPolicyException"/>.
/// </summary>
public sealed class PolicyFuzzTests
{
    private static readonly string[] Users = ["alice", "bob", "system:serviceaccount:default:app", "system:node:n1"];
    private static readonly string[] Groups = ["system:authenticated", "system:masters", "system:nodes", "system:serviceaccounts"];
    private static readonly string[] Verbs = ["get", "list", "create", "patch", "watch"];
    private static readonly string[] ApiGroups = ["", "apps", "rbac.authorization.k8s.io"];
    private static readonly string[] Resources = ["pods", "deployments", "secrets", "configmaps"];
    private static readonly string[] Subresources = ["", "", "exec", "scale", "status"];
    private static readonly string[] ResourcePatterns = ["pods", "pods/exec", "pods/*", "*/scale", "*", "deployments", "deployments/scale", "secrets", "*/exec", "configmaps"];
    private static readonly string[] Namespaces = ["", "default", "kube-system"];
    private static readonly string[] Names = ["", "a", "b"];
    private static readonly string[] Paths = ["/healthz", "/healthz/ready", "/api", "/apis/apps", "/version", "/metrics"];
    private static readonly string[] UrlPatterns = ["/healthz*", "/api*", "/version", "*", "/metrics", "/apis/*"];
    private static readonly string[] Levels = ["None", "Metadata", "Request", "RequestResponse"];

    private static T Pick<T>(Random r, T[] items) => items[r.Next(items.Length)];

    private static string List(Random r, string[] pool, int max)
    {
        var n = r.Next(1, max + 1);
        return "[" + string.Join(", ", Enumerable.Range(0, n).Select(_ => $"\"{Pick(r, pool)}\"").Distinct()) + "]";
    }

    private static string RandomPolicyYaml(Random r)
    {
        var sb = new StringBuilder("apiVersion: audit.k8s.io/v1\nkind: Policy\n");
        if (r.Next(2) == 0)
            sb.Append("omitStages: [RequestReceived]\n");
        sb.Append("rules:\n");
        var rules = r.Next(1, 7);
        for (var i = 0; i < rules; i++)
        {
            sb.Append($"- level: {Pick(r, Levels)}\n");
            if (r.Next(4) == 0) sb.Append($"  users: {List(r, Users, 2)}\n");
            if (r.Next(4) == 0) sb.Append($"  userGroups: {List(r, Groups, 2)}\n");
            if (r.Next(3) == 0) sb.Append($"  verbs: {List(r, Verbs, 3)}\n");
            switch (r.Next(4))
            {
                case 0:
                    sb.Append($"  nonResourceURLs: {List(r, UrlPatterns, 2)}\n");
                    break;
                case 1:
                case 2:
                    if (r.Next(3) == 0) sb.Append($"  namespaces: {List(r, Namespaces, 2)}\n");
                    if (r.Next(4) != 0)
                    {
                        sb.Append("  resources:\n");
                        for (var g = r.Next(1, 3); g > 0; g--)
                        {
                            sb.Append($"  - group: \"{Pick(r, ApiGroups)}\"\n");
                            if (r.Next(4) != 0)
                            {
                                sb.Append($"    resources: {List(r, ResourcePatterns, 3)}\n");
                                if (r.Next(4) == 0) sb.Append($"    resourceNames: {List(r, Names, 2)}\n");
                            }
                        }
                    }
                    break;
            }
            if (r.Next(4) == 0) sb.Append("  omitStages: [ResponseStarted]\n");
            if (r.Next(4) == 0) sb.Append($"  omitManagedFields: {(r.Next(2) == 0 ? "true" : "false")}\n");
        }
        return sb.ToString();
    }

    private static PolicyRequest RandomRequest(Random r)
    {
        var groups = Enumerable.Range(0, r.Next(0, 3)).Select(_ => Pick(r, Groups)).ToArray();
        if (r.Next(3) == 0)
            return NonResource(Pick(r, Verbs), Pick(r, Paths), Pick(r, Users), groups) with { Groups = groups };
        return Resource(Pick(r, Verbs), Pick(r, ApiGroups), Pick(r, Resources), Pick(r, Subresources), Pick(r, Namespaces), Pick(r, Names), Pick(r, Users), groups) with { Groups = groups };
    }

    [Fact]
    public void Evaluate_RandomPoliciesAndRequests_AgreesWithNaiveReference()
    {
        var random = new Random(20240601);
        var compared = 0;
        var matchedNonDefault = 0;
        for (var p = 0; p < 400; p++)
        {
            var yaml = RandomPolicyYaml(random);
            if (!AuditPolicyLoader.TryLoad(yaml, out var policy, out _))
                continue;
            var evaluator = new AuditPolicyEvaluator(policy!);
            for (var q = 0; q < 200; q++)
            {
                var request = RandomRequest(random);
                var actual = evaluator.Evaluate(request);
                var expected = ReferenceChecker.Evaluate(policy!, request);
                Assert.True(expected == actual, $"policy:\n{yaml}\nrequest: {request}\nexpected {expected}, got {actual}");
                compared++;
                if (actual.Matched && actual.RuleIndex > 0)
                    matchedNonDefault++;
            }
        }
        Assert.True(compared > 50_000, $"{compared} comparisons");
        Assert.True(matchedNonDefault > 5_000, "the generator must exercise later rules, not only rule 0");
    }

    [Fact]
    public void LoadLintSimulate_MutatedFixturePolicies_OnlyPolicyExceptionsEscape()
    {
        var random = new Random(77);
        var sources = Directory.EnumerateFiles(Path.Combine(FixtureRoot, "policies")).Select(File.ReadAllText).Append(File.ReadAllText(DeployPolicy)).ToArray();
        const string Alphabet = " \n\t:-[]{}\"'&*!|>%@`#,?~0aZ/\\\u00e9\u0000";
        var loaded = 0;
        for (var i = 0; i < 3000; i++)
        {
            var chars = new StringBuilder(Pick(random, sources));
            for (var m = random.Next(1, 6); m > 0 && chars.Length > 0; m--)
            {
                var at = random.Next(chars.Length);
                switch (random.Next(4))
                {
                    case 0: chars[at] = Alphabet[random.Next(Alphabet.Length)]; break;
                    case 1: chars.Remove(at, Math.Min(random.Next(1, 20), chars.Length - at)); break;
                    case 2: chars.Insert(at, Alphabet[random.Next(Alphabet.Length)]); break;
                    default:
                        var from = random.Next(chars.Length);
                        chars.Insert(at, chars.ToString(from, Math.Min(30, chars.Length - from)));
                        break;
                }
            }
            var text = chars.ToString();
            try
            {
                var policy = AuditPolicyLoader.Load(text);
                loaded++;
                PolicyLinter.Lint(policy);
                var evaluator = new AuditPolicyEvaluator(policy);
                for (var q = 0; q < 20; q++)
                    evaluator.Evaluate(RandomRequest(random));
            }
            catch (AuditPolicyException ex)
            {
                Assert.NotEmpty(ex.Errors);
                Assert.All(ex.Errors, e => Assert.False(string.IsNullOrWhiteSpace(e.Message)));
            }
        }
        Assert.True(loaded > 100, $"only {loaded} mutated policies loaded; the test must also exercise lint and evaluation");
    }

    [Fact]
    public void Evaluate_HostileRequestValues_NoException()
    {
        var policy = AuditPolicyLoader.LoadFile(FixturePolicy("gce-configure-helper-audit-policy.yaml"));
        var evaluator = new AuditPolicyEvaluator(policy);
        var random = new Random(5);
        string?[] values = [null, "", "*", "/", "*/", "/*", "pods/", "/exec", "pods/exec/extra", new string('a', 10_000), "\u0000", "p\u00f6ds"];
        for (var i = 0; i < 20_000; i++)
        {
            var request = new PolicyRequest
            {
                User = Pick(random, values), Groups = random.Next(3) == 0 ? null : [Pick(random, values) ?? ""],
                Verb = Pick(random, values), IsResourceRequest = random.Next(2) == 0, ApiGroup = Pick(random, values),
                Resource = Pick(random, values), Subresource = Pick(random, values), Namespace = Pick(random, values),
                Name = Pick(random, values), Path = Pick(random, values),
            };
            var d = evaluator.Evaluate(request);
            Assert.InRange(d.RuleIndex, -1, policy.Rules.Count - 1);
        }
    }

    /// <summary>A literal, unoptimised reading of checker.go, kept independent of the production code.</summary>
    private static class ReferenceChecker
    {
        public static PolicyDecision Evaluate(AuditPolicy policy, PolicyRequest r)
        {
            for (var i = 0; i < policy.Rules.Count; i++)
            {
                var rule = policy.Rules[i];
                if (RuleMatches(rule, r))
                    return new PolicyDecision(rule.Level, policy.OmitStages | rule.OmitStages, rule.OmitManagedFields ?? policy.OmitManagedFields, i);
            }
            return new PolicyDecision(AuditPolicyLevel.None, policy.OmitStages, policy.OmitManagedFields, -1);
        }

        private static bool RuleMatches(AuditPolicyRule rule, PolicyRequest r)
        {
            if (rule.Users.Count > 0 && (r.User is null || !rule.Users.Contains(r.User)))
                return false;
            if (rule.UserGroups.Count > 0 && (r.User is null || !(r.Groups ?? []).Any(rule.UserGroups.Contains)))
                return false;
            if (rule.Verbs.Count > 0 && !rule.Verbs.Contains(r.Verb ?? ""))
                return false;
            if (rule.Namespaces.Count > 0 || rule.Resources.Count > 0)
            {
                if (!r.IsResourceRequest)
                    return false;
                if (rule.Namespaces.Count > 0 && !rule.Namespaces.Contains(r.Namespace ?? ""))
                    return false;
                if (rule.Resources.Count == 0)
                    return true;
                var resource = r.Resource ?? "";
                var sub = r.Subresource ?? "";
                var combined = sub != "" ? resource + "/" + sub : resource;
                foreach (var gr in rule.Resources)
                {
                    if (gr.Group != (r.ApiGroup ?? ""))
                        continue;
                    if (gr.Resources.Count == 0)
                        return true;
                    foreach (var res in gr.Resources)
                    {
                        if (gr.ResourceNames.Count != 0 && !gr.ResourceNames.Contains(r.Name ?? ""))
                            continue;
                        if (res == combined || res == "*")
                            return true;
                        if (sub.Length > 0 && res.StartsWith("*/", StringComparison.Ordinal) && sub == res["*/".Length..])
                            return true;
                        if (res.EndsWith("/*", StringComparison.Ordinal) && resource == res[..^"/*".Length])
                            return true;
                    }
                }
                return false;
            }
            if (rule.NonResourceUrls.Count > 0)
            {
                if (r.IsResourceRequest)
                    return false;
                var path = r.Path ?? "";
                return rule.NonResourceUrls.Any(spec => spec == "*" || spec == path || (spec.EndsWith('*') && path.StartsWith(spec.TrimEnd('*'), StringComparison.Ordinal)));
            }
            return true;
        }
    }
}
