using System.Globalization;
using System.Text.Json.Nodes;

namespace Ebpf.Agent.Tests.EndToEnd;

/// <summary>
/// audit.k8s.io/v1 events other than <c>kubectl exec</c>, in the shape the API server writes them (same envelope as
/// <see cref="ExecAuditRequest"/>): <c>kubectl debug</c> (PATCH pods/ephemeralcontainers, level Request so the
/// patch body is logged as requestObject), <c>kubectl port-forward</c> over WebSocket (kubectl ≥ 1.30: GET
/// pods/portforward?ports=P, 101) and an ordinary API call authenticated by a pod-bound service-account token
/// (user.extra authentication.kubernetes.io/pod-name, pod-uid, node-name, credential-id, as kube-apiserver ≥ 1.29
/// records them).
/// </summary>
public static class PodAccessAuditEvents
{
    public static JsonObject DebugPatch(string auditId, string ns, string pod, string ephemeralName, string targetContainer, AuditUser user,
        DateTimeOffset received, DateTimeOffset completed)
    {
        var e = Envelope(auditId, "ResponseComplete", $"/api/v1/namespaces/{ns}/pods/{pod}/ephemeralcontainers", "patch", User(user), user.SourceIp,
            "kubectl/v1.30.2 (linux/amd64) kubernetes/3968350", Ref(ns, pod, "ephemeralcontainers"), 200, received, completed);
        // kubectl debug sends a strategic merge patch with the pod's whole ephemeralContainers list.
        e["requestObject"] = new JsonObject
        {
            ["spec"] = new JsonObject
            {
                ["ephemeralContainers"] = new JsonArray(new JsonObject
                {
                    ["name"] = ephemeralName,
                    ["image"] = "busybox:1.36",
                    ["command"] = new JsonArray("sh"),
                    ["stdin"] = true,
                    ["tty"] = true,
                    ["targetContainerName"] = targetContainer,
                    ["terminationMessagePolicy"] = "File",
                    ["imagePullPolicy"] = "IfNotPresent",
                    ["resources"] = new JsonObject(),
                }),
            },
        };
        return e;
    }

    public static JsonObject PortForward(string auditId, string stage, string ns, string pod, int port, AuditUser user,
        DateTimeOffset received, DateTimeOffset stageTime) =>
        Envelope(auditId, stage, $"/api/v1/namespaces/{ns}/pods/{pod}/portforward?ports={port.ToString(CultureInfo.InvariantCulture)}", "get",
            User(user), user.SourceIp, "kubectl/v1.30.2 (linux/amd64) kubernetes/3968350", Ref(ns, pod, "portforward"), 101, received, stageTime);

    /// <summary>GET a configmap of <paramref name="ns"/> with the token of pod <paramref name="pod"/> (uid <paramref name="podUid"/>).</summary>
    public static JsonObject PodTokenGet(string auditId, string ns, string serviceAccount, string pod, string podUid, string node,
        string credentialId, string sourceIp, DateTimeOffset received) =>
        Envelope(auditId, "ResponseComplete", $"/api/v1/namespaces/{ns}/configmaps/app-config", "get", new JsonObject
        {
            ["username"] = $"system:serviceaccount:{ns}:{serviceAccount}",
            ["uid"] = Guid.NewGuid().ToString(),
            ["groups"] = new JsonArray("system:serviceaccounts", $"system:serviceaccounts:{ns}", "system:authenticated"),
            ["extra"] = new JsonObject
            {
                ["authentication.kubernetes.io/credential-id"] = new JsonArray(credentialId),
                ["authentication.kubernetes.io/node-name"] = new JsonArray(node),
                ["authentication.kubernetes.io/node-uid"] = new JsonArray(Guid.NewGuid().ToString()),
                ["authentication.kubernetes.io/pod-name"] = new JsonArray(pod),
                ["authentication.kubernetes.io/pod-uid"] = new JsonArray(podUid),
            },
        }, sourceIp, "app/v1.0 (linux/amd64) kubernetes/$Format", new JsonObject
        {
            ["resource"] = "configmaps",
            ["namespace"] = ns,
            ["name"] = "app-config",
            ["apiVersion"] = "v1",
        }, 200, received, received.AddMilliseconds(3));

    private static JsonObject User(AuditUser user) => new()
    {
        ["username"] = user.Name,
        ["groups"] = new JsonArray(user.Groups.Select(g => (JsonNode)JsonValue.Create(g)!).ToArray()),
    };

    private static JsonObject Ref(string ns, string pod, string subresource) => new()
    {
        ["resource"] = "pods",
        ["namespace"] = ns,
        ["name"] = pod,
        ["apiVersion"] = "v1",
        ["subresource"] = subresource,
    };

    private static JsonObject Envelope(string auditId, string stage, string uri, string verb, JsonObject user, string sourceIp, string userAgent,
        JsonObject objectRef, int code, DateTimeOffset received, DateTimeOffset stageTime) => new()
    {
        ["kind"] = "Event",
        ["apiVersion"] = "audit.k8s.io/v1",
        ["level"] = "Request",
        ["auditID"] = auditId,
        ["stage"] = stage,
        ["requestURI"] = uri,
        ["verb"] = verb,
        ["user"] = user,
        ["sourceIPs"] = new JsonArray(JsonValue.Create(sourceIp)),
        ["userAgent"] = userAgent,
        ["objectRef"] = objectRef,
        ["responseStatus"] = new JsonObject { ["metadata"] = new JsonObject(), ["code"] = code },
        ["requestReceivedTimestamp"] = Rfc3339Micro(received),
        ["stageTimestamp"] = Rfc3339Micro(stageTime),
        ["annotations"] = new JsonObject
        {
            ["authorization.k8s.io/decision"] = "allow",
            ["authorization.k8s.io/reason"] = "RBAC: allowed",
        },
    };

    private static string Rfc3339Micro(DateTimeOffset t) =>
        t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture);
}
