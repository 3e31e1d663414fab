using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Serialization;
using Ebpf.Core.Audit;
using Ebpf.Core.Policy;
using Spectre.Console;

namespace Ebpf.Cli.Policy;

/// <summary><c>kubectl exectrace policy eval|lint|simulate</c>: work with kube-apiserver audit policies offline.</summary>
public static class PolicyCommand
{
    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        Converters = { new JsonStringEnumConverter() },
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public static Command Create()
    {
        var command = new Command("policy", "Evaluate, lint and simulate kube-apiserver audit policies (audit.k8s.io/v1)");
        command.Subcommands.Add(CreateEval());
        command.Subcommands.Add(CreateLint());
        command.Subcommands.Add(CreateSimulate());
        return command;
    }

    private static Option<string> OutputOption() => new("--output", "-o")
    {
        Description = "Output format: table or json",
        DefaultValueFactory = _ => "table",
    };

    private static Command CreateEval()
    {
        var policy = new Option<FileInfo>("--policy") { Description = "Audit policy file (audit.k8s.io/v1 Policy)", Required = true };
        var eventFile = new Option<FileInfo?>("--event") { Description = "Audit event file (JSON event, EventList or JSON lines); evaluates each event" };
        var user = new Option<string?>("--user") { Description = "User name (e.g. alice, system:serviceaccount:ns:sa)" };
        var groups = new Option<string[]>("--group") { Description = "User group; repeat for several", AllowMultipleArgumentsPerToken = true };
        var verb = new Option<string?>("--verb") { Description = "Verb: get, list, watch, create, update, patch, delete, deletecollection (or HTTP method for --path)" };
        var resource = new Option<string?>("--resource") { Description = "Resource (pods) or resource/subresource (pods/exec); makes it a resource request" };
        var subresource = new Option<string?>("--subresource") { Description = "Subresource (exec, attach, portforward, ...)" };
        var ns = new Option<string?>("--namespace", "-n") { Description = "Namespace (empty for cluster-scoped)" };
        var name = new Option<string?>("--name") { Description = "Object name" };
        var apiGroup = new Option<string?>("--api-group") { Description = "API group (empty for core)" };
        var path = new Option<string?>("--path") { Description = "URL path; without --resource this is a non-resource request (e.g. /healthz)" };
        var output = OutputOption();
        var command = new Command("eval", "Show the audit level a policy gives a request, and which rule decides it");
        foreach (var o in new Option[] { policy, eventFile, user, groups, verb, resource, subresource, ns, name, apiGroup, path, output })
            command.Options.Add(o);
        command.SetAction(parseResult =>
        {
            if (!CommandIo.TryStart(parseResult, output, parseResult.GetValue(policy)!, out var io, out var loaded))
                return CliExit.Usage;
            var evaluator = new AuditPolicyEvaluator(loaded);

            var requests = new List<(string Source, PolicyRequest Request)>();
            var eventPath = parseResult.GetValue(eventFile);
            if (eventPath is not null)
            {
                if (parseResult.GetValue(resource) is not null || parseResult.GetValue(path) is not null || parseResult.GetValue(verb) is not null)
                    return io.Fail("--event cannot be combined with request flags (--verb, --resource, --path)");
                if (!io.TryReadEvents(eventPath, out var events))
                    return CliExit.Usage;
                requests.AddRange(events.Select(e => (e.Location, PolicyRequest.FromAuditEvent(e.Event!))));
            }
            else
            {
                var verbValue = parseResult.GetValue(verb);
                var resourceValue = parseResult.GetValue(resource);
                var pathValue = parseResult.GetValue(path);
                if (string.IsNullOrEmpty(verbValue))
                    return io.Fail("give --verb (and --resource or --path), or --event FILE");
                if (resourceValue is null && pathValue is null)
                    return io.Fail("give --resource for a resource request or --path for a non-resource request");
                var sub = parseResult.GetValue(subresource) ?? "";
                if (resourceValue is not null && resourceValue.Contains('/', StringComparison.Ordinal))
                {
                    if (sub.Length > 0)
                        return io.Fail("give the subresource either as --resource pods/exec or as --subresource, not both");
                    var slash = resourceValue.IndexOf('/', StringComparison.Ordinal);
                    sub = resourceValue[(slash + 1)..];
                    resourceValue = resourceValue[..slash];
                }
                var groupValues = parseResult.GetValue(groups) ?? [];
                var userValue = parseResult.GetValue(user);
                requests.Add(("flags", new PolicyRequest
                {
                    User = userValue,
                    Groups = groupValues,
                    Verb = verbValue,
                    IsResourceRequest = resourceValue is not null,
                    ApiGroup = parseResult.GetValue(apiGroup) ?? "",
                    Resource = resourceValue ?? "",
                    Subresource = sub,
                    Namespace = parseResult.GetValue(ns) ?? "",
                    Name = parseResult.GetValue(name) ?? "",
                    Path = pathValue ?? "",
                }));
            }

            var results = requests.Select(r =>
            {
                var d = evaluator.Evaluate(r.Request);
                var rule = d.Matched ? loaded.Rules[d.RuleIndex] : null;
                return new EvalResult(r.Source, r.Request.ToString(), d.Level, d.Matched ? d.RuleIndex : null,
                    rule?.Line, rule?.Summary() ?? "no rule matched: the API server's default level None applies",
                    AuditPolicyNames.Names(d.OmitStages), d.OmitManagedFields);
            }).ToArray();

            if (io.IsJson)
            {
                if (results.Length == 1 && eventPath is null) io.WriteJson(results[0]); else io.WriteJson(results);
                return CliExit.Ok;
            }
            foreach (var r in results)
            {
                io.Out.WriteLine($"{r.Source}: {r.Request}");
                io.Out.WriteLine($"  level: {r.Level}");
                io.Out.WriteLine(r.RuleIndex is { } i
                    ? $"  why:   rule {i} (line {r.RuleLine}) is the first rule that matches: {r.Rule}"
                    : $"  why:   {r.Rule}");
                io.Out.WriteLine($"  omitStages: {(r.OmitStages.Count == 0 ? "(none)" : string.Join(",", r.OmitStages))}   omitManagedFields: {(r.OmitManagedFields ? "true" : "false")}");
            }
            return CliExit.Ok;
        });
        return command;
    }

    private sealed record EvalResult(string Source, string Request, AuditPolicyLevel Level, int? RuleIndex, int? RuleLine, string Rule, IReadOnlyList<string> OmitStages, bool OmitManagedFields);

    private static Command CreateLint()
    {
        var file = new Argument<FileInfo>("FILE") { Description = "Audit policy file (audit.k8s.io/v1 Policy)" };
        var output = OutputOption();
        var command = new Command("lint", "Check an audit policy: secret leaks, exec capture, volume, dead rules, typos. Exit code 1 when there are errors");
        command.Arguments.Add(file);
        command.Options.Add(output);
        command.SetAction(parseResult =>
        {
            if (!CommandIo.TryStart(parseResult, output, parseResult.GetValue(file)!, out var io, out var policy))
                return CliExit.Usage;
            var findings = PolicyLinter.Lint(policy);
            var errors = findings.Count(f => f.Severity == PolicyFindingSeverity.Error);
            if (io.IsJson)
            {
                io.WriteJson(new { errors, warnings = findings.Count(f => f.Severity == PolicyFindingSeverity.Warning), findings });
            }
            else if (findings.Count == 0)
            {
                io.Out.WriteLine("no findings");
            }
            else
            {
                foreach (var f in findings)
                {
                    var rule = f.RuleIndex is { } i ? $"rule {i}" : "policy";
                    io.Out.WriteLine($"{f.Severity.ToString().ToLowerInvariant(),-7} {rule,-8} {f.Code}");
                    io.Out.WriteLine($"        {f.Message}");
                    io.Out.WriteLine($"        fix: {f.Fix}");
                }
                io.Out.WriteLine($"{errors} error(s), {findings.Count(f => f.Severity == PolicyFindingSeverity.Warning)} warning(s), {findings.Count(f => f.Severity == PolicyFindingSeverity.Info)} info");
            }
            return errors > 0 ? CliExit.LintErrors : CliExit.Ok;
        });
        return command;
    }

    private static Command CreateSimulate()
    {
        var policy = new Option<FileInfo>("--policy") { Description = "Audit policy file (audit.k8s.io/v1 Policy)", Required = true };
        var logs = new Option<FileInfo[]>("--log")
        {
            Description = "Audit log: JSON lines, a JSON event or an EventList; repeat for several files",
            Required = true,
            AllowMultipleArgumentsPerToken = true,
        };
        var output = OutputOption();
        var command = new Command("simulate", "Apply a policy to a recorded audit log: events and bytes kept per level and per rule");
        command.Options.Add(policy);
        command.Options.Add(logs);
        command.Options.Add(output);
        command.SetAction(parseResult =>
        {
            if (!CommandIo.TryStart(parseResult, output, parseResult.GetValue(policy)!, out var io, out var loaded))
                return CliExit.Usage;
            var simulator = new PolicySimulator(loaded);
            var parser = new AuditEventParser();
            foreach (var log in parseResult.GetValue(logs) ?? [])
            {
                if (!log.Exists)
                    return io.Fail($"log file '{log.FullName}' does not exist");
                try
                {
                    if (log.Length <= parser.Options.MaxDocumentBytes)
                    {
                        simulator.AddDocument(File.ReadAllBytes(log.FullName), log.Name, parser);
                    }
                    else
                    {
                        using var stream = log.OpenRead();
                        simulator.AddJsonLines(stream, log.Name, parser);
                    }
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    return io.Fail($"cannot read log file '{log.FullName}': {ex.Message}");
                }
            }
            var report = simulator.Report();
            if (io.IsJson)
            {
                io.WriteJson(report);
                return CliExit.Ok;
            }
            WriteSimulation(io, report);
            return CliExit.Ok;
        });
        return command;
    }

    private static void WriteSimulation(CommandIo io, PolicySimulationReport report)
    {
        io.Out.WriteLine($"events read: {report.EventsRead}  kept: {report.EventsKept}  dropped: {report.EventsDropped}  unparseable: {report.EventsRejected}");
        io.Out.WriteLine($"bytes in: {report.BytesIn}  bytes kept: {report.BytesKept} ({Percent(report.BytesKept, report.BytesIn)})");
        var levels = new Table().AddColumns("level", "events", "kept", "bytes in", "bytes kept");
        foreach (var l in report.ByLevel)
            levels.AddRow(l.Level.ToString(), l.Events.ToString(), l.EventsKept.ToString(), l.BytesIn.ToString(), l.BytesKept.ToString());
        io.Console.Write(levels);
        var rules = new Table().AddColumns("rule", "level", "events", "kept", "dropped (level None)", "dropped (stage omitted)", "bytes in", "bytes kept", "omitted stages", "summary");
        foreach (var r in report.ByRule.Where(r => r.Events > 0))
        {
            rules.AddRow(r.RuleIndex?.ToString() ?? "-", r.Level.ToString(), r.Events.ToString(), r.EventsKept.ToString(), r.DroppedByLevel.ToString(),
                r.DroppedByStage.ToString(), r.BytesIn.ToString(), r.BytesKept.ToString(), Markup.Escape(string.Join(",", r.OmittedStages)), Markup.Escape(r.Summary));
        }
        io.Console.Write(rules);
        if (report.DroppedByStage.Count > 0)
            io.Out.WriteLine("dropped because the stage is omitted: " + string.Join(", ", report.DroppedByStage.Select(kv => $"{kv.Key}={kv.Value}")));
        foreach (var rejection in report.Rejections.Take(10))
            io.Out.WriteLine($"unparseable: {rejection}");
    }

    private static string Percent(long part, long whole) => whole == 0 ? "n/a" : $"{100.0 * part / whole:0.0}%";

    /// <summary>Writers, format and error reporting shared by the policy subcommands.</summary>
    private sealed class CommandIo(ParseResult parseResult)
    {
        public TextWriter Out { get; } = parseResult.InvocationConfiguration.Output;
        public TextWriter Error { get; } = parseResult.InvocationConfiguration.Error;
        public bool IsJson { get; private set; }

        private IAnsiConsole? _console;

        // Colours and width detection only for a real terminal; redirected output stays plain.
        public IAnsiConsole Console => _console ??= AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(Out),
            Ansi = ReferenceEquals(Out, System.Console.Out) && !System.Console.IsOutputRedirected ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = ReferenceEquals(Out, System.Console.Out) && !System.Console.IsOutputRedirected ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
        }).WithWidth(ReferenceEquals(Out, System.Console.Out) && !System.Console.IsOutputRedirected ? null : 200);

        /// <summary>
        /// What every policy subcommand does first: check --output, then load the policy. False when either fails, the
        /// reason already written to the error stream; the command then exits with <see cref="CliExit.Usage"/>.
        /// </summary>
        public static bool TryStart(ParseResult parseResult, Option<string> output, FileInfo policyFile, out CommandIo io, out AuditPolicy policy)
        {
            io = new CommandIo(parseResult);
            policy = null!;
            return io.CheckFormat(parseResult.GetValue(output)) && io.TryLoadPolicy(policyFile, out policy);
        }

        private bool CheckFormat(string? format)
        {
            switch (format)
            {
                case "table" or null:
                    return true;
                case "json":
                    IsJson = true;
                    return true;
                default:
                    Error.WriteLine($"error: unknown output format '{format}': use table or json");
                    return false;
            }
        }

        public int Fail(string message)
        {
            Error.WriteLine($"error: {message}");
            return CliExit.Usage;
        }

        private bool TryLoadPolicy(FileInfo file, out AuditPolicy policy)
        {
            try
            {
                policy = AuditPolicyLoader.LoadFile(file.FullName);
                return true;
            }
            catch (AuditPolicyException ex)
            {
                Error.WriteLine($"error: invalid audit policy {file.FullName}:");
                foreach (var e in ex.Errors)
                    Error.WriteLine($"  {e}");
                policy = null!;
                return false;
            }
        }

        public bool TryReadEvents(FileInfo file, out IReadOnlyList<AuditParseItem> events)
        {
            events = [];
            var parser = new AuditEventParser();
            if (!file.Exists)
            {
                Fail($"event file '{file.FullName}' does not exist");
                return false;
            }
            if (file.Length > parser.Options.MaxDocumentBytes)
            {
                Fail($"event file '{file.FullName}' is larger than {parser.Options.MaxDocumentBytes} bytes; use 'policy simulate' for logs");
                return false;
            }
            AuditParseBatch batch;
            try
            {
                batch = parser.ParseDocument(File.ReadAllBytes(file.FullName), file.Name);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                Fail($"cannot read event file '{file.FullName}': {ex.Message}");
                return false;
            }
            if (batch.DocumentError is not null)
            {
                Fail($"{file.Name}: {batch.DocumentError}");
                return false;
            }
            foreach (var rejected in batch.Items.Where(i => i.Event is null))
                Error.WriteLine($"warning: skipped {rejected.Location}: {rejected.Rejection}");
            events = batch.Items.Where(i => i.Event is not null).ToArray();
            if (events.Count == 0)
            {
                Fail($"{file.Name}: no audit event could be read");
                return false;
            }
            return true;
        }

        public void WriteJson<T>(T value) => Out.WriteLine(JsonSerializer.Serialize(value, Json));
    }
}

internal static class AnsiConsoleExtensions
{
    public static IAnsiConsole WithWidth(this IAnsiConsole console, int? width)
    {
        if (width is { } w)
            console.Profile.Width = w;
        return console;
    }
}

/// <summary>Exit codes of the policy commands.</summary>
public static class CliExit
{
    public const int Ok = 0;

    /// <summary><c>policy lint</c> found at least one error.</summary>
    public const int LintErrors = 1;

    /// <summary>Bad flags, unreadable or invalid input files.</summary>
    public const int Usage = 2;
}
