using System.Text.Json;
using Google.Protobuf;
using YamlDotNet.Serialization;

namespace Ebpf.Cli.Output;

/// <summary>-o json / -o yaml: the proto3 JSON mapping of the API messages (the same names analyzers see).</summary>
public static class Serialized
{
    private static readonly JsonFormatter Formatter = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(false));

    public static string Json(IMessage message) => Formatter.Format(message);

    /// <summary>
    /// The proto3 JSON of <paramref name="message"/> with a leading "node" member: `watch` across several agents
    /// names the node of each record while the rest of the object stays the Record's own mapping.
    /// </summary>
    public static string JsonWithNode(IMessage message, string node)
    {
        string json = Json(message);
        string member = "{\"node\":" + JsonSerializer.Serialize(node);
        // The formatter writes "{ }" for an empty message and "{ ... }" otherwise: always one object.
        string rest = json[1..].TrimStart();
        return rest.StartsWith('}') ? member + rest : member + ", " + rest;
    }

    public static string Json(IEnumerable<IMessage> messages) => "[" + string.Join(",", messages.Select(Json)) + "]";

    public static string PrettyJson(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return JsonSerializer.Serialize(doc.RootElement, PrettyOptions);
    }

    private static readonly JsonSerializerOptions PrettyOptions = new() { WriteIndented = true };

    /// <summary>YAML of the proto3 JSON form: JSON → plain objects → YAML, so both outputs agree field for field.</summary>
    public static string Yaml(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return new SerializerBuilder().Build().Serialize(ToPlain(doc.RootElement));
    }

    private static object? ToPlain(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => e.EnumerateObject().ToDictionary(p => p.Name, p => ToPlain(p.Value)),
        JsonValueKind.Array => e.EnumerateArray().Select(ToPlain).ToList(),
        JsonValueKind.String => e.GetString(),
        JsonValueKind.Number => e.TryGetInt64(out long l) ? l : e.GetDouble(),
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => null,
    };
}
