using System.Text.Json;
using System.Text.Json.Serialization;

namespace Ebpf.Core.Audit;

/// <summary>
/// One Kubernetes API-server audit event, <c>audit.k8s.io/v1 Event</c>, also accepting the older
/// v1beta1/v1alpha1 shape (<c>timestamp</c>, <c>metadata.creationTimestamp</c>, often no <c>apiVersion</c>).
/// Field names follow k8s.io/apiserver/pkg/apis/audit/v1/types.go. Request and response objects stay raw JSON.
/// Instances come from <see cref="AuditEventParser"/>, which fills <see cref="RawJson"/>; <see cref="Derived"/> is computed on first use.
/// </summary>
public sealed class AuditEvent
{
    [JsonPropertyName("kind")] public string? Kind { get; init; }
    [JsonPropertyName("apiVersion")] public string? ApiVersion { get; init; }
    [JsonPropertyName("level")] public string? Level { get; init; }
    [JsonPropertyName("auditID")] public string? AuditId { get; init; }
    [JsonPropertyName("stage")] public string? Stage { get; init; }
    [JsonPropertyName("requestURI")] public string? RequestUri { get; init; }
    [JsonPropertyName("verb")] public string? Verb { get; init; }
    [JsonPropertyName("user")] public AuditUserInfo? User { get; init; }
    [JsonPropertyName("impersonatedUser")] public AuditUserInfo? ImpersonatedUser { get; init; }
    [JsonPropertyName("sourceIPs")] public IReadOnlyList<string>? SourceIps { get; init; }
    [JsonPropertyName("userAgent")] public string? UserAgent { get; init; }
    [JsonPropertyName("objectRef")] public AuditObjectReference? ObjectRef { get; init; }
    [JsonPropertyName("responseStatus")] public AuditResponseStatus? ResponseStatus { get; init; }

    /// <summary>The request body as sent (level Request or RequestResponse); a detached JSON element, built on first read.</summary>
    [JsonIgnore]
    public JsonElement? RequestObject
    {
        get => Materialize(ref _requestObject, RequestObjectJson);
        init => _requestObject = new ElementBox(value);
    }

    /// <summary>The response body (level RequestResponse); a detached JSON element, built on first read.</summary>
    [JsonIgnore]
    public JsonElement? ResponseObject
    {
        get => Materialize(ref _responseObject, ResponseObjectJson);
        init => _responseObject = new ElementBox(value);
    }

    [JsonInclude, JsonPropertyName("requestObject")] internal RawJsonValue? RequestObjectJson { get; init; }
    [JsonInclude, JsonPropertyName("responseObject")] internal RawJsonValue? ResponseObjectJson { get; init; }

    [JsonPropertyName("requestReceivedTimestamp")] public DateTimeOffset? RequestReceivedTimestamp { get; init; }
    [JsonPropertyName("stageTimestamp")] public DateTimeOffset? StageTimestamp { get; init; }
    [JsonPropertyName("annotations")] public IReadOnlyDictionary<string, string>? Annotations { get; init; }

    /// <summary>v1beta1/v1alpha1 only: second-resolution event time (replaced by the two timestamps above in v1).</summary>
    [JsonPropertyName("timestamp")] public DateTimeOffset? Timestamp { get; init; }

    /// <summary>v1beta1/v1alpha1 only: ObjectMeta; only creationTimestamp was ever set by the API server.</summary>
    [JsonPropertyName("metadata")] public AuditLegacyMetadata? Metadata { get; init; }

    /// <summary>The exact UTF-8 JSON of the event as received (for cloud envelopes: the whole envelope line).</summary>
    [JsonIgnore] public ReadOnlyMemory<byte> RawJson { get; internal set; }

    /// <summary>Where the event came from: a native event, or which cloud envelope it was unwrapped from.</summary>
    [JsonIgnore] public AuditSourceFormat SourceFormat { get; internal set; }

    private AuditDerivedFields? _derived;
    private ElementBox? _requestObject;
    private ElementBox? _responseObject;

    /// <summary>Holds a materialized body so readers on other threads see it whole (a JsonElement? is not written atomically).</summary>
    private sealed class ElementBox(JsonElement? value)
    {
        public JsonElement? Value { get; } = value;
    }

    private JsonElement? Materialize(ref ElementBox? cache, RawJsonValue? raw)
    {
        if (cache is { } cached)
        {
            return cached.Value;
        }

        var box = new ElementBox(raw is { } r ? r.ToElement(RawJson.Span) : null);
        return (Interlocked.CompareExchange(ref cache, box, null) ?? box).Value;
    }

    /// <summary>Fields computed once from the event (identity, exec/attach/port-forward details, dedupe key).</summary>
    /// <remarks>
    /// Computed on first access, not by the parser: policy evaluation and most stored events never read them, and
    /// computing them for every event cost a sizeable share of parse time. Compute never throws and reads only
    /// init-only fields, so a racing second computation is equal; CompareExchange keeps one instance for all readers.
    /// </remarks>
    [JsonIgnore]
    public AuditDerivedFields Derived
    {
        get
        {
            if (_derived is { } derived)
            {
                return derived;
            }

            var computed = AuditDerivedFields.Compute(this);
            return Interlocked.CompareExchange(ref _derived, computed, null) ?? computed;
        }
    }
}

/// <summary>authentication.k8s.io/v1 UserInfo as embedded in audit events.</summary>
public sealed class AuditUserInfo
{
    [JsonPropertyName("username")] public string? Username { get; init; }
    [JsonPropertyName("uid")] public string? Uid { get; init; }
    [JsonPropertyName("groups")] public IReadOnlyList<string>? Groups { get; init; }
    [JsonPropertyName("extra")] public IReadOnlyDictionary<string, IReadOnlyList<string>>? Extra { get; init; }
}

/// <summary>audit.k8s.io/v1 ObjectReference.</summary>
public sealed class AuditObjectReference
{
    [JsonPropertyName("resource")] public string? Resource { get; init; }
    [JsonPropertyName("namespace")] public string? Namespace { get; init; }
    [JsonPropertyName("name")] public string? Name { get; init; }
    [JsonPropertyName("uid")] public string? Uid { get; init; }
    [JsonPropertyName("apiGroup")] public string? ApiGroup { get; init; }
    [JsonPropertyName("apiVersion")] public string? ApiVersion { get; init; }
    [JsonPropertyName("resourceVersion")] public string? ResourceVersion { get; init; }
    [JsonPropertyName("subresource")] public string? Subresource { get; init; }
}

/// <summary>meta/v1 Status as recorded in <c>responseStatus</c> (details kept raw).</summary>
public sealed class AuditResponseStatus
{
    [JsonPropertyName("code")] public int? Code { get; init; }
    [JsonPropertyName("status")] public string? Status { get; init; }
    [JsonPropertyName("reason")] public string? Reason { get; init; }
    [JsonPropertyName("message")] public string? Message { get; init; }
    [JsonPropertyName("details")] public JsonElement? Details { get; init; }
}

/// <summary>The ObjectMeta subset that v1beta1 audit events carried.</summary>
public sealed class AuditLegacyMetadata
{
    [JsonPropertyName("creationTimestamp")] public DateTimeOffset? CreationTimestamp { get; init; }
}

/// <summary>audit.k8s.io/v1 EventList: what the webhook backend POSTs. Items are parsed one by one by the parser.</summary>
public sealed class AuditEventList
{
    [JsonPropertyName("kind")] public string? Kind { get; init; }
    [JsonPropertyName("apiVersion")] public string? ApiVersion { get; init; }
    [JsonPropertyName("items")] public IReadOnlyList<AuditEvent>? Items { get; init; }
}

/// <summary>The wire shape an event was read from.</summary>
public enum AuditSourceFormat
{
    /// <summary>A plain audit.k8s.io Event (log backend line, webhook EventList item, single JSON file).</summary>
    Native = 0,
    /// <summary>Azure AKS diagnostic record: <c>properties.log</c> holds the event as an object or as a JSON string.</summary>
    AksDiagnosticRecord = 1,
    /// <summary>GKE Cloud Logging entry: <c>protoPayload</c> is a google.cloud.audit.AuditLog translated from the event.</summary>
    GkeCloudLogging = 2,
}

/// <summary>Audit stage names (audit.k8s.io/v1 Stage).</summary>
public static class AuditStages
{
    public const string RequestReceived = "RequestReceived";
    public const string ResponseStarted = "ResponseStarted";
    public const string ResponseComplete = "ResponseComplete";
    public const string Panic = "Panic";
}

/// <summary>Audit level names (audit.k8s.io/v1 Level).</summary>
public static class AuditLevels
{
    public const string None = "None";
    public const string Metadata = "Metadata";
    public const string Request = "Request";
    public const string RequestResponse = "RequestResponse";
}
