using System.Globalization;
using System.Text.Json.Nodes;

namespace Ebpf.Agent.Tests.EndToEnd;

/// <summary>Who ran a <c>kubectl exec</c>, as the API server's authenticator saw it.</summary>
public sealed record AuditUser(string Name, string[] Groups, string SourceIp);

/// <summary>
/// audit.k8s.io/v1 events of one <c>kubectl exec</c> (SPDY: verb create, code 101), shaped after a recorded API
/// server event (falcosecurity/falco test/trace_files/k8s_audit/exec_pod.json): objectRef pods/exec, the argv as
/// repeated <c>command</c> query parameters, RFC 3339 microsecond timestamps.
/// </summary>
public sealed class ExecAuditRequest
{
    public required string Namespace { get; init; }
    public required string Pod { get; init; }
    public required string Container { get; init; }
    public required IReadOnlyList<string> Command { get; init; }
    public required AuditUser User { get; init; }
    public required DateTimeOffset RequestReceived { get; init; }
    public string AuditId { get; init; } = Guid.NewGuid().ToString();

    public string RequestUri =>
        $"/api/v1/namespaces/{Namespace}/pods/{Pod}/exec?"
        + string.Concat(Command.Select(c => "command=" + Uri.EscapeDataString(c) + "&"))
        + $"container={Uri.EscapeDataString(Container)}&stdin=true&stdout=true&tty=false";

    /// <summary>The event of one stage (ResponseStarted when the stream was upgraded, ResponseComplete when it closed).</summary>
    public JsonObject Stage(string stage, DateTimeOffset stageTimestamp) => new()
    {
        ["kind"] = "Event",
        ["apiVersion"] = "audit.k8s.io/v1",
        ["level"] = "Request",
        ["auditID"] = AuditId,
        ["stage"] = stage,
        ["requestURI"] = RequestUri,
        ["verb"] = "create",
        ["user"] = new JsonObject
        {
            ["username"] = User.Name,
            ["groups"] = new JsonArray(User.Groups.Select(g => (JsonNode)JsonValue.Create(g)!).ToArray()),
        },
        ["sourceIPs"] = new JsonArray(JsonValue.Create(User.SourceIp)),
        ["userAgent"] = "kubectl/v1.30.2 (linux/amd64) kubernetes/3968350",
        ["objectRef"] = new JsonObject
        {
            ["resource"] = "pods",
            ["namespace"] = Namespace,
            ["name"] = Pod,
            ["apiVersion"] = "v1",
            ["subresource"] = "exec",
        },
        ["responseStatus"] = new JsonObject { ["metadata"] = new JsonObject(), ["code"] = 101 },
        ["requestReceivedTimestamp"] = Rfc3339Micro(RequestReceived),
        ["stageTimestamp"] = Rfc3339Micro(stageTimestamp),
        ["annotations"] = new JsonObject
        {
            ["authorization.k8s.io/decision"] = "allow",
            ["authorization.k8s.io/reason"] = "RBAC: allowed by ClusterRoleBinding \"exec-users\"",
        },
    };

    /// <summary>An EventList as the webhook backend POSTs it.</summary>
    public static string EventList(params JsonObject[] events) => new JsonObject
    {
        ["kind"] = "EventList",
        ["apiVersion"] = "audit.k8s.io/v1",
        ["metadata"] = new JsonObject(),
        ["items"] = new JsonArray(events.Select(e => (JsonNode)e).ToArray()),
    }.ToJsonString();

    private static string Rfc3339Micro(DateTimeOffset t) =>
        t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture);
}
