using System.Text.Json;

namespace Ebpf.Core.Audit;

/// <summary>
/// Reads one audit.k8s.io Event from UTF-8 JSON with a single forward pass of <see cref="Utf8JsonReader"/>.
/// </summary>
/// <remarks>
/// Hand-written because parsing is the whole cost of ingesting an event (policy evaluation is ~100 ns): the
/// serializer's generic object machinery was about a third of the parse time (5.9 µs → 3.8 µs per 1.3 KB event,
/// measured by bench/Ebpf.Bench.Policy). The accepted language is
/// the serializer's for the same model (<see cref="AuditJsonContext"/> stays as the reference, and a differential test
/// runs both over every fixture and thousands of mutations): case-sensitive names, unknown properties skipped,
/// <c>null</c> for any absent value, no number/string coercion, RFC 3339 timestamps as
/// <see cref="Utf8JsonReader.GetDateTimeOffset"/> reads them, and duplicate names rejected in every object whose
/// names mean something to us (two <c>user</c> keys would let a forger show one identity to us and another to a
/// reader that keeps the last one). Errors name the JSON path and byte position.
/// </remarks>
internal ref struct AuditEventReader
{
    private static readonly Utf8StringCache CommonStrings = new();

    private Utf8JsonReader _reader;
    private readonly ReadOnlySpan<byte> _utf8;
    private readonly int _maxDepth;
    private string _path;
    private int _index;
    private int _offset;

    private AuditEventReader(ReadOnlySpan<byte> utf8, Utf8JsonReader reader, int maxDepth)
    {
        _utf8 = utf8;
        _reader = reader;
        _maxDepth = maxDepth;
        _path = "$";
        _index = -1;
    }

    /// <summary>The event, or null for a JSON <c>null</c>. Throws <see cref="AuditJsonFormatException"/> for anything else that is not an event.</summary>
    public static AuditEvent? Read(ReadOnlySpan<byte> utf8, JsonReaderOptions options)
    {
        var reader = new AuditEventReader(utf8, new Utf8JsonReader(utf8, options), options.MaxDepth);
        try
        {
            reader._reader.Read();
            var ev = reader.ReadEvent();
            reader.End();
            return ev;
        }
        catch (JsonException ex)
        {
            throw reader.SyntaxError(ex);
        }
        catch (InvalidOperationException ex)
        {
            // Utf8JsonReader's Get* methods throw this for token/type mismatches we did not anticipate.
            throw reader.Error(ex.Message);
        }
    }

    /// <summary>
    /// Reads the event at <paramref name="document"/>'s reader position (an EventList item), leaving the reader on its
    /// last token, so a webhook body is read in one pass rather than skipped item by item and then parsed again.
    /// Throws <see cref="AuditJsonFormatException"/> when the item is not an event (the caller skips it from a
    /// snapshot) and <see cref="JsonException"/> when the document itself is not JSON.
    /// </summary>
    public static AuditEvent? ReadItem(ref Utf8JsonReader document, ReadOnlySpan<byte> utf8, int maxDepth)
    {
        // Offsets of bodies are kept relative to the item: they index the item's own RawJson.
        var start = checked((int)document.TokenStartIndex);
        var reader = new AuditEventReader(utf8[start..], document, maxDepth) { _offset = start };
        try
        {
            var ev = reader.ReadEvent();
            document = reader._reader;
            return ev;
        }
        catch (InvalidOperationException ex)
        {
            throw reader.Error(ex.Message);
        }
    }

    private AuditEvent? ReadEvent()
    {
        if (_reader.TokenType == JsonTokenType.Null)
        {
            return null;
        }

        if (_reader.TokenType != JsonTokenType.StartObject)
        {
            throw Mismatch("an audit event object");
        }

        string? kind = null, apiVersion = null, level = null, auditId = null, stage = null, requestUri = null, verb = null, userAgent = null;
        AuditUserInfo? user = null, impersonatedUser = null;
        List<string>? sourceIps = null;
        AuditObjectReference? objectRef = null;
        AuditResponseStatus? responseStatus = null;
        RawJsonValue? requestObject = null, responseObject = null;
        DateTimeOffset? requestReceived = null, stageTimestamp = null, timestamp = null;
        Dictionary<string, string>? annotations = null;
        AuditLegacyMetadata? metadata = null;

        var seen = 0;
        while (NextProperty("$", out var field, EventFields))
        {
            var f = (EventField)field;
            MarkSeen(ref seen, field, EventFields);
            _path = field >= 0 ? EventPaths[field] : "$";
            switch (f)
            {
                case EventField.Kind: kind = ReadCommonString(); break;
                case EventField.ApiVersion: apiVersion = ReadCommonString(); break;
                case EventField.Level: level = ReadCommonString(); break;
                case EventField.AuditId: auditId = ReadString(); break;
                case EventField.Stage: stage = ReadCommonString(); break;
                case EventField.RequestUri: requestUri = ReadString(); break;
                case EventField.Verb: verb = ReadCommonString(); break;
                case EventField.User: user = ReadUser(UserPaths); break;
                case EventField.ImpersonatedUser: impersonatedUser = ReadUser(ImpersonatedUserPaths); break;
                case EventField.SourceIps: sourceIps = ReadStringList(); break;
                case EventField.UserAgent: userAgent = ReadCommonString(); break;
                case EventField.ObjectRef: objectRef = ReadObjectReference(); break;
                case EventField.ResponseStatus: responseStatus = ReadResponseStatus(); break;
                case EventField.RequestObject: requestObject = ReadRaw(); break;
                case EventField.ResponseObject: responseObject = ReadRaw(); break;
                case EventField.RequestReceivedTimestamp: requestReceived = ReadTimestamp(); break;
                case EventField.StageTimestamp: stageTimestamp = ReadTimestamp(); break;
                case EventField.Annotations: annotations = ReadStringMap(); break;
                case EventField.Timestamp: timestamp = ReadTimestamp(); break;
                case EventField.Metadata: metadata = ReadLegacyMetadata(); break;
                default: _reader.Skip(); break;
            }

            _path = "$";
        }

        return new AuditEvent
        {
            Kind = kind,
            ApiVersion = apiVersion,
            Level = level,
            AuditId = auditId,
            Stage = stage,
            RequestUri = requestUri,
            Verb = verb,
            User = user,
            ImpersonatedUser = impersonatedUser,
            SourceIps = sourceIps,
            UserAgent = userAgent,
            ObjectRef = objectRef,
            ResponseStatus = responseStatus,
            RequestObjectJson = requestObject,
            ResponseObjectJson = responseObject,
            RequestReceivedTimestamp = requestReceived,
            StageTimestamp = stageTimestamp,
            Annotations = annotations,
            Timestamp = timestamp,
            Metadata = metadata,
        };
    }

    private AuditUserInfo? ReadUser(string[] paths)
    {
        if (!HasValue(JsonTokenType.StartObject, "an object (UserInfo)"))
        {
            return null;
        }

        var parent = _path;
        string? username = null, uid = null;
        List<string>? groups = null;
        Dictionary<string, IReadOnlyList<string>>? extra = null;
        var seen = 0;
        while (NextProperty(parent, out var field, UserFields))
        {
            MarkSeen(ref seen, field, UserFields);
            _path = field >= 0 ? paths[field] : parent;
            switch ((UserField)field)
            {
                case UserField.Username: username = ReadCommonString(); break;
                case UserField.Uid: uid = ReadString(); break;
                case UserField.Groups: groups = ReadStringList(); break;
                case UserField.Extra: extra = ReadExtra(); break;
                default: _reader.Skip(); break;
            }

            _path = parent;
        }

        return new AuditUserInfo { Username = username, Uid = uid, Groups = groups, Extra = extra };
    }

    private AuditObjectReference? ReadObjectReference()
    {
        if (!HasValue(JsonTokenType.StartObject, "an object (ObjectReference)"))
        {
            return null;
        }

        string? resource = null, ns = null, name = null, uid = null, apiGroup = null, apiVersion = null, resourceVersion = null, subresource = null;
        var seen = 0;
        while (NextProperty("$.objectRef", out var field, ObjectRefFields))
        {
            MarkSeen(ref seen, field, ObjectRefFields);
            _path = field >= 0 ? ObjectRefPaths[field] : "$.objectRef";
            switch ((ObjectRefField)field)
            {
                case ObjectRefField.Resource: resource = ReadCommonString(); break;
                case ObjectRefField.Namespace: ns = ReadCommonString(); break;
                case ObjectRefField.Name: name = ReadString(); break;
                case ObjectRefField.Uid: uid = ReadString(); break;
                case ObjectRefField.ApiGroup: apiGroup = ReadCommonString(); break;
                case ObjectRefField.ApiVersion: apiVersion = ReadCommonString(); break;
                case ObjectRefField.ResourceVersion: resourceVersion = ReadString(); break;
                case ObjectRefField.Subresource: subresource = ReadCommonString(); break;
                default: _reader.Skip(); break;
            }

            _path = "$.objectRef";
        }

        return new AuditObjectReference
        {
            Resource = resource,
            Namespace = ns,
            Name = name,
            Uid = uid,
            ApiGroup = apiGroup,
            ApiVersion = apiVersion,
            ResourceVersion = resourceVersion,
            Subresource = subresource,
        };
    }

    private AuditResponseStatus? ReadResponseStatus()
    {
        if (!HasValue(JsonTokenType.StartObject, "an object (Status)"))
        {
            return null;
        }

        int? code = null;
        string? status = null, reason = null, message = null;
        JsonElement? details = null;
        var seen = 0;
        while (NextProperty("$.responseStatus", out var field, StatusFields))
        {
            MarkSeen(ref seen, field, StatusFields);
            _path = field >= 0 ? StatusPaths[field] : "$.responseStatus";
            switch ((StatusField)field)
            {
                case StatusField.Code: code = ReadInt32(); break;
                case StatusField.Status: status = ReadCommonString(); break;
                case StatusField.Reason: reason = ReadCommonString(); break;
                case StatusField.Message: message = ReadString(); break;
                case StatusField.Details: details = ReadRaw() is { } raw ? raw.ToElement(_utf8) : null; break;
                default: _reader.Skip(); break;
            }

            _path = "$.responseStatus";
        }

        return new AuditResponseStatus { Code = code, Status = status, Reason = reason, Message = message, Details = details };
    }

    private AuditLegacyMetadata? ReadLegacyMetadata()
    {
        if (!HasValue(JsonTokenType.StartObject, "an object (ObjectMeta)"))
        {
            return null;
        }

        DateTimeOffset? created = null;
        var seen = 0;
        while (NextProperty("$.metadata", out var field, MetadataFields))
        {
            MarkSeen(ref seen, field, MetadataFields);
            if (field == 0)
            {
                _path = "$.metadata.creationTimestamp";
                created = ReadTimestamp();
                _path = "$.metadata";
            }
            else
            {
                _reader.Skip();
            }
        }

        return new AuditLegacyMetadata { CreationTimestamp = created };
    }

    /// <summary>user.extra: map of string lists; names are free-form, so duplicates are found with a set.</summary>
    private Dictionary<string, IReadOnlyList<string>>? ReadExtra()
    {
        if (!HasValue(JsonTokenType.StartObject, "an object (map of string lists)"))
        {
            return null;
        }

        var map = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        while (_reader.Read() && _reader.TokenType == JsonTokenType.PropertyName)
        {
            var key = ReadCommonName();
            _reader.Read();
            if (!map.TryAdd(key, ReadStringList()!))
            {
                throw Error($"duplicate key '{Truncate(key)}'");
            }
        }

        return map;
    }

    private Dictionary<string, string>? ReadStringMap()
    {
        if (!HasValue(JsonTokenType.StartObject, "an object (map of strings)"))
        {
            return null;
        }

        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        while (_reader.Read() && _reader.TokenType == JsonTokenType.PropertyName)
        {
            var key = ReadCommonName();
            _reader.Read();
            if (!map.TryAdd(key, ReadCommonString()!))
            {
                throw Error($"duplicate key '{Truncate(key)}'");
            }
        }

        return map;
    }

    private List<string>? ReadStringList()
    {
        if (!HasValue(JsonTokenType.StartArray, "an array of strings"))
        {
            return null;
        }

        var list = new List<string>();
        _index = 0;
        while (_reader.Read() && _reader.TokenType != JsonTokenType.EndArray)
        {
            list.Add(ReadCommonString()!);
            _index++;
        }

        _index = -1;
        return list;
    }

    private string? ReadString() => _reader.TokenType switch
    {
        JsonTokenType.String => _reader.GetString(),
        JsonTokenType.Null => null,
        _ => throw Mismatch("a string"),
    };

    private string ReadCommonName()
        => !_reader.ValueIsEscaped && !_reader.HasValueSequence ? CommonStrings.Get(_reader.ValueSpan) : _reader.GetString()!;

    /// <summary>A string from a small set that repeats across events (verbs, groups, resources...): decoded once, shared.</summary>
    private string? ReadCommonString() => _reader.TokenType switch
    {
        JsonTokenType.String when !_reader.ValueIsEscaped && !_reader.HasValueSequence => CommonStrings.Get(_reader.ValueSpan),
        JsonTokenType.String => _reader.GetString(),
        JsonTokenType.Null => null,
        _ => throw Mismatch("a string"),
    };

    private int? ReadInt32()
    {
        if (!HasValue(JsonTokenType.Number, "an integer"))
        {
            return null;
        }

        return _reader.TryGetInt32(out var value) ? value : throw Error("number is not a 32-bit integer");
    }

    private DateTimeOffset? ReadTimestamp()
    {
        if (!HasValue(JsonTokenType.String, "an RFC 3339 timestamp string"))
        {
            return null;
        }

        return _reader.TryGetDateTimeOffset(out var value) ? value : throw Error("not an RFC 3339 timestamp");
    }

    /// <summary>
    /// A request/response body: checked (syntax, depth, unique names) but kept as its byte range. When the quick
    /// uniqueness check cannot decide, the body is parsed into a detached element with duplicates rejected.
    /// </summary>
    private RawJsonValue? ReadRaw()
    {
        if (_reader.TokenType == JsonTokenType.Null)
        {
            return null;
        }

        var start = checked((int)_reader.TokenStartIndex) - _offset;
        if (_reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
        {
            var snapshot = _reader;
            if (!RawJsonValue.SkipWithUniqueNames(ref _reader))
            {
                _reader = snapshot;
                _reader.Skip();
                var slice = _utf8[start..(checked((int)_reader.BytesConsumed) - _offset)].ToArray();
                var options = new JsonDocumentOptions { AllowDuplicateProperties = false, MaxDepth = _maxDepth };
                try
                {
                    using var document = JsonDocument.Parse(slice, options);
                    return new RawJsonValue(document.RootElement.Clone());
                }
                catch (JsonException ex)
                {
                    // The syntax is fine (the reader just walked it): this is a duplicate name, a fault of the event.
                    throw Error(CutPosition(ex.Message));
                }
            }
        }

        return new RawJsonValue(start, checked((int)_reader.BytesConsumed) - _offset - start);
    }

    /// <summary>
    /// Moves to the next property of the current object and identifies its name among <paramref name="names"/>
    /// (-1 when unknown), positioned on its value. False at the end of the object.
    /// </summary>
    private bool NextProperty(string objectPath, out int field, byte[][] names)
    {
        _path = objectPath;
        if (!_reader.Read() || _reader.TokenType != JsonTokenType.PropertyName)
        {
            field = -1;
            return false;
        }

        field = Match(names);
        _reader.Read();
        return true;
    }

    private readonly int Match(byte[][] names)
    {
        if (_reader.ValueIsEscaped)
        {
            // Rare: "\u0075ser" is "user" to every JSON reader, so compare unescaped.
            Span<byte> buffer = stackalloc byte[64];
            var name = _reader.ValueSpan.Length <= buffer.Length ? buffer : new byte[_reader.ValueSpan.Length];
            var written = _reader.CopyString(name);
            return IndexOf(names, name[..written]);
        }

        return IndexOf(names, _reader.ValueSpan);
    }

    private static int IndexOf(byte[][] names, ReadOnlySpan<byte> name)
    {
        for (var i = 0; i < names.Length; i++)
        {
            // Lengths differ for most candidates, so this is mostly one integer compare each.
            if (names[i].Length == name.Length && name.SequenceEqual(names[i]))
            {
                return i;
            }
        }

        return -1;
    }

    private void MarkSeen(ref int seen, int field, byte[][] names)
    {
        if (field < 0)
        {
            return;
        }

        var bit = 1 << field;
        if ((seen & bit) != 0)
        {
            throw Error($"duplicate property '{System.Text.Encoding.UTF8.GetString(names[field])}'");
        }

        seen |= bit;
    }

    /// <summary>False for a JSON null (every field is optional); throws unless the value is of the expected kind.</summary>
    private readonly bool HasValue(JsonTokenType expected, string description)
        => _reader.TokenType == expected || (_reader.TokenType != JsonTokenType.Null ? throw Mismatch(description) : false);

    private void End()
    {
        // Throws for anything but whitespace after the value ("... is invalid after a single JSON value").
        _path = "$";
        if (_reader.Read())
        {
            throw Error("trailing data after the event");
        }
    }

    private readonly AuditJsonFormatException Mismatch(string expected)
        => Error($"expected {expected}, found {Describe(_reader.TokenType)}");

    private readonly AuditJsonFormatException Error(string message)
        => new(CurrentPath, $"(byte {_reader.TokenStartIndex - _offset})", message);

    private readonly AuditJsonFormatException SyntaxError(JsonException ex)
    {
        var message = CutPosition(ex.Message);
        var position = ex.LineNumber is > 0 ? $"(line {ex.LineNumber + 1}, byte {ex.BytePositionInLine})" : $"(byte {ex.BytePositionInLine})";
        return new AuditJsonFormatException(CurrentPath, position, message);
    }

    /// <summary>The reader's message without its "LineNumber: … | BytePositionInLine: …" tail (we say where ourselves).</summary>
    private static string CutPosition(string message)
    {
        var cut = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        return cut > 0 ? message[..cut] : message;
    }

    private readonly string CurrentPath => _index >= 0 ? $"{_path}[{_index}]" : _path;

    private static string Describe(JsonTokenType token) => token switch
    {
        JsonTokenType.String => "a string",
        JsonTokenType.Number => "a number",
        JsonTokenType.StartObject => "an object",
        JsonTokenType.StartArray => "an array",
        JsonTokenType.True or JsonTokenType.False => "a boolean",
        JsonTokenType.Null => "null",
        _ => token.ToString(),
    };

    private static string Truncate(string s) => s.Length <= 64 ? s : string.Concat(s.AsSpan(0, 64), "…");

    // Property names as the API server writes them (k8s.io/apiserver/pkg/apis/audit/v1/types.go); the order of each
    // table is its enum's order.
    private enum EventField
    {
        Kind, ApiVersion, Level, AuditId, Stage, RequestUri, Verb, User, ImpersonatedUser, SourceIps, UserAgent, ObjectRef,
        ResponseStatus, RequestObject, ResponseObject, RequestReceivedTimestamp, StageTimestamp, Annotations, Timestamp, Metadata,
    }

    private static readonly byte[][] EventFields =
    [
        "kind"u8.ToArray(), "apiVersion"u8.ToArray(), "level"u8.ToArray(), "auditID"u8.ToArray(), "stage"u8.ToArray(),
        "requestURI"u8.ToArray(), "verb"u8.ToArray(), "user"u8.ToArray(), "impersonatedUser"u8.ToArray(), "sourceIPs"u8.ToArray(),
        "userAgent"u8.ToArray(), "objectRef"u8.ToArray(), "responseStatus"u8.ToArray(), "requestObject"u8.ToArray(),
        "responseObject"u8.ToArray(), "requestReceivedTimestamp"u8.ToArray(), "stageTimestamp"u8.ToArray(),
        "annotations"u8.ToArray(), "timestamp"u8.ToArray(), "metadata"u8.ToArray(),
    ];

    private static readonly string[] EventPaths = Paths("$", EventFields);

    private enum UserField { Username, Uid, Groups, Extra }

    private static readonly byte[][] UserFields = ["username"u8.ToArray(), "uid"u8.ToArray(), "groups"u8.ToArray(), "extra"u8.ToArray()];
    private static readonly string[] UserPaths = Paths("$.user", UserFields);
    private static readonly string[] ImpersonatedUserPaths = Paths("$.impersonatedUser", UserFields);

    private enum ObjectRefField { Resource, Namespace, Name, Uid, ApiGroup, ApiVersion, ResourceVersion, Subresource }

    private static readonly byte[][] ObjectRefFields =
    [
        "resource"u8.ToArray(), "namespace"u8.ToArray(), "name"u8.ToArray(), "uid"u8.ToArray(), "apiGroup"u8.ToArray(),
        "apiVersion"u8.ToArray(), "resourceVersion"u8.ToArray(), "subresource"u8.ToArray(),
    ];

    private static readonly string[] ObjectRefPaths = Paths("$.objectRef", ObjectRefFields);

    private enum StatusField { Code, Status, Reason, Message, Details }

    private static readonly byte[][] StatusFields = ["code"u8.ToArray(), "status"u8.ToArray(), "reason"u8.ToArray(), "message"u8.ToArray(), "details"u8.ToArray()];
    private static readonly string[] StatusPaths = Paths("$.responseStatus", StatusFields);

    private static readonly byte[][] MetadataFields = ["creationTimestamp"u8.ToArray()];

    private static string[] Paths(string parent, byte[][] names)
        => Array.ConvertAll(names, n => parent + "." + System.Text.Encoding.UTF8.GetString(n));
}

/// <summary>Why a JSON text is not an audit event, with the JSON path and position of the offending value.</summary>
internal sealed class AuditJsonFormatException(string path, string position, string reason) : Exception($"invalid JSON at {path} {position}: {reason}")
{
    public string JsonPath { get; } = path;
}
