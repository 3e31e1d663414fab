using System.Text.Json;

namespace Ebpf.Core.Audit;

/// <summary>
/// GKE exports API-server audit events to Cloud Logging as google.cloud.audit.AuditLog, not as audit.k8s.io Events.
/// This maps the fields that survive back onto the Kubernetes model. What does not survive: the requestURI query
/// (so no exec argv), user groups/extra, the audit level and the stage except "last" (see
/// https://cloud.google.com/kubernetes-engine/docs/how-to/audit-logging). operation.id is the Kubernetes auditID.
/// </summary>
internal static class GkeTranslation
{
    public static AuditEvent ToAuditEvent(GkeLogEntry entry, GkeAuditLog payload)
    {
        var resourceName = payload.ResourceName ?? string.Empty;
        var (objectRef, requestUri) = ParseResourceName(resourceName);
        var method = payload.MethodName ?? string.Empty;
        var dot = method.LastIndexOf('.');
        var verb = dot >= 0 ? method[(dot + 1)..] : method;
        var hasBodies = payload.Request is { ValueKind: JsonValueKind.Object } || payload.Response is { ValueKind: JsonValueKind.Object };
        return new AuditEvent
        {
            Kind = "Event",
            ApiVersion = "audit.k8s.io/v1",
            Level = hasBodies ? AuditLevels.RequestResponse : AuditLevels.Metadata,
            AuditId = entry.Operation?.Id ?? entry.InsertId,
            // A long-running request (exec, watch) produces a first and a last entry; single entries are first and last.
            Stage = entry.Operation?.Last == false ? AuditStages.ResponseStarted : AuditStages.ResponseComplete,
            RequestUri = requestUri,
            Verb = verb,
            User = payload.AuthenticationInfo?.PrincipalEmail is { } principal ? new AuditUserInfo { Username = principal } : null,
            SourceIps = payload.RequestMetadata?.CallerIp is { } ip ? [ip] : null,
            UserAgent = payload.RequestMetadata?.CallerSuppliedUserAgent,
            ObjectRef = objectRef,
            ResponseStatus = payload.Status is { } status ? new AuditResponseStatus { Code = HttpCodeFromGrpc(status.Code ?? 0), Message = status.Message } : null,
            RequestObject = payload.Request,
            ResponseObject = payload.Response,
            StageTimestamp = entry.Timestamp,
            RequestReceivedTimestamp = entry.Timestamp,
            Annotations = entry.Labels,
        };
    }

    // resourceName is "{group}/{version}/namespaces/{ns}/{resource}/{name}/{subresource}" with group "core" for the
    // legacy group, or "{group}/{version}/{resource}/{name}" for cluster-scoped objects, or a bare non-resource path.
    private static (AuditObjectReference? Ref, string Uri) ParseResourceName(string resourceName)
    {
        var parts = resourceName.Split('/');
        if (parts.Length < 3)
        {
            return (null, "/" + resourceName);
        }

        var group = parts[0] == "core" ? string.Empty : parts[0];
        var version = parts[1];
        var rest = parts.AsSpan(2);
        string? ns = null;
        if (rest.Length >= 3 && rest[0] == "namespaces")
        {
            ns = rest[1];
            rest = rest[2..];
        }

        var prefix = group.Length == 0 ? $"/api/{version}" : $"/apis/{group}/{version}";
        var reference = new AuditObjectReference
        {
            ApiGroup = group,
            ApiVersion = version,
            Namespace = ns,
            Resource = rest.Length > 0 ? rest[0] : null,
            Name = rest.Length > 1 ? rest[1] : null,
            Subresource = rest.Length > 2 ? rest[2] : null,
        };
        return (reference, prefix + "/" + string.Join('/', parts, 2, parts.Length - 2));
    }

    // google.rpc.Code to the HTTP status the API server answered (https://cloud.google.com/apis/design/errors).
    private static int HttpCodeFromGrpc(int code) => code switch
    {
        0 => 200,
        1 => 499,
        3 or 9 or 11 => 400,
        4 => 504,
        5 => 404,
        6 or 10 => 409,
        7 => 403,
        8 => 429,
        12 => 501,
        14 => 503,
        16 => 401,
        _ => 500,
    };
}
