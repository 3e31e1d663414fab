using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace Ebpf.Agent.Metrics;

/// <summary>
/// Renders the instruments of our meters in the Prometheus text exposition format (version 0.0.4).
/// No exporter package for Prometheus is obtainable here, and this is all /metrics needs: counters and
/// gauges, observable or not, with their tags as labels. Histograms are not used by the agent.
/// </summary>
public sealed class PrometheusTextExporter : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly Lock _gate = new();
    // (metric name, label text) → value. Observable instruments report totals, so they overwrite;
    // Counter/UpDownCounter report increments, so they add.
    private readonly Dictionary<(string Name, string Labels), double> _values = [];
    private readonly Dictionary<string, (string Type, string Help)> _families = new(StringComparer.Ordinal);

    public PrometheusTextExporter(params string[] meterNames)
    {
        var names = new HashSet<string>(meterNames, StringComparer.Ordinal);
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (!names.Contains(instrument.Meter.Name))
                return;
            lock (_gate)
                _families[MetricName(instrument)] = (TypeOf(instrument), instrument.Description ?? "");
            listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Record(i, v, tags));
        _listener.SetMeasurementEventCallback<int>((i, v, tags, _) => Record(i, v, tags));
        _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Record(i, v, tags));
        _listener.Start();
    }

    public string Render()
    {
        var text = new StringBuilder(4096);
        lock (_gate)
        {
            _listener.RecordObservableInstruments();
            foreach (var group in _values.GroupBy(kv => kv.Key.Name).OrderBy(g => g.Key, StringComparer.Ordinal))
            {
                if (_families.TryGetValue(group.Key, out var family))
                {
                    if (family.Help.Length > 0)
                        text.Append("# HELP ").Append(group.Key).Append(' ').Append(EscapeHelp(family.Help)).Append('\n');
                    text.Append("# TYPE ").Append(group.Key).Append(' ').Append(family.Type).Append('\n');
                }
                foreach (var kv in group.OrderBy(kv => kv.Key.Labels, StringComparer.Ordinal))
                {
                    text.Append(group.Key);
                    if (kv.Key.Labels.Length > 0)
                        text.Append('{').Append(kv.Key.Labels).Append('}');
                    text.Append(' ').Append(kv.Value.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
                }
            }
        }
        return text.ToString();
    }

    private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var key = (MetricName(instrument), Labels(tags));
        lock (_gate)
        {
            if (instrument.IsObservable || !_values.TryGetValue(key, out double previous))
                _values[key] = value;
            else
                _values[key] = previous + value;
        }
    }

    private static string TypeOf(Instrument instrument) => instrument switch
    {
        Counter<long> or Counter<int> or Counter<double> or ObservableCounter<long> or ObservableCounter<int> or ObservableCounter<double> => "counter",
        _ => "gauge",
    };

    /// <summary>"ebpf.events.received" → "ebpf_events_received" (+ "_total" for counters, as Prometheus expects).</summary>
    private static string MetricName(Instrument instrument)
    {
        var name = new StringBuilder(instrument.Name.Length + 8);
        foreach (char c in instrument.Name)
            name.Append(char.IsAsciiLetterOrDigit(c) ? c : '_');
        if (TypeOf(instrument) == "counter" && !instrument.Name.EndsWith("_total", StringComparison.Ordinal))
            name.Append("_total");
        return name.ToString();
    }

    private static string Labels(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        if (tags.IsEmpty)
            return "";
        var pairs = new List<string>(tags.Length);
        foreach (var tag in tags)
        {
            var name = new StringBuilder();
            foreach (char c in tag.Key)
                name.Append(char.IsAsciiLetterOrDigit(c) ? c : '_');
            pairs.Add($"{name}=\"{EscapeLabel(Convert.ToString(tag.Value, CultureInfo.InvariantCulture) ?? "")}\"");
        }
        pairs.Sort(StringComparer.Ordinal);
        return string.Join(',', pairs);
    }

    private static string EscapeLabel(string value) =>
        value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    private static string EscapeHelp(string value) =>
        value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    public void Dispose() => _listener.Dispose();
}
