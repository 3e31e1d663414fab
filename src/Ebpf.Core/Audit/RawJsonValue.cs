using System.Text.Json;
using System.Text.Json.Serialization;

namespace Ebpf.Core.Audit;

/// <summary>
/// Where a request/response body sits inside the event's raw JSON, recorded while deserializing so the body is only
/// turned into a <see cref="JsonElement"/> when someone reads it. Most events are never asked for their bodies, and
/// building a detached JsonDocument per body was the largest single cost of parsing.
/// </summary>
[JsonConverter(typeof(RawJsonValueConverter))]
internal readonly struct RawJsonValue
{
    private readonly int _start;
    private readonly int _length;
    private readonly JsonElement? _parsed;

    public RawJsonValue(int start, int length)
    {
        _start = start;
        _length = length;
    }

    public RawJsonValue(JsonElement parsed) => _parsed = parsed;

    /// <summary>The body as a detached element; <paramref name="rawJson"/> must be the bytes the event was deserialized from.</summary>
    public JsonElement ToElement(ReadOnlySpan<byte> rawJson)
    {
        if (_parsed is { } parsed)
        {
            return parsed;
        }

        // Syntax, depth and duplicate names were all checked while deserializing, so this cannot fail.
        var reader = new Utf8JsonReader(rawJson.Slice(_start, _length), new JsonReaderOptions { MaxDepth = int.MaxValue });
        return JsonElement.ParseValue(ref reader);
    }

    [ThreadStatic] private static HashSet<int>? t_names;
    [ThreadStatic] private static Stack<long>? t_objects;

    /// <summary>Reads to the end of the current object/array; false when some object might repeat a property name.</summary>
    internal static bool SkipWithUniqueNames(ref Utf8JsonReader reader)
    {
        if (reader.HasValueSequence)
        {
            return false;
        }

        var names = t_names ??= [];
        var objects = t_objects ??= new Stack<long>();
        names.Clear();
        objects.Clear();
        var depth = reader.CurrentDepth;
        objects.Push(reader.TokenType == JsonTokenType.StartObject ? reader.TokenStartIndex : -1);
        while (reader.Read())
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.StartObject:
                    objects.Push(reader.TokenStartIndex);
                    break;
                case JsonTokenType.StartArray:
                    objects.Push(-1);
                    break;
                case JsonTokenType.EndObject:
                case JsonTokenType.EndArray:
                    objects.Pop();
                    if (reader.CurrentDepth == depth)
                    {
                        return true;
                    }

                    break;
                case JsonTokenType.PropertyName:
                    if (reader.ValueIsEscaped || reader.HasValueSequence)
                    {
                        return false;
                    }

                    var hash = new HashCode();
                    hash.Add(objects.Peek());
                    hash.AddBytes(reader.ValueSpan);
                    if (!names.Add(hash.ToHashCode()))
                    {
                        return false;
                    }

                    break;
            }
        }

        return false;
    }
}

/// <summary>
/// Validates a body exactly as the default JsonElement converter would (the reader checks syntax and depth as it
/// walks; property names are checked for duplicates) but keeps only its byte range. Anything the quick check cannot
/// clear (an escaped name, a name-hash collision) is re-read by the default converter, so rejections keep their
/// exact reason and position.
/// </summary>
internal sealed class RawJsonValueConverter : JsonConverter<RawJsonValue>
{
    public override RawJsonValue Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var start = reader.TokenStartIndex;
        if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
        {
            var snapshot = reader;
            if (options.AllowDuplicateProperties || !RawJsonValue.SkipWithUniqueNames(ref reader))
            {
                reader = snapshot;
                var converter = (JsonConverter<JsonElement>)options.GetConverter(typeof(JsonElement));
                return new RawJsonValue(converter.Read(ref reader, typeof(JsonElement), options));
            }
        }

        return new RawJsonValue(checked((int)start), checked((int)(reader.BytesConsumed - start)));
    }

    public override void Write(Utf8JsonWriter writer, RawJsonValue value, JsonSerializerOptions options)
        => throw new NotSupportedException("audit events are not serialized back to JSON; use AuditEvent.RawJson");
}
