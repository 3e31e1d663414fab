using System.Text.Json;
using System.Text.Json.Serialization;

namespace Ebpf.Core.Audit;

/// <summary>
/// Source-generated (reflection-free) metadata for the cloud envelopes, and for the audit model as the reference
/// deserializer that <see cref="AuditEventReader"/> is tested against (events themselves are read by the latter).
/// </summary>
[JsonSourceGenerationOptions(GenerationMode = JsonSourceGenerationMode.Metadata)]
[JsonSerializable(typeof(AuditEvent))]
[JsonSerializable(typeof(AuditEventList))]
[JsonSerializable(typeof(AksDiagnosticRecord))]
[JsonSerializable(typeof(GkeLogEntry))]
internal sealed partial class AuditJsonContext : JsonSerializerContext;

/// <summary>Azure Monitor diagnostic record for the kube-audit / kube-audit-admin categories.</summary>
internal sealed class AksDiagnosticRecord
{
    [JsonPropertyName("category")] public string? Category { get; init; }
    [JsonPropertyName("properties")] public AksProperties? Properties { get; init; }
}

internal sealed class AksProperties
{
    /// <summary>The audit event: an object, or (kube-audit category) the event's JSON text as a string.</summary>
    [JsonPropertyName("log")] public JsonElement? Log { get; init; }
}

/// <summary>Cloud Logging LogEntry whose protoPayload is a google.cloud.audit.AuditLog written by GKE for the API server.</summary>
internal sealed class GkeLogEntry
{
    [JsonPropertyName("insertId")] public string? InsertId { get; init; }
    [JsonPropertyName("timestamp")] public DateTimeOffset? Timestamp { get; init; }
    [JsonPropertyName("receiveTimestamp")] public DateTimeOffset? ReceiveTimestamp { get; init; }
    [JsonPropertyName("labels")] public Dictionary<string, string>? Labels { get; init; }
    [JsonPropertyName("operation")] public GkeOperation? Operation { get; init; }
    [JsonPropertyName("protoPayload")] public GkeAuditLog? ProtoPayload { get; init; }
}

internal sealed class GkeOperation
{
    [JsonPropertyName("id")] public string? Id { get; init; }
    [JsonPropertyName("first")] public bool? First { get; init; }
    [JsonPropertyName("last")] public bool? Last { get; init; }
}

internal sealed class GkeAuditLog
{
    [JsonPropertyName("@type")] public string? Type { get; init; }
    [JsonPropertyName("serviceName")] public string? ServiceName { get; init; }
    [JsonPropertyName("methodName")] public string? MethodName { get; init; }
    [JsonPropertyName("resourceName")] public string? ResourceName { get; init; }
    [JsonPropertyName("authenticationInfo")] public GkeAuthenticationInfo? AuthenticationInfo { get; init; }
    [JsonPropertyName("requestMetadata")] public GkeRequestMetadata? RequestMetadata { get; init; }
    [JsonPropertyName("status")] public GkeStatus? Status { get; init; }
    [JsonPropertyName("request")] public JsonElement? Request { get; init; }
    [JsonPropertyName("response")] public JsonElement? Response { get; init; }
}

internal sealed class GkeAuthenticationInfo
{
    [JsonPropertyName("principalEmail")] public string? PrincipalEmail { get; init; }
}

internal sealed class GkeRequestMetadata
{
    [JsonPropertyName("callerIp")] public string? CallerIp { get; init; }
    [JsonPropertyName("callerSuppliedUserAgent")] public string? CallerSuppliedUserAgent { get; init; }
}

internal sealed class GkeStatus
{
    [JsonPropertyName("code")] public int? Code { get; init; }
    [JsonPropertyName("message")] public string? Message { get; init; }
}
