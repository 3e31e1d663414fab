using System.Diagnostics.Metrics;
using Ebpf.Agent.Metrics;

namespace Ebpf.Agent.Tests.Metrics;

public sealed class PrometheusTextExporterTests
{
    [Fact]
    public void Render_CountersAndGauges_PrometheusTextFormat()
    {
        string meterName = "test.meter." + Guid.NewGuid().ToString("N");
        using var meter = new Meter(meterName);
        using var exporter = new PrometheusTextExporter(meterName);
        var received = meter.CreateCounter<long>("ebpf.audit.received", description: "Audit events received");
        long kernelDrops = 7;
        meter.CreateObservableCounter("ebpf.drops", () => new Measurement<long>(kernelDrops, new KeyValuePair<string, object?>("stage", "kernel")));
        meter.CreateObservableGauge("ebpf.ringbuffer.fill", () => 0.25);

        received.Add(3, new KeyValuePair<string, object?>("backend", "webhook"));
        received.Add(2, new KeyValuePair<string, object?>("backend", "webhook"));
        kernelDrops = 9;
        string text = exporter.Render();

        Assert.Contains("# HELP ebpf_audit_received_total Audit events received\n", text, StringComparison.Ordinal);
        Assert.Contains("# TYPE ebpf_audit_received_total counter\n", text, StringComparison.Ordinal);
        Assert.Contains("ebpf_audit_received_total{backend=\"webhook\"} 5\n", text, StringComparison.Ordinal);
        Assert.Contains("ebpf_drops_total{stage=\"kernel\"} 9\n", text, StringComparison.Ordinal);
        Assert.Contains("# TYPE ebpf_ringbuffer_fill gauge\n", text, StringComparison.Ordinal);
        Assert.Contains("ebpf_ringbuffer_fill 0.25\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Render_LabelValueWithQuotes_Escaped()
    {
        string meterName = "test.meter." + Guid.NewGuid().ToString("N");
        using var meter = new Meter(meterName);
        using var exporter = new PrometheusTextExporter(meterName);
        meter.CreateCounter<long>("x").Add(1, new KeyValuePair<string, object?>("reason", "bad \"json\"\nhere"));

        Assert.Contains("x_total{reason=\"bad \\\"json\\\"\\nhere\"} 1\n", exporter.Render(), StringComparison.Ordinal);
    }

    [Fact]
    public void Render_OtherMeters_NotExported()
    {
        using var mine = new Meter("mine." + Guid.NewGuid().ToString("N"));
        using var other = new Meter("other." + Guid.NewGuid().ToString("N"));
        using var exporter = new PrometheusTextExporter(mine.Name);
        other.CreateCounter<long>("secret.counter").Add(1);

        Assert.DoesNotContain("secret", exporter.Render(), StringComparison.Ordinal);
    }
}
