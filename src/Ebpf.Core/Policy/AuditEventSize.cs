using System.Text.Json;
using Ebpf.Core.Audit;

namespace Ebpf.Core.Policy;

/// <summary>
/// Bytes an audit event takes in the log, split so that its size at a lower level can be estimated:
/// Metadata drops requestObject and responseObject, Request drops responseObject
/// (k8s.io/apiserver/pkg/audit/request.go LogRequestObject/LogResponseObject check the level).
/// </summary>
public readonly record struct AuditEventSize(long Total, long RequestObject, long ResponseObject)
{
    /// <summary>Estimated size at <paramref name="level"/>; can only shrink what the source log holds.</summary>
    public long AtLevel(AuditPolicyLevel level) => level switch
    {
        AuditPolicyLevel.None => 0,
        AuditPolicyLevel.Metadata => Math.Max(0, Total - RequestObject - ResponseObject),
        AuditPolicyLevel.Request => Math.Max(0, Total - ResponseObject),
        _ => Total,
    };

    /// <summary>Measures a native event's JSON: the two object properties (name, value and separator) at top level.</summary>
    public static AuditEventSize Measure(ReadOnlySpan<byte> json)
    {
        long request = 0, response = 0, total = json.Length;
        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 256 });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                return new AuditEventSize(json.Length, 0, 0);
            var objectStart = reader.TokenStartIndex;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var start = reader.TokenStartIndex;
                var isRequest = reader.ValueTextEquals("requestObject"u8);
                var isResponse = !isRequest && reader.ValueTextEquals("responseObject"u8);
                reader.Read();
                reader.Skip();
                if (isRequest || isResponse)
                {
                    // +1 for the comma that separated the property from its neighbour.
                    var length = reader.BytesConsumed - start + 1;
                    if (isRequest) request = length; else response = length;
                }
            }
            // The event as a log line: the object itself, without whitespace around it in the source.
            if (reader.TokenType == JsonTokenType.EndObject)
                total = reader.BytesConsumed - objectStart;
        }
        catch (JsonException)
        {
            // Sizes of an event the parser accepted but we cannot walk: count it whole.
        }
        return new AuditEventSize(total, request, response);
    }

    /// <summary>Sizes of a parsed event: exact for native events, from the parsed objects for cloud envelopes.</summary>
    public static AuditEventSize Of(AuditEvent auditEvent)
    {
        if (auditEvent.SourceFormat == AuditSourceFormat.Native && !auditEvent.RawJson.IsEmpty)
            return Measure(auditEvent.RawJson.Span);
        long request = auditEvent.RequestObject is { } rq ? rq.GetRawText().Length + 17 : 0;
        long response = auditEvent.ResponseObject is { } rs ? rs.GetRawText().Length + 18 : 0;
        return new AuditEventSize(Math.Max(auditEvent.RawJson.Length, request + response), request, response);
    }
}
