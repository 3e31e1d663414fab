using System.Globalization;
using System.Text;
using System.Text.Json;
using Ebpf.Core.Audit;

namespace Ebpf.Core.Tests.Audit;

/// <summary>
/// The hand-written <see cref="AuditEventReader"/> against the reference: System.Text.Json's source-generated
/// deserializer for the same model with the same options. Every fixture event and thousands of mutations of them
/// (byte flips, wrong types, nulls, duplicate and escaped names, odd timestamps and numbers) must be accepted by both
/// with equal fields, or rejected by both.
/// </summary>
public sealed class AuditEventReaderDifferentialTests
{
    private static readonly JsonReaderOptions ReaderOptions = new() { MaxDepth = 64 };

    private static readonly AuditJsonContext Reference = new(new JsonSerializerOptions { MaxDepth = 64, AllowDuplicateProperties = false });

    private static readonly Lazy<List<byte[]>> Seeds = new(() =>
    {
        var parser = new AuditEventParser();
        return AuditFixtures.EventFiles()
            .SelectMany(file => parser.ParseDocument(File.ReadAllBytes(file)).Events)
            .Where(e => e.SourceFormat == AuditSourceFormat.Native)
            .Select(e => e.RawJson.ToArray())
            .ToList();
    });

    [Fact]
    public void Read_EveryFixtureEvent_EqualsReferenceDeserializer()
    {
        Assert.True(Seeds.Value.Count > 80, $"only {Seeds.Value.Count} fixture events");
        foreach (var seed in Seeds.Value)
        {
            AssertSameOutcome(seed);
        }
    }

    [Fact]
    public void Read_MutatedFixtureEvents_SameOutcomeAsReferenceDeserializer()
    {
        var random = new Random(20261122);
        var accepted = 0;
        var rejected = 0;
        foreach (var seed in Seeds.Value)
        {
            for (var i = 0; i < 60; i++)
            {
                if (AssertSameOutcome(Mutate(seed, random)))
                {
                    accepted++;
                }
                else
                {
                    rejected++;
                }
            }
        }

        // Both outcomes must be well represented, or the comparison proves little.
        Assert.True(accepted > 1000 && rejected > 1000, $"{accepted} accepted, {rejected} rejected");
    }

    /// <summary>
    /// A webhook body is read in one pass (items are read where they stand, not skipped and parsed again): each item
    /// must come out exactly as the same bytes parsed alone, accepted or rejected with the same reason.
    /// </summary>
    [Fact]
    public void ParseEventList_EachItem_SameAsParsedAlone()
    {
        var parser = new AuditEventParser();
        var random = new Random(7);
        var compared = 0;
        foreach (var seed in Seeds.Value)
        {
            for (var i = 0; i < 30; i++)
            {
                var item = i == 0 ? seed : Mutate(seed, random);
                var alone = parser.ParseEvent(item);
                var body = Encoding.UTF8.GetBytes("{\"kind\":\"EventList\",\"apiVersion\":\"audit.k8s.io/v1\",\"items\":[{\"kind\":0}," + Encoding.UTF8.GetString(item) + ",7]}");
                var list = parser.ParseEventList(body);
                if (list.DocumentError is not null || list.Items.Count != 3)
                {
                    // Not one JSON value: the list cannot be read past it, and alone it is not an event either.
                    Assert.False(alone.IsEvent, $"list: {list.DocumentError}; alone accepted: {Encoding.UTF8.GetString(item)}");
                    continue;
                }

                var inList = list.Items[1];
                Assert.Equal(alone.Rejection, inList.Rejection);
                Assert.False(list.Items[0].IsEvent);
                Assert.False(list.Items[2].IsEvent);
                if (alone.Event is { } expected)
                {
                    // Alone, the whole input is the event (whitespace around it included); in a list, the item's bytes.
                    Assert.Equal(expected.RawJson.Span.Trim(" \t\r\n"u8).ToArray(), inList.Event!.RawJson.ToArray());
                    Assert.Equal(Dump(expected, expected.RawJson.ToArray()), Dump(inList.Event, inList.Event.RawJson.ToArray()));
                }

                compared++;
            }
        }

        Assert.True(compared > 1000, $"only {compared} items compared");
    }

    [Theory]
    [InlineData("{\"auditID\":\"a\",\"\\u0075ser\":{\"username\":\"x\"},\"user\":{\"username\":\"y\"}}", "duplicate property 'user'")]
    [InlineData("{\"auditID\":\"a\",\"user\":{\"groups\":[\"g\",7]}}", "$.user.groups[1]")]
    [InlineData("{\"auditID\":\"a\",\"responseStatus\":{\"code\":2147483648}}", "$.responseStatus.code")]
    [InlineData("{\"auditID\":\"a\",\"annotations\":{\"k\":\"v\",\"k\":\"w\"}}", "duplicate key 'k'")]
    [InlineData("{\"auditID\":\"a\",\"requestObject\":{\"spec\":{\"x\":1,\"x\":2}}}", "$.requestObject")]
    [InlineData("{\"auditID\":\"a\",\"stageTimestamp\":\"yesterday\"}", "$.stageTimestamp (byte 32): not an RFC 3339 timestamp")]
    [InlineData("{\"auditID\":\"a\"} x", "invalid after a single JSON value")]
    [InlineData("7", "expected an audit event object, found a number")]
    public void Read_InvalidEvent_ErrorNamesPathAndReason(string json, string expected)
    {
        var ex = Assert.Throws<AuditJsonFormatException>(() => AuditEventReader.Read(Encoding.UTF8.GetBytes(json), ReaderOptions));

        Assert.StartsWith("invalid JSON at $", ex.Message, StringComparison.Ordinal);
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
        Assert.Throws<JsonException>(() => JsonSerializer.Deserialize(Encoding.UTF8.GetBytes(json), Reference.AuditEvent));
    }

    [Fact]
    public void Read_EscapedPropertyNames_MatchLikeUnescaped()
    {
        var ev = AuditEventReader.Read("{\"\\u0061uditID\":\"a\",\"us\\u0065r\":{\"usernam\\u0065\":\"alice\"}}"u8, ReaderOptions)!;

        Assert.Equal("a", ev.AuditId);
        Assert.Equal("alice", ev.User!.Username);
    }

    /// <summary>Returns true when both accepted the input.</summary>
    private static bool AssertSameOutcome(byte[] utf8)
    {
        AuditEvent? ours = null, theirs = null;
        string? ourError = null, theirError = null;
        try
        {
            ours = AuditEventReader.Read(utf8, ReaderOptions);
        }
        catch (AuditJsonFormatException ex)
        {
            ourError = ex.Message;
        }

        try
        {
            theirs = JsonSerializer.Deserialize(utf8, Reference.AuditEvent);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException or ArgumentException or OverflowException or NotSupportedException)
        {
            theirError = ex.Message;
        }

        var input = Encoding.UTF8.GetString(utf8);
        if ((ourError is null) != (theirError is null))
        {
            Assert.Fail($"outcomes differ: ours {ourError ?? "accepted"}; reference {theirError ?? "accepted"}; input: {Excerpt(input)}");
        }

        if (ourError is not null)
        {
            return false;
        }

        Assert.True(Dump(ours, utf8) == Dump(theirs, utf8), $"fields differ:\nours      {Dump(ours, utf8)}\nreference {Dump(theirs, utf8)}\ninput: {Excerpt(input)}");
        return ours is not null;
    }

    private static string Excerpt(string s) => s.Length <= 2000 ? s : s[..2000] + "…";

    private static string Dump(AuditEvent? e, byte[] raw)
    {
        if (e is null)
        {
            return "null";
        }

        e.RawJson = raw;
        var b = new StringBuilder();
        void Add(string name, object? value) => b.Append(name).Append('=').Append(value switch
        {
            null => "<null>",
            DateTimeOffset t => t.ToString("O", CultureInfo.InvariantCulture),
            JsonElement j => j.ValueKind + ":" + j.GetRawText(),
            _ => value.ToString(),
        }).Append(';');
        void AddList(string name, IEnumerable<string>? values) => Add(name, values is null ? null : "[" + string.Join("|", values.Select(v => v ?? "<null>")) + "]");
        void AddUser(string name, AuditUserInfo? u)
        {
            Add(name, u is null ? null : "{");
            if (u is not null)
            {
                Add("username", u.Username);
                Add("uid", u.Uid);
                AddList("groups", u.Groups);
                Add("extra", u.Extra is null ? null : string.Join(",", u.Extra.Select(kv => kv.Key + ":" + (kv.Value is null ? "<null>" : string.Join("|", kv.Value)))));
            }
        }

        Add("kind", e.Kind);
        Add("apiVersion", e.ApiVersion);
        Add("level", e.Level);
        Add("auditID", e.AuditId);
        Add("stage", e.Stage);
        Add("requestURI", e.RequestUri);
        Add("verb", e.Verb);
        AddUser("user", e.User);
        AddUser("impersonatedUser", e.ImpersonatedUser);
        AddList("sourceIPs", e.SourceIps);
        Add("userAgent", e.UserAgent);
        var o = e.ObjectRef;
        Add("objectRef", o is null ? null : string.Join("|", o.Resource, o.Namespace, o.Name, o.Uid, o.ApiGroup, o.ApiVersion, o.ResourceVersion, o.Subresource));
        var s = e.ResponseStatus;
        Add("responseStatus", s is null ? null : string.Join("|", s.Code, s.Status, s.Reason, s.Message));
        Add("details", s?.Details);
        Add("requestObject", e.RequestObject);
        Add("responseObject", e.ResponseObject);
        Add("requestReceivedTimestamp", e.RequestReceivedTimestamp);
        Add("stageTimestamp", e.StageTimestamp);
        Add("annotations", e.Annotations is null ? null : string.Join(",", e.Annotations.Select(kv => kv.Key + ":" + (kv.Value ?? "<null>"))));
        Add("timestamp", e.Timestamp);
        Add("metadata", e.Metadata is null ? null : e.Metadata.CreationTimestamp?.ToString("O", CultureInfo.InvariantCulture) ?? "{}");
        return b.ToString();
    }

    private static readonly string[] KnownNames =
    [
        "kind", "apiVersion", "level", "auditID", "stage", "requestURI", "verb", "user", "impersonatedUser", "sourceIPs", "userAgent",
        "objectRef", "responseStatus", "requestObject", "responseObject", "requestReceivedTimestamp", "stageTimestamp", "annotations",
        "timestamp", "metadata", "username", "uid", "groups", "extra", "resource", "namespace", "name", "apiGroup", "resourceVersion",
        "subresource", "code", "status", "reason", "message", "details", "creationTimestamp",
    ];

    private static readonly string[] Values =
    [
        "null", "0", "-1", "1.5", "1e2", "2147483648", "true", "false", "\"\"", "\"x\"", "[]", "[null]", "[\"a\",null]", "{}", "{\"a\":\"b\"}",
        "{\"a\":[\"b\"],\"c\":null}", "\"2024-02-29T12:00:00.123456789+05:30\"", "\"2024-02-30T00:00:00Z\"", "\"2024-01-01t00:00:00z\"",
        "\"2024-01-01T00:00:00\"", "\"2024-01-01\"", "\"\\u0032024-01-01T00:00:00Z\"", "\"caf\\u00e9\"", "{\"a\":1,\"a\":2}", "[{\"k\":1,\"k\":1}]",
    ];

    private static byte[] Mutate(byte[] seed, Random random)
    {
        var text = Encoding.UTF8.GetString(seed);
        switch (random.Next(6))
        {
            case 0:
                {
                    // Replace the value of a known property with another JSON value of any type.
                    var name = KnownNames[random.Next(KnownNames.Length)];
                    var at = text.IndexOf("\"" + name + "\":", StringComparison.Ordinal);
                    if (at < 0)
                    {
                        return Encoding.UTF8.GetBytes(text.Insert(1, "\"" + name + "\":" + Values[random.Next(Values.Length)] + ","));
                    }

                    var valueStart = at + name.Length + 3;
                    while (valueStart < text.Length && text[valueStart] == ' ')
                    {
                        valueStart++;
                    }

                    var valueEnd = ValueEnd(text, valueStart);
                    return Encoding.UTF8.GetBytes(string.Concat(text.AsSpan(0, valueStart), Values[random.Next(Values.Length)], text.AsSpan(valueEnd)));
                }

            case 1:
                {
                    // Repeat a property (known or not) inside the top-level object.
                    var name = random.Next(3) == 0 ? "unknownField" : KnownNames[random.Next(KnownNames.Length)];
                    var value = Values[random.Next(Values.Length)];
                    var close = text.LastIndexOf('}');
                    return Encoding.UTF8.GetBytes(text[..close] + ",\"" + name + "\":" + value + ",\"" + name + "\":" + value + text[close..]);
                }

            case 2:
                {
                    // Escape the first letter of a property name.
                    var name = KnownNames[random.Next(KnownNames.Length)];
                    var escaped = "\"\\u" + ((int)name[0]).ToString("x4", CultureInfo.InvariantCulture) + name[1..] + "\":";
                    return Encoding.UTF8.GetBytes(text.Replace("\"" + name + "\":", escaped, StringComparison.Ordinal));
                }

            case 3:
                {
                    var data = (byte[])seed.Clone();
                    data[random.Next(data.Length)] ^= (byte)(1 << random.Next(7));
                    return data;
                }

            case 4:
                return seed[..random.Next(seed.Length)];
            default:
                {
                    // Nest something inside an object-valued known property.
                    var name = new[] { "user", "objectRef", "responseStatus", "metadata", "annotations", "extra", "requestObject" }[random.Next(7)];
                    var extra = "\"" + KnownNames[random.Next(KnownNames.Length)] + "\":" + Values[random.Next(Values.Length)] + ",";
                    return Encoding.UTF8.GetBytes(text.Replace("\"" + name + "\":{", "\"" + name + "\":{" + extra, StringComparison.Ordinal));
                }
        }
    }

    /// <summary>End index (exclusive) of the JSON value starting at <paramref name="start"/>; a rough scan, good enough for mutations.</summary>
    private static int ValueEnd(string text, int start)
    {
        var depth = 0;
        var inString = false;
        for (var i = start; i < text.Length; i++)
        {
            var c = text[i];
            if (inString)
            {
                if (c == '\\')
                {
                    i++;
                }
                else if (c == '"')
                {
                    inString = false;
                    if (depth == 0)
                    {
                        return i + 1;
                    }
                }

                continue;
            }

            switch (c)
            {
                case '"':
                    inString = true;
                    break;
                case '{' or '[':
                    depth++;
                    break;
                case '}' or ']':
                    if (depth == 0)
                    {
                        return i;
                    }

                    if (--depth == 0)
                    {
                        return i + 1;
                    }

                    break;
                case ',' when depth == 0:
                    return i;
            }
        }

        return text.Length;
    }
}
