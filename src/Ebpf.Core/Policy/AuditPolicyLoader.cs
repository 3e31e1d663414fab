using System.Text;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace Ebpf.Core.Policy;

/// <summary>
/// Reads an audit.k8s.io/v1 <c>Policy</c> from YAML with the checks kube-apiserver applies
/// (k8s.io/apiserver/pkg/audit/policy/reader.go <c>LoadPolicyFromBytes</c> and
/// pkg/apis/audit/validation/validation.go <c>ValidatePolicy</c>), plus bounds for hostile input.
/// </summary>
/// <remarks>
/// The YAML is read with YamlDotNet's event parser, never its object deserializer, so nothing is
/// instantiated from tags. Anchors and aliases are rejected outright: a policy never needs them and
/// they are the "billion laughs" expansion vector. Unknown fields are errors here, where the API server
/// (since strict decoding was added to reader.go) only warns and falls back to lenient decoding:
/// a typo such as <c>resource:</c> silently widens a rule, which is exactly what a linter must catch.
/// </remarks>
public static class AuditPolicyLoader
{
    public const string ApiVersionV1 = "audit.k8s.io/v1";

    /// <summary>Loads and validates a policy file. Throws <see cref="AuditPolicyException"/> for any problem.</summary>
    public static AuditPolicy LoadFile(string path, AuditPolicyLoaderOptions? options = null)
    {
        options ??= AuditPolicyLoaderOptions.Default;
        FileInfo info;
        try
        {
            info = new FileInfo(path);
            if (!info.Exists)
                throw new AuditPolicyException(new AuditPolicyError(0, 0, "", $"policy file '{path}' does not exist"));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new AuditPolicyException(new AuditPolicyError(0, 0, "", $"cannot read policy file '{path}': {ex.Message}"));
        }
        if (info.Length > options.MaxDocumentSize)
            throw TooLarge(info.Length, options);
        string text;
        try
        {
            text = File.ReadAllText(path, Encoding.UTF8);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new AuditPolicyException(new AuditPolicyError(0, 0, "", $"cannot read policy file '{path}': {ex.Message}"));
        }
        return Load(text, options);
    }

    /// <summary>Loads and validates a policy from YAML text. Throws <see cref="AuditPolicyException"/> for any problem.</summary>
    public static AuditPolicy Load(string yaml, AuditPolicyLoaderOptions? options = null)
    {
        options ??= AuditPolicyLoaderOptions.Default;
        if (yaml.Length > options.MaxDocumentSize)
            throw TooLarge(yaml.Length, options);
        var root = YamlTreeReader.Read(yaml, options);
        return new PolicyMapper(options).Map(root);
    }

    /// <summary>Like <see cref="Load"/> but reports problems instead of throwing.</summary>
    public static bool TryLoad(string yaml, out AuditPolicy? policy, out IReadOnlyList<AuditPolicyError> errors, AuditPolicyLoaderOptions? options = null)
    {
        try
        {
            policy = Load(yaml, options);
            errors = [];
            return true;
        }
        catch (AuditPolicyException ex)
        {
            policy = null;
            errors = ex.Errors;
            return false;
        }
    }

    private static AuditPolicyException TooLarge(long size, AuditPolicyLoaderOptions options) =>
        new(new AuditPolicyError(0, 0, "", $"policy is {size} bytes, larger than the {options.MaxDocumentSize}-byte limit",
            "audit policies are a few KiB; check that the right file was given"));

    // ---- A minimal YAML tree with positions, built from parser events under strict bounds. ----

    internal abstract class YNode(Mark start)
    {
        public int Line { get; } = (int)start.Line;
        public int Column { get; } = (int)start.Column;
    }

    internal sealed class YScalar(Mark start, string value, ScalarStyle style) : YNode(start)
    {
        public string Value { get; } = value;
        public ScalarStyle Style { get; } = style;

        // YAML 1.1/1.2 core schema nulls, as sigs.k8s.io/yaml (go-yaml) reads them: only when unquoted.
        public bool IsNull => Style is ScalarStyle.Plain or ScalarStyle.Any && Value is "" or "~" or "null" or "Null" or "NULL";
    }

    internal sealed class YSequence(Mark start) : YNode(start)
    {
        public List<YNode> Items { get; } = [];
    }

    internal sealed class YMapping(Mark start) : YNode(start)
    {
        public List<KeyValuePair<YScalar, YNode>> Entries { get; } = [];
    }

    private static class YamlTreeReader
    {
        public static YNode Read(string yaml, AuditPolicyLoaderOptions options)
        {
            var parser = new Parser(new StringReader(yaml));
            var nodes = 0;
            try
            {
                Expect<StreamStart>(parser);
                parser.MoveNext();
                if (parser.Current is StreamEnd)
                    throw Error(parser.Current.Start, "the policy file is empty", "start the file with 'apiVersion: audit.k8s.io/v1' and 'kind: Policy'");
                if (parser.Current is not DocumentStart)
                    throw Error(parser.Current!.Start, "expected a YAML document");
                parser.MoveNext();
                var root = ReadNodeCore(parser, 0, options, ref nodes);
                if (parser.Current is not DocumentEnd)
                    throw new AuditPolicyException(new AuditPolicyError(0, 0, "", "unexpected YAML after the document"));
                parser.MoveNext();
                if (parser.Current is DocumentStart extra)
                    throw Error(extra.Start, "the file holds more than one YAML document; a policy file is exactly one document", "remove the '---' separated extra documents");
                return root;
            }
            catch (YamlException ex)
            {
                throw new AuditPolicyException(new AuditPolicyError((int)ex.Start.Line, (int)ex.Start.Column, "", "invalid YAML: " + StripMark(ex.Message)));
            }
            catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or IndexOutOfRangeException or FormatException or OverflowException)
            {
                // YamlDotNet's scanner throws these on some malformed input (found by PolicyFuzzTests); the last
                // event it produced is the closest position we have.
                var at = parser.Current?.End ?? Mark.Empty;
                throw new AuditPolicyException(new AuditPolicyError((int)at.Line, (int)at.Column, "", $"invalid YAML near here ({ex.GetType().Name}: {ex.Message})"));
            }
        }

        private static string StripMark(string message)
        {
            // YamlDotNet prefixes "(Line: 3, Col: 1, Idx: 20) - (Line: ...): "; we report the position ourselves.
            var idx = message.IndexOf("): ", StringComparison.Ordinal);
            return message.StartsWith('(') && idx > 0 ? message[(idx + 3)..] : message;
        }

        private static void Expect<T>(Parser parser) where T : ParsingEvent
        {
            if (!parser.MoveNext())
                throw new AuditPolicyException(new AuditPolicyError(0, 0, "", "unexpected end of YAML"));
            if (parser.Current is not T)
                throw Error(parser.Current!.Start, $"unexpected YAML {parser.Current.GetType().Name}");
        }

        private static YNode ReadNodeCore(Parser parser, int depth, AuditPolicyLoaderOptions options, ref int nodes)
        {
            var ev = parser.Current ?? throw new AuditPolicyException(new AuditPolicyError(0, 0, "", "unexpected end of YAML"));
            if (++nodes > options.MaxNodes)
                throw Error(ev.Start, $"the policy has more than {options.MaxNodes} YAML nodes", "audit policies are small; check that the right file was given");
            if (ev is AnchorAlias alias)
                throw Error(ev.Start, $"YAML alias '*{alias.Value}' is not allowed in an audit policy (aliases can expand exponentially)", "write the values out instead of using anchors and aliases");
            if (ev is NodeEvent { Anchor.IsEmpty: false } anchored)
                throw Error(ev.Start, $"YAML anchor '&{anchored.Anchor}' is not allowed in an audit policy", "write the values out instead of using anchors and aliases");
            parser.MoveNext();
            switch (ev)
            {
                case Scalar s:
                    return new YScalar(s.Start, s.Value, s.Style);
                case SequenceStart:
                    {
                        if (depth + 1 > options.MaxDepth)
                            throw Error(ev.Start, $"YAML nesting is deeper than {options.MaxDepth} levels", "audit policies nest at most 5 levels; check the indentation");
                        var seq = new YSequence(ev.Start);
                        while (parser.Current is not SequenceEnd)
                            seq.Items.Add(ReadNodeCore(parser, depth + 1, options, ref nodes));
                        parser.MoveNext();
                        return seq;
                    }
                case MappingStart:
                    {
                        if (depth + 1 > options.MaxDepth)
                            throw Error(ev.Start, $"YAML nesting is deeper than {options.MaxDepth} levels", "audit policies nest at most 5 levels; check the indentation");
                        var map = new YMapping(ev.Start);
                        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
                        while (parser.Current is not MappingEnd)
                        {
                            var key = ReadNodeCore(parser, depth + 1, options, ref nodes);
                            if (key is not YScalar keyScalar)
                                throw Error(key, "mapping keys must be plain strings");
                            if (!seen.TryAdd(keyScalar.Value, keyScalar.Line))
                                throw Error(key, $"duplicate key '{keyScalar.Value}' (first at line {seen[keyScalar.Value]})", "keep one of the two entries");
                            var value = ReadNodeCore(parser, depth + 1, options, ref nodes);
                            map.Entries.Add(new(keyScalar, value));
                        }
                        parser.MoveNext();
                        return map;
                    }
                default:
                    throw Error(ev.Start, $"unexpected YAML {ev.GetType().Name}");
            }
        }
    }

    private static AuditPolicyException Error(Mark mark, string message, string? fix = null) =>
        new(new AuditPolicyError((int)mark.Line, (int)mark.Column, "", message, fix));

    private static AuditPolicyException Error(YNode node, string message, string? fix = null) =>
        new(new AuditPolicyError(node.Line, node.Column, "", message, fix));
}
