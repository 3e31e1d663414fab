using Ebpf.Core.Audit;

namespace Ebpf.Core.Policy;

/// <summary>Totals for one audit level in a simulation.</summary>
public sealed record PolicySimulationLevelRow(AuditPolicyLevel Level, long Events, long EventsKept, long BytesIn, long BytesKept);

/// <summary>
/// Totals for one rule in a simulation (<see cref="RuleIndex"/> null: no rule matched, the default level None).
/// <see cref="DroppedByStage"/> counts events the rule matched whose stage it omits.
/// </summary>
public sealed record PolicySimulationRuleRow(
    int? RuleIndex,
    string Summary,
    AuditPolicyLevel Level,
    IReadOnlyList<string> OmittedStages,
    long Events,
    long EventsKept,
    long DroppedByLevel,
    long DroppedByStage,
    long BytesIn,
    long BytesKept);

/// <summary>Result of applying a policy to a recorded audit log.</summary>
public sealed record PolicySimulationReport(
    long EventsRead,
    long EventsRejected,
    long EventsKept,
    long BytesIn,
    long BytesKept,
    IReadOnlyList<PolicySimulationLevelRow> ByLevel,
    IReadOnlyList<PolicySimulationRuleRow> ByRule,
    IReadOnlyDictionary<string, long> DroppedByStage,
    IReadOnlyList<string> Rejections)
{
    public long EventsDropped => EventsRead - EventsRejected - EventsKept;
}

/// <summary>
/// Applies a policy to recorded audit events and counts what the API server would have written: events and
/// bytes per level and per rule. Bytes are estimated from each event's raw JSON (see <see cref="AuditEventSize"/>):
/// a level below the recorded one drops the request/response objects; a level above it cannot add bodies the
/// source log never held, so kept bytes are a lower bound in that case. Not thread-safe; one per simulation.
/// </summary>
public sealed class PolicySimulator
{
    private const int MaxRejectionsKept = 50;

    private readonly AuditPolicyEvaluator _evaluator;
    private readonly RuleCounters[] _rules;
    private readonly RuleCounters _default = new();
    private readonly long[] _levelEvents = new long[4];
    private readonly long[] _levelKept = new long[4];
    private readonly long[] _levelBytesIn = new long[4];
    private readonly long[] _levelBytesKept = new long[4];
    private readonly Dictionary<string, long> _droppedByStage = new(StringComparer.Ordinal);
    private readonly List<string> _rejections = [];
    private long _read, _rejected, _kept, _bytesIn, _bytesKept;

    public PolicySimulator(AuditPolicy policy)
    {
        _evaluator = new AuditPolicyEvaluator(policy);
        _rules = policy.Rules.Select(_ => new RuleCounters()).ToArray();
    }

    public AuditPolicy Policy => _evaluator.Policy;

    /// <summary>Counts one parsed event.</summary>
    public PolicyDecision Add(AuditEvent auditEvent) =>
        Add(PolicyRequest.FromAuditEvent(auditEvent), auditEvent.Stage, AuditEventSize.Of(auditEvent));

    /// <summary>Counts one event given as request attributes, its stage name and its sizes.</summary>
    public PolicyDecision Add(in PolicyRequest request, string? stage, AuditEventSize size)
    {
        _read++;
        _bytesIn += size.Total;
        var decision = _evaluator.Evaluate(request);
        var counters = decision.Matched ? _rules[decision.RuleIndex] : _default;
        counters.Events++;
        counters.BytesIn += size.Total;
        var level = (int)decision.Level;
        _levelEvents[level]++;
        _levelBytesIn[level] += size.Total;

        if (decision.Level == AuditPolicyLevel.None)
        {
            counters.DroppedByLevel++;
            return decision;
        }
        if (stage is not null && AuditPolicyNames.TryParse(stage, out var stageFlag) && decision.IsStageOmitted(stageFlag))
        {
            counters.DroppedByStage++;
            _droppedByStage[stage] = _droppedByStage.GetValueOrDefault(stage) + 1;
            return decision;
        }
        var kept = size.AtLevel(decision.Level);
        counters.Kept++;
        counters.BytesKept += kept;
        _levelKept[level]++;
        _levelBytesKept[level] += kept;
        _kept++;
        _bytesKept += kept;
        return decision;
    }

    /// <summary>Counts an input record that could not be parsed (it is neither kept nor dropped).</summary>
    public void AddRejected(string location, string reason)
    {
        _read++;
        _rejected++;
        if (_rejections.Count < MaxRejectionsKept)
            _rejections.Add($"{location}: {reason}");
    }

    /// <summary>Parses a log (JSON lines, or a single Event/EventList/envelope document) and counts every record.</summary>
    public void AddDocument(ReadOnlySpan<byte> utf8, string source, AuditEventParser parser)
    {
        var batch = parser.ParseDocument(utf8, source);
        if (batch.DocumentError is not null)
        {
            AddRejected(source, batch.DocumentError);
            return;
        }
        foreach (var item in batch.Items)
        {
            if (item.Event is not null)
                Add(item.Event);
            else
                AddRejected(item.Location, item.Rejection ?? "rejected");
        }
    }

    /// <summary>
    /// Streams a JSON-lines log and counts every record. Memory stays bounded: a line longer than the parser's
    /// event limit is skipped up to its newline and counted as rejected.
    /// </summary>
    public void AddJsonLines(Stream stream, string source, AuditEventParser parser)
    {
        var maxLine = parser.Options.MaxEventBytes;
        var buffer = new byte[Math.Min(maxLine, 1 << 20) + 1];
        var filled = 0;
        long lineNumber = 0;
        var skipping = false;
        while (true)
        {
            if (filled == buffer.Length)
            {
                if (buffer.Length <= maxLine)
                {
                    Array.Resize(ref buffer, (int)Math.Min((long)maxLine + 1, buffer.Length * 2L));
                }
                else
                {
                    // The current line is over the limit: drop what we have and skip to its end.
                    if (!skipping)
                    {
                        lineNumber++;
                        AddRejected($"{source}:{lineNumber}", $"line is longer than the {maxLine}-byte event limit");
                    }
                    skipping = true;
                    filled = 0;
                }
            }
            var read = stream.Read(buffer, filled, buffer.Length - filled);
            var end = filled + read;
            var start = 0;
            for (var i = filled; i < end; i++)
            {
                if (buffer[i] != (byte)'\n')
                    continue;
                if (skipping)
                    skipping = false;
                else
                    ProcessLine(buffer.AsSpan(start, i - start), source, ++lineNumber, parser);
                start = i + 1;
            }
            if (read == 0)
            {
                if (!skipping && end > start)
                    ProcessLine(buffer.AsSpan(start, end - start), source, ++lineNumber, parser);
                return;
            }
            Buffer.BlockCopy(buffer, start, buffer, 0, end - start);
            filled = end - start;
        }
    }

    private void ProcessLine(ReadOnlySpan<byte> line, string source, long lineNumber, AuditEventParser parser)
    {
        var item = parser.ParseLine(line, source, lineNumber);
        if (item is null)
            return;
        if (item.Event is not null)
            Add(item.Event);
        else
            AddRejected(item.Location, item.Rejection ?? "rejected");
    }

    public PolicySimulationReport Report()
    {
        var levels = Enum.GetValues<AuditPolicyLevel>()
            .Select(l => new PolicySimulationLevelRow(l, _levelEvents[(int)l], _levelKept[(int)l], _levelBytesIn[(int)l], _levelBytesKept[(int)l]))
            .ToArray();
        var policy = _evaluator.Policy;
        var rules = new List<PolicySimulationRuleRow>(_rules.Length + 1);
        for (var i = 0; i < _rules.Length; i++)
        {
            var rule = policy.Rules[i];
            rules.Add(Row(i, rule.Summary(), rule.Level, AuditPolicyNames.Names(policy.OmitStages | rule.OmitStages), _rules[i]));
        }
        rules.Add(Row(null, "(no rule matched: default level None)", AuditPolicyLevel.None, AuditPolicyNames.Names(policy.OmitStages), _default));
        return new PolicySimulationReport(_read, _rejected, _kept, _bytesIn, _bytesKept, levels, rules,
            new Dictionary<string, long>(_droppedByStage), _rejections.ToArray());
    }

    private static PolicySimulationRuleRow Row(int? index, string summary, AuditPolicyLevel level, IReadOnlyList<string> stages, RuleCounters c) =>
        new(index, summary, level, stages, c.Events, c.Kept, c.DroppedByLevel, c.DroppedByStage, c.BytesIn, c.BytesKept);

    private sealed class RuleCounters
    {
        public long Events, Kept, DroppedByLevel, DroppedByStage, BytesIn, BytesKept;
    }
}
