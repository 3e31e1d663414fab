using System.Diagnostics;
using System.Text;
using Ebpf.Core.Audit;

namespace Ebpf.Core.Tests.Audit;

public sealed class AuditEventParserHostileInputTests
{
    private static readonly AuditEventParser Parser = new();

    private static readonly byte[] Exec = File.ReadAllBytes(Path.Combine(AuditFixtures.Falco, "exec_pod.json")).AsSpan().TrimEnd("\n"u8).ToArray();

    [Theory]
    [InlineData("{\"kind\": 0}", "kind")]
    [InlineData("[]", "not a JSON object")]
    [InlineData("{\"kind\":\"Event\"}", "missing auditID")]
    [InlineData("{\"kind\":\"Pod\",\"auditID\":\"a\"}", "kind is 'Pod'")]
    [InlineData("{\"auditID\":\"a\",\"stage\":\"Bogus\",\"verb\":\"get\",\"stageTimestamp\":\"2020-01-01T00:00:00Z\"}", "unknown stage")]
    [InlineData("{\"auditID\":\"a\",\"stage\":\"Panic\",\"verb\":\"get\"}", "no timestamp")]
    [InlineData("{\"auditID\":\"a\",\"stage\":\"Panic\",\"verb\":\"get\",\"stageTimestamp\":\"0001-01-01T00:00:00Z\"}", "outside")]
    [InlineData("{\"auditID\":\"a\",\"stage\":\"Panic\",\"verb\":\"get\",\"stageTimestamp\":\"2020-13-45T00:00:00Z\"}", "invalid JSON at $.stageTimestamp")]
    [InlineData("{\"auditID\":\"a\",\"auditID\":\"b\",\"stage\":\"Panic\",\"verb\":\"get\",\"stageTimestamp\":\"2020-01-01T00:00:00Z\"}", "invalid JSON")]
    [InlineData("{\"auditID\":\"a\",\"user\":\"root\"}", "$.user")]
    [InlineData("{\"auditID\":\"a\"", "invalid JSON")]
    [InlineData("", "empty input")]
    public void ParseRecord_InvalidInput_RejectedWithReason(string json, string expected)
    {
        var item = Parser.ParseRecord(Encoding.UTF8.GetBytes(json), "t:1");

        Assert.False(item.IsEvent);
        Assert.Equal("t:1", item.Location);
        Assert.Contains(expected, item.Rejection, StringComparison.Ordinal);
    }

    [Fact]
    public void ParseRecord_InvalidUtf8_Rejected()
    {
        var bytes = (byte[])Exec.Clone();
        bytes[Array.IndexOf(bytes, (byte)'b')] = 0xC3; // lone lead byte inside "bash"

        Assert.Equal("input is not valid UTF-8", Parser.ParseRecord(bytes).Rejection);
    }

    [Fact]
    public void ParseRecord_DeepNesting_RejectedByMaxDepth()
    {
        var deep = "{\"auditID\":\"a\",\"requestObject\":" + new string('[', 5000) + new string(']', 5000) + "}";

        var item = Parser.ParseRecord(Encoding.UTF8.GetBytes(deep));

        Assert.Contains("depth", item.Rejection, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void ParseRecord_OverEventLimit_Rejected()
    {
        var parser = new AuditEventParser(new AuditParserOptions { MaxEventBytes = 4096 });
        var big = Encoding.UTF8.GetBytes("{\"auditID\":\"" + new string('x', 5000) + "\"}");

        Assert.Contains("over the 4096-byte limit", parser.ParseRecord(big).Rejection, StringComparison.Ordinal);
    }

    [Fact]
    public void ParseEventList_PartiallyValid_ReportsEachItem()
    {
        var body = "{\"kind\":\"EventList\",\"apiVersion\":\"audit.k8s.io/v1\",\"metadata\":{},\"items\":[" + Encoding.UTF8.GetString(Exec) + ",{\"kind\":0},7]}";

        var batch = Parser.ParseEventList(Encoding.UTF8.GetBytes(body));

        Assert.Null(batch.DocumentError);
        Assert.Equal(3, batch.Items.Count);
        Assert.Single(batch.Events);
        Assert.Equal(Exec, batch.Events[0].RawJson.ToArray());
        Assert.Equal("items[1]", batch.Items[1].Location);
        Assert.Equal("items[2]", batch.Items[2].Location);
    }

    [Fact]
    public void ParseEventList_TooManyItems_DocumentError()
    {
        var parser = new AuditEventParser(new AuditParserOptions { MaxListItems = 100 });
        var body = "{\"kind\":\"EventList\",\"items\":[" + string.Join(",", Enumerable.Repeat("{}", 101)) + "]}";

        Assert.Contains("more than 100 items", parser.ParseEventList(Encoding.UTF8.GetBytes(body)).DocumentError, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{\"kind\":\"EventList\",\"items\":[{}", "invalid JSON")]
    [InlineData("{\"kind\":\"Event\",\"items\":[]}", "expected \"EventList\"")]
    [InlineData("{\"kind\":\"EventList\"}", "no \"items\"")]
    [InlineData("{\"kind\":\"EventList\",\"items\":{}}", "expected an array")]
    [InlineData("{\"kind\":\"EventList\",\"items\":[]} {}", "is invalid after a single JSON value")]
    [InlineData("not json", "invalid JSON")]
    public void ParseEventList_MalformedDocument_DocumentError(string body, string expected)
    {
        var batch = Parser.ParseEventList(Encoding.UTF8.GetBytes(body));

        Assert.Empty(batch.Items);
        Assert.Contains(expected, batch.DocumentError, StringComparison.Ordinal);
    }

    /// <summary>
    /// Thousands of mutations of every fixture (byte flips, truncations, splices, deep nesting, huge strings, wrong
    /// types) through every entry point: nothing may throw, and each result is an event or a reason.
    /// </summary>
    [Fact]
    public void AllEntryPoints_MutatedFixtures_NeverThrow()
    {
        var random = new Random(20261122);
        var seeds = AuditFixtures.EventFiles().Select(File.ReadAllBytes).ToList();
        var mutations = 0;
        var stopwatch = Stopwatch.StartNew();
        foreach (var seed in seeds)
        {
            for (var i = 0; i < 120; i++)
            {
                var mutated = Mutate(seed, random);
                mutations++;
                foreach (var item in Parser.ParseDocument(mutated, "fuzz").Items)
                {
                    Assert.True(item.IsEvent ^ (item.Rejection is not null));
                    if (item.Event is { } ev)
                    {
                        _ = ev.Derived.Streaming?.Command;
                    }
                }

                var single = Parser.ParseRecord(mutated);
                Assert.True(single.IsEvent ^ (single.Rejection is not null));
                var list = Parser.ParseEventList(Encoding.UTF8.GetBytes("{\"kind\":\"EventList\",\"items\":[").Concat(mutated).Concat("]}"u8.ToArray()).ToArray());
                Assert.True(list.DocumentError is not null || list.Items.Count > 0);
            }
        }

        Assert.True(mutations > 5000, $"only {mutations} mutations");
        // A generous bound that only an accidental quadratic path or a hang would exceed.
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(60), $"fuzzing took {stopwatch.Elapsed}");
    }

    private static byte[] Mutate(byte[] seed, Random random)
    {
        var data = (byte[])seed.Clone();
        switch (random.Next(8))
        {
            case 0:
                for (var k = random.Next(1, 8); k > 0; k--)
                {
                    data[random.Next(data.Length)] ^= (byte)(1 << random.Next(8));
                }

                return data;
            case 1:
                return data[..random.Next(data.Length)];
            case 2:
                {
                    var at = random.Next(data.Length);
                    var depth = random.Next(50, 3000);
                    return [.. data[..at], .. Encoding.ASCII.GetBytes(new string('[', depth)), .. data[at..]];
                }

            case 3:
                {
                    var text = Encoding.UTF8.GetString(data);
                    var at = text.IndexOf("\":\"", random.Next(text.Length), StringComparison.Ordinal);
                    return at < 0 ? data : Encoding.UTF8.GetBytes(string.Concat(text.AsSpan(0, at + 3), new string('A', random.Next(1000, 200_000)), text.AsSpan(at + 3)));
                }

            case 4:
                {
                    var text = Encoding.UTF8.GetString(data);
                    string[] swaps = ["\"user\":{", "\"objectRef\":{", "\"stageTimestamp\":\"", "\"sourceIPs\":[", "\"extra\":{", "\"code\":", "\"annotations\":{", "\"requestURI\":\""];
                    string[] replacements = ["\"user\":[1,{", "\"objectRef\":\"x\",\"y\":{", "\"stageTimestamp\":99,\"z\":\"", "\"sourceIPs\":{\"a\":[", "\"extra\":{\"k\":\"v\",\"q\":{", "\"code\":\"200\",\"c\":", "\"annotations\":{\"a\":1,", "\"requestURI\":\"/exec?command=%G0&command=%"];
                    var pick = random.Next(swaps.Length);
                    return Encoding.UTF8.GetBytes(text.Replace(swaps[pick], replacements[pick], StringComparison.Ordinal));
                }

            case 5:
                {
                    var a = random.Next(data.Length);
                    var b = random.Next(data.Length);
                    return [.. data[..Math.Min(a, b)], .. data[Math.Max(a, b)..], .. data[Math.Min(a, b)..Math.Max(a, b)]];
                }

            case 6:
                data[random.Next(data.Length)] = (byte)random.Next(0x80, 0x100);
                return data;
            default:
                {
                    var text = Encoding.UTF8.GetString(data);
                    return Encoding.UTF8.GetBytes(text.Replace("Z\"", "+99:99\"", StringComparison.Ordinal).Replace("\"2018-", "\"99999-", StringComparison.Ordinal));
                }
        }
    }
}
