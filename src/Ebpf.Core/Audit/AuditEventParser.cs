using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using System.Text.Unicode;

namespace Ebpf.Core.Audit;

/// <summary>
/// Parses audit events from every shape we ingest: a single Event, an EventList (webhook body), JSON lines (log
/// backend), and cloud envelopes (AKS diagnostic records, GKE Cloud Logging entries). Never throws on input: every
/// failure becomes a rejection with a location. Thread-safe; create one per configuration and share it.
/// </summary>
public sealed class AuditEventParser
{
    private static readonly string[] KnownApiVersions = ["audit.k8s.io/v1", "audit.k8s.io/v1beta1", "audit.k8s.io/v1alpha1"];

    private readonly AuditParserOptions _options;
    private readonly JsonReaderOptions _readerOptions;
    private readonly JsonTypeInfo<AksDiagnosticRecord> _aksInfo;
    private readonly JsonTypeInfo<GkeLogEntry> _gkeInfo;

    public AuditEventParser(AuditParserOptions? options = null)
    {
        _options = options ?? new AuditParserOptions();
        _options.Validate();
        _readerOptions = new JsonReaderOptions { MaxDepth = _options.MaxDepth, CommentHandling = JsonCommentHandling.Disallow };
        var context = new AuditJsonContext(new JsonSerializerOptions
        {
            MaxDepth = _options.MaxDepth,
            // Two "user" keys in one event would let a forger show one identity to us and another to other readers.
            AllowDuplicateProperties = false,
        });
        _aksInfo = context.AksDiagnosticRecord;
        _gkeInfo = context.GkeLogEntry;
    }

    public AuditParserOptions Options => _options;

    /// <summary>Parses one native audit.k8s.io Event (no envelope).</summary>
    public AuditParseItem ParseEvent(ReadOnlySpan<byte> utf8, string location = "$")
    {
        var precheck = Precheck(utf8, _options.MaxEventBytes);
        return precheck is not null ? Reject(location, precheck) : ParseNative(utf8, location, AuditSourceFormat.Native);
    }

    /// <summary>
    /// Parses one record as found in a log line or file: a native Event, an AKS diagnostic record or a GKE Cloud
    /// Logging entry. Anything else is rejected with the reason.
    /// </summary>
    public AuditParseItem ParseRecord(ReadOnlySpan<byte> utf8, string location = "$")
    {
        var precheck = Precheck(utf8, _options.MaxEventBytes);
        if (precheck is not null)
        {
            return Reject(location, precheck);
        }

        RecordShape shape;
        try
        {
            shape = DetectShape(utf8);
        }
        catch (JsonException ex)
        {
            return Reject(location, Describe(ex));
        }
        catch (InvalidOperationException ex)
        {
            return Reject(location, ex.Message);
        }

        return shape switch
        {
            RecordShape.Aks => ParseAks(utf8, location),
            RecordShape.Gke => ParseGke(utf8, location),
            RecordShape.EventList => Reject(location, "an EventList where a single event was expected"),
            RecordShape.NotObject => Reject(location, "not a JSON object"),
            _ => ParseNative(utf8, location, AuditSourceFormat.Native),
        };
    }

    /// <summary>Parses an audit.k8s.io EventList (what kube-apiserver's webhook backend POSTs), item by item.</summary>
    public AuditParseBatch ParseEventList(ReadOnlySpan<byte> utf8)
    {
        var precheck = Precheck(utf8, _options.MaxDocumentBytes);
        if (precheck is not null)
        {
            return new AuditParseBatch([], precheck);
        }

        var items = new List<AuditParseItem>();
        try
        {
            var reader = new Utf8JsonReader(utf8, _readerOptions);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return new AuditParseBatch([], "body is not a JSON object (expected an audit.k8s.io EventList)");
            }

            var sawItems = false;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var name = reader.GetString();
                reader.Read();
                switch (name)
                {
                    case "kind":
                        if (reader.TokenType != JsonTokenType.String || reader.GetString() != "EventList")
                        {
                            return new AuditParseBatch([], $"kind is {Describe(ref reader)}, expected \"EventList\"");
                        }

                        break;
                    case "apiVersion":
                        if (reader.TokenType != JsonTokenType.String || Array.IndexOf(KnownApiVersions, reader.GetString()) < 0)
                        {
                            return new AuditParseBatch([], $"apiVersion is {Describe(ref reader)}, expected audit.k8s.io/v1");
                        }

                        break;
                    case "items":
                        if (sawItems)
                        {
                            return new AuditParseBatch([], "duplicate \"items\" property");
                        }

                        sawItems = true;
                        if (reader.TokenType == JsonTokenType.Null)
                        {
                            break;
                        }

                        if (reader.TokenType != JsonTokenType.StartArray)
                        {
                            return new AuditParseBatch([], $"items is {Describe(ref reader)}, expected an array");
                        }

                        var index = 0;
                        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                        {
                            if (index == _options.MaxListItems)
                            {
                                return new AuditParseBatch([], $"more than {_options.MaxListItems} items in the EventList");
                            }

                            items.Add(ParseListItem(ref reader, utf8, $"items[{index++}]"));
                        }

                        break;
                    default:
                        reader.Skip();
                        break;
                }
            }

            if (reader.TokenType != JsonTokenType.EndObject || reader.Read())
            {
                return new AuditParseBatch([], "trailing data after the EventList object");
            }

            if (!sawItems)
            {
                return new AuditParseBatch([], "no \"items\" property: not an EventList");
            }
        }
        catch (JsonException ex)
        {
            return new AuditParseBatch([], Describe(ex));
        }
        catch (InvalidOperationException ex)
        {
            return new AuditParseBatch([], ex.Message);
        }

        return new AuditParseBatch(items, null);
    }

    /// <summary>Parses JSON lines (log backend format, also AKS/GKE exports). Blank lines are skipped; locations are "source:line".</summary>
    public AuditParseBatch ParseJsonLines(ReadOnlySpan<byte> utf8, string source = "stdin")
    {
        if (utf8.Length > _options.MaxDocumentBytes)
        {
            return new AuditParseBatch([], $"document is {utf8.Length} bytes, over the {_options.MaxDocumentBytes}-byte limit");
        }

        var items = new List<AuditParseItem>();
        var lineNumber = 0;
        while (!utf8.IsEmpty)
        {
            lineNumber++;
            var newline = utf8.IndexOf((byte)'\n');
            var line = newline < 0 ? utf8 : utf8[..newline];
            utf8 = newline < 0 ? [] : utf8[(newline + 1)..];
            var item = ParseLine(line, source, lineNumber);
            if (item is not null)
            {
                items.Add(item);
            }
        }

        return new AuditParseBatch(items, null);
    }

    /// <summary>
    /// Parses one log line (without its '\n'); the location is "source:position", position being the line number
    /// (importer) or the byte offset of the line in the file (tailer). Returns null for a blank line.
    /// </summary>
    public AuditParseItem? ParseLine(ReadOnlySpan<byte> line, string source, long position)
    {
        if (!line.IsEmpty && line[^1] == (byte)'\r')
        {
            line = line[..^1];
        }

        if (line.Trim(" \t"u8).IsEmpty)
        {
            return null;
        }

        return ParseRecord(line, $"{source}:{position}");
    }

    /// <summary>
    /// Parses a whole file's content: one JSON value (Event, EventList or envelope) or JSON lines. Used for
    /// one-off files such as fixtures; streams go through <see cref="ParseLine"/>.
    /// </summary>
    public AuditParseBatch ParseDocument(ReadOnlySpan<byte> utf8, string source = "document")
    {
        var precheck = Precheck(utf8, _options.MaxDocumentBytes);
        if (precheck is not null)
        {
            return new AuditParseBatch([], precheck);
        }

        RecordShape shape;
        bool singleValue;
        try
        {
            var reader = new Utf8JsonReader(utf8, _readerOptions);
            reader.Read();
            reader.Skip();
            singleValue = !reader.Read();
            shape = singleValue ? DetectShape(utf8) : RecordShape.Native;
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            singleValue = false;
            shape = RecordShape.Native;
        }

        if (!singleValue)
        {
            return ParseJsonLines(utf8, source);
        }

        if (shape == RecordShape.EventList)
        {
            return ParseEventList(utf8);
        }

        return new AuditParseBatch([ParseRecord(utf8, source)], null);
    }

    private string? Precheck(ReadOnlySpan<byte> utf8, int limit)
    {
        if (utf8.Length > limit)
        {
            return $"input is {utf8.Length} bytes, over the {limit}-byte limit";
        }

        if (utf8.IsEmpty)
        {
            return "empty input";
        }

        // Utf8JsonReader does not validate string contents until they are read; reject up front so the stored raw JSON is valid text.
        if (!Utf8.IsValid(utf8))
        {
            return "input is not valid UTF-8";
        }

        return null;
    }

    private enum RecordShape { Native, Aks, Gke, EventList, NotObject }

    private RecordShape DetectShape(ReadOnlySpan<byte> utf8)
    {
        var reader = new Utf8JsonReader(utf8, _readerOptions);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            return RecordShape.NotObject;
        }

        bool protoPayload = false, properties = false, category = false, eventList = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("protoPayload"u8))
            {
                protoPayload = true;
            }
            else if (reader.ValueTextEquals("properties"u8))
            {
                properties = true;
            }
            else if (reader.ValueTextEquals("category"u8))
            {
                category = true;
            }
            else if (reader.ValueTextEquals("kind"u8))
            {
                reader.Read();
                eventList = reader.TokenType == JsonTokenType.String && reader.ValueTextEquals("EventList"u8);
                if (reader.TokenType == JsonTokenType.String && reader.ValueTextEquals("Event"u8))
                {
                    return RecordShape.Native; // the API server writes kind first: skip scanning the rest
                }

                continue;
            }
            else if (reader.ValueTextEquals("auditID"u8))
            {
                return RecordShape.Native; // envelopes never carry a top-level auditID
            }

            reader.Read();
            reader.Skip();
        }

        return eventList ? RecordShape.EventList
            : protoPayload ? RecordShape.Gke
            : properties && category ? RecordShape.Aks
            : RecordShape.Native;
    }

    private AuditParseItem ParseNative(ReadOnlySpan<byte> utf8, string location, AuditSourceFormat format)
    {
        AuditEvent? ev;
        try
        {
            ev = AuditEventReader.Read(utf8, _readerOptions);
        }
        catch (AuditJsonFormatException ex)
        {
            return Reject(location, ex.Message);
        }

        return Accept(ev, utf8, location, format);
    }

    /// <summary>
    /// One EventList item, read in the same pass as the list. An item that is JSON but not an event is skipped from
    /// a snapshot and rejected alone; broken JSON throws and spoils the document (its end cannot be found).
    /// </summary>
    private AuditParseItem ParseListItem(ref Utf8JsonReader reader, ReadOnlySpan<byte> utf8, string location)
    {
        var start = checked((int)reader.TokenStartIndex);
        var snapshot = reader;
        AuditEvent? ev = null;
        string? rejection = null;
        try
        {
            ev = AuditEventReader.ReadItem(ref reader, utf8, _options.MaxDepth);
        }
        catch (AuditJsonFormatException ex)
        {
            reader = snapshot;
            reader.Skip();
            rejection = ex.Message;
        }

        var item = utf8[start..checked((int)reader.BytesConsumed)];
        return item.Length > _options.MaxEventBytes ? Reject(location, $"event is {item.Length} bytes, over the {_options.MaxEventBytes}-byte limit")
            : rejection is not null ? Reject(location, rejection)
            : Accept(ev, item, location, AuditSourceFormat.Native);
    }

    private AuditParseItem Accept(AuditEvent? ev, ReadOnlySpan<byte> utf8, string location, AuditSourceFormat format)
    {
        if (ev is null)
        {
            return Reject(location, "null is not an audit event");
        }

        var invalid = Validate(ev);
        if (invalid is not null)
        {
            return Reject(location, invalid);
        }

        ev.RawJson = utf8.ToArray();
        ev.SourceFormat = format;
        return new AuditParseItem(location, ev, null);
    }

    private AuditParseItem ParseAks(ReadOnlySpan<byte> utf8, string location)
    {
        AksDiagnosticRecord? record;
        try
        {
            record = JsonSerializer.Deserialize(utf8, _aksInfo);
        }
        catch (JsonException ex)
        {
            return Reject(location, "AKS diagnostic record: " + Describe(ex));
        }

        if (record?.Category is not { } category || !category.StartsWith("kube-audit", StringComparison.Ordinal))
        {
            return Reject(location, $"Azure diagnostic record of category '{record?.Category}' does not carry a Kubernetes audit event (expected kube-audit or kube-audit-admin)");
        }

        var innerLocation = location + "#properties.log";
        switch (record.Properties?.Log)
        {
            case { ValueKind: JsonValueKind.Object } obj:
                {
                    var item = ParseNative(System.Runtime.InteropServices.JsonMarshal.GetRawUtf8Value(obj), innerLocation, AuditSourceFormat.AksDiagnosticRecord);
                    return item.Event is not null ? item with { Location = location } : item;
                }

            case { ValueKind: JsonValueKind.String } text:
                {
                    // kube-audit writes the API server's log line verbatim, so the event is JSON text inside a JSON string.
                    var bytes = Encoding.UTF8.GetBytes(text.GetString()!);
                    var precheck = Precheck(bytes, _options.MaxEventBytes);
                    if (precheck is not null)
                    {
                        return Reject(innerLocation, precheck);
                    }

                    var item = ParseNative(bytes.AsSpan().TrimEnd("\r\n"u8), innerLocation, AuditSourceFormat.AksDiagnosticRecord);
                    return item.Event is not null ? item with { Location = location } : item;
                }

            default:
                return Reject(innerLocation, "AKS diagnostic record without properties.log object or string");
        }
    }

    private AuditParseItem ParseGke(ReadOnlySpan<byte> utf8, string location)
    {
        GkeLogEntry? entry;
        try
        {
            entry = JsonSerializer.Deserialize(utf8, _gkeInfo);
        }
        catch (JsonException ex)
        {
            return Reject(location, "Cloud Logging entry: " + Describe(ex));
        }

        var payload = entry?.ProtoPayload;
        if (payload is null || payload.Type != "type.googleapis.com/google.cloud.audit.AuditLog" || payload.ServiceName != "k8s.io")
        {
            return Reject(location, $"Cloud Logging entry is not a GKE Kubernetes audit log (protoPayload @type '{payload?.Type}', serviceName '{payload?.ServiceName}')");
        }

        var ev = GkeTranslation.ToAuditEvent(entry!, payload);
        var invalid = Validate(ev);
        if (invalid is not null)
        {
            return Reject(location, "Cloud Logging entry: " + invalid);
        }

        ev.RawJson = utf8.ToArray();
        ev.SourceFormat = AuditSourceFormat.GkeCloudLogging;
        return new AuditParseItem(location, ev, null);
    }

    private string? Validate(AuditEvent ev)
    {
        if (ev.Kind is not null && ev.Kind != "Event")
        {
            return $"kind is '{Truncate(ev.Kind)}', expected 'Event'";
        }

        if (ev.ApiVersion is not null && Array.IndexOf(KnownApiVersions, ev.ApiVersion) < 0)
        {
            return $"apiVersion '{Truncate(ev.ApiVersion)}' is not an audit.k8s.io version";
        }

        if (string.IsNullOrEmpty(ev.AuditId))
        {
            return "missing auditID: not an audit event";
        }

        if (ev.AuditId.Length > _options.MaxAuditIdLength)
        {
            return $"auditID is {ev.AuditId.Length} characters, over the {_options.MaxAuditIdLength} limit";
        }

        if (ev.Stage is not (AuditStages.RequestReceived or AuditStages.ResponseStarted or AuditStages.ResponseComplete or AuditStages.Panic))
        {
            return ev.Stage is null ? "missing stage" : $"unknown stage '{Truncate(ev.Stage)}'";
        }

        if (string.IsNullOrEmpty(ev.Verb))
        {
            return "missing verb";
        }

        if (ev.StageTimestamp is null && ev.Timestamp is null && ev.Metadata?.CreationTimestamp is null)
        {
            return "no timestamp (stageTimestamp, or timestamp in v1beta1)";
        }

        return CheckTime("stageTimestamp", ev.StageTimestamp)
            ?? CheckTime("requestReceivedTimestamp", ev.RequestReceivedTimestamp)
            ?? CheckTime("timestamp", ev.Timestamp)
            ?? CheckTime("metadata.creationTimestamp", ev.Metadata?.CreationTimestamp);
    }

    private string? CheckTime(string field, DateTimeOffset? value)
        => value is { } t && (t < _options.MinTimestamp || t > _options.MaxTimestamp)
            ? $"{field} {t:O} is outside {_options.MinTimestamp:yyyy-MM-dd}..{_options.MaxTimestamp:yyyy-MM-dd}"
            : null;

    private static AuditParseItem Reject(string location, string reason) => new(location, null, reason);

    private static string Describe(JsonException ex)
    {
        var where = ex.Path is { Length: > 0 } path ? $" at {path}" : string.Empty;
        var position = ex.BytePositionInLine is { } b ? $" (byte {b})" : string.Empty;
        var message = ex.Message;
        var cut = message.IndexOf(" Path:", StringComparison.Ordinal);
        if (cut > 0)
        {
            message = message[..cut];
        }

        return $"invalid JSON{where}{position}: {message}";
    }

    private static string Describe(ref Utf8JsonReader reader) => reader.TokenType switch
    {
        JsonTokenType.String => $"\"{Truncate(reader.GetString() ?? string.Empty)}\"",
        JsonTokenType.Number => "a number",
        JsonTokenType.StartObject => "an object",
        JsonTokenType.StartArray => "an array",
        JsonTokenType.True or JsonTokenType.False => "a boolean",
        JsonTokenType.Null => "null",
        _ => reader.TokenType.ToString(),
    };

    private static string Truncate(string s) => s.Length <= 64 ? s : string.Concat(s.AsSpan(0, 64), "…");
}
