using Ebpf.Agent.Hosting;
using Ebpf.Kubernetes.Audit;

namespace Ebpf.Agent.Tests.Hosting;

public sealed class AgentHostCountersTests
{
    private sealed class MixedCounters
    {
        public long BytesWritten => 42;
        public long Backlog => -3;
        public int OpenFiles => 7;
        public ulong Events => ulong.MaxValue;
        public uint Retries => 2;
        public string Name => "not a number";
        public double Ratio => 0.5;
    }

    [Fact]
    public void CounterValues_WebhookCounters_LabelValuesOfTheWebhookMetric()
    {
        // The "counter" label values of ebpf_audit_webhook_total (docs/operations.md).
        var names = AgentHost.CounterValues(new AuditWebhookCounters()).Select(kv => kv.Key).Order(StringComparer.Ordinal);
        Assert.Equal(["appended", "duplicates", "malformed_bodies", "oversized_bodies", "received", "rejected", "requests",
            "saturated", "sink_failures", "unauthorized"], names);
    }

    [Fact]
    public void CounterValues_MixedProperties_IntegersOnlyNegativeAsZero()
    {
        var values = AgentHost.CounterValues(new MixedCounters()).ToDictionary();
        Assert.Equal(new Dictionary<string, ulong>
        {
            ["bytes_written"] = 42, ["backlog"] = 0, ["open_files"] = 7, ["events"] = ulong.MaxValue, ["retries"] = 2,
        }, values);
    }

    [Fact]
    public void Counters_Prefix_PrefixUnderscoreSnakeCaseName()
    {
        var values = AgentHost.Counters("store", new MixedCounters()).ToDictionary();
        Assert.Equal(["store_backlog", "store_bytes_written", "store_events", "store_open_files", "store_retries"], values.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(42UL, values["store_bytes_written"]);
    }
}
