using System.CommandLine;
using Ebpf.Api;
using Ebpf.Api.Grpc;
using Ebpf.Api.V1;
using Ebpf.Cli.Output;
using Google.Protobuf;
using Timestamp = Google.Protobuf.WellKnownTypes.Timestamp;
using Spectre.Console;

namespace Ebpf.Cli.Commands;

/// <summary>Exit codes of the agent commands.</summary>
public static class AgentExit
{
    public const int Ok = 0;

    /// <summary>The agent answered no: not found, ambiguous prefix, rejected request.</summary>
    public const int NotFound = 1;

    /// <summary>Bad flags (System.CommandLine's own, or values checked by the command).</summary>
    public const int Usage = 2;

    /// <summary>The agent could not be reached (or found in the cluster), or did not answer in time.</summary>
    public const int Unreachable = 3;

    /// <summary>
    /// Several agents were asked and some could not be (each named in a warning on stderr): what was printed comes
    /// from the others only, so it may be incomplete.
    /// </summary>
    public const int Partial = 4;
}

/// <summary>
/// The commands that ask the agent: sessions, show, pod, watch, findings, status. pod opens one connection
/// (<see cref="AgentConnection"/>); sessions, show, findings, status and watch ask one agent or, on a multi-node
/// cluster, every agent (<see cref="AgentFanOut"/>) and merge. All render with <see cref="Views"/> or <see cref="Serialized"/>.
/// </summary>
public static class TraceCommands
{
    private static readonly string[] KindNames = ["node", "audit", "session", "attribution", "finding"];

    public static IEnumerable<Command> Create(CliEnvironment environment) =>
    [
        Sessions(environment), Show(environment), Pod(environment), Watch(environment), Findings(environment), Status(environment),
    ];

    private static Command Sessions(CliEnvironment environment)
    {
        var user = new Option<string?>("--user") { Description = "Only sessions of this user (as the audit log names them, e.g. alice@example.com)" };
        var ns = new Option<string?>("--namespace", "-n") { Description = "Only sessions in this namespace" };
        var pod = new Option<string?>("--pod") { Description = "Only sessions in this pod (with -n; also picks the agent on the pod's node)" };
        var since = new Option<string?>("--since") { Description = "Only sessions started after this: a duration back from now (30m, 1h, 2d) or an RFC 3339 time" };
        var until = new Option<string?>("--until") { Description = "Only sessions started before this (same forms as --since)" };
        var limit = new Option<uint>("--limit") { Description = "At most this many sessions, newest first", DefaultValueFactory = _ => 100 };
        var options = new AgentConnectionOptions();
        var command = new Command("sessions", "List exec/attach/port-forward sessions: who, where, what command, how sure the attribution is");
        foreach (var o in new Option[] { user, ns, pod, since, until, limit }) command.Options.Add(o);
        options.AddTo(command);
        command.SetAction((parse, ct) => RunOnAgentsAsync(parse, options, environment, ct, async (ctx, agents) =>
        {
            var now = environment.Time.GetUtcNow();
            var request = new ListSessionsRequest
            {
                User = parse.GetValue(user) ?? "",
                Namespace = parse.GetValue(ns) ?? "",
                Pod = parse.GetValue(pod) ?? "",
                Since = Point(parse.GetValue(since), "--since", now),
                Until = Point(parse.GetValue(until), "--until", now),
                Limit = parse.GetValue(limit),
            };
            var answers = await agents.AskAsync(async connection =>
            {
                var response = await connection.Client.ListSessionsAsync(request, ctx.Call).ConfigureAwait(false);
                if (agents.Several) await TagNodeAsync(response.Sessions, connection, ctx.Call).ConfigureAwait(false);
                return response.Sessions;
            }, ctx.Cancellation).ConfigureAwait(false);
            if (agents.Failed(answers, ctx.Error, out int failed)) return failed;
            var sessions = answers.Where(a => a.Answered).SelectMany(a => a.Value!).ToList();
            if (agents.Several)
            {
                // Each agent already applied the limit to its own newest; the cluster's newest are the top of the merge.
                sessions = sessions.OrderByDescending(s => SortKey(RecordText.StartOf(s)))
                    .Take(request.Limit == 0 ? DefaultLimit : (int)Math.Min(request.Limit, int.MaxValue)).ToList();
            }
            ctx.WriteList(sessions, console => Views.Sessions(console, sessions, ctx.Format == OutputFormat.Wide, nodeColumn: agents.Several));
            return agents.Conclude(answers, ctx.Error);
        }, targetPod: parse => parse.GetValue(pod) is { Length: > 0 } p ? (DiscoveryNamespace(parse, ns, options, environment), p) : null));
        return command;
    }

    private static Command Show(CliEnvironment environment)
    {
        var id = new Argument<string>("session") { Description = "Session id, or a unique prefix of one (as `sessions` prints it)" };
        var options = new AgentConnectionOptions();
        var command = new Command("show", "Show one session: who ran it, from where, and the tree of processes with their connections and files");
        command.Arguments.Add(id);
        options.AddTo(command);
        command.SetAction((parse, ct) => RunOnAgentsAsync(parse, options, environment, ct, async (ctx, agents) =>
        {
            string value = parse.GetValue(id)!;
            var answers = await agents.AskAsync(async connection =>
            {
                try
                {
                    var detail = await connection.Client.GetSessionAsync(new GetSessionRequest { Id = value }, ctx.Call).ConfigureAwait(false);
                    if (agents.Several) await TagNodeAsync([detail.Session], connection, ctx.Call).ConfigureAwait(false);
                    return detail;
                }
                catch (GrpcStatusException e) when (e.StatusCode == StatusCode.NotFound)
                {
                    return null;
                }
            }, ctx.Cancellation).ConfigureAwait(false);
            if (agents.Failed(answers, ctx.Error, out int failed)) return failed;
            var found = answers.Where(a => a.Value is not null).ToList();
            if (found.Count == 0)
            {
                ctx.Error.WriteLine($"error: session '{value}' not found");
                return agents.Conclude(answers, ctx.Error, AgentExit.NotFound);
            }
            // A prefix unique on each node can still match different sessions on different nodes.
            var ids = found.Select(a => a.Value!.Session).DistinctBy(s => s.Id, StringComparer.Ordinal).ToList();
            if (ids.Count > 1)
            {
                ctx.Error.WriteLine($"error: '{value}' matches {ids.Count} sessions on different nodes: "
                    + string.Join(", ", ids.Select(s => $"{s.Id} (node {s.Workload?.Node})")) + "; give more of the id");
                return agents.Conclude(answers, ctx.Error, AgentExit.NotFound);
            }
            var session = found[0].Value!;
            ctx.Write(session, console => Views.Session(console, session));
            return agents.Conclude(answers, ctx.Error);
        }));
        return command;
    }

    private static Command Pod(CliEnvironment environment)
    {
        var pod = new Argument<string>("pod") { Description = "Pod name" };
        var ns = new Option<string?>("--namespace", "-n") { Description = "Namespace of the pod. Defaults to the kubeconfig context's namespace, else \"default\"" };
        var since = new Option<string?>("--since") { Description = "Only activity after this: a duration back from now (30m, 1h, 2d) or an RFC 3339 time" };
        var limit = new Option<uint>("--limit") { Description = "At most this many API requests and sessions", DefaultValueFactory = _ => 100 };
        var options = new AgentConnectionOptions();
        var command = new Command("pod", "Who touched this pod: API requests on it (exec, attach, port-forward, delete, ...) and the sessions they started");
        command.Arguments.Add(pod);
        command.Options.Add(ns);
        command.Options.Add(since);
        command.Options.Add(limit);
        options.AddTo(command);
        string Namespace(ParseResult parse) =>
            parse.GetValue(ns) is { Length: > 0 } n ? n : AgentConnection.KubeconfigNamespace(parse, options, environment) ?? "default";
        command.SetAction((parse, ct) => RunAsync(parse, options, environment, ct, async (ctx, connection) =>
        {
            string n = Namespace(parse), p = parse.GetValue(pod)!;
            var request = new WhoTouchedRequest
            {
                Namespace = n, Pod = p, Since = Point(parse.GetValue(since), "--since", environment.Time.GetUtcNow()), Limit = parse.GetValue(limit),
            };
            var response = await connection.Client.WhoTouchedAsync(request, ctx.Call).ConfigureAwait(false);
            ctx.Write(response, console => Views.WhoTouched(console, n, p, response));
            return AgentExit.Ok;
        }, targetPod: parse => (Namespace(parse), parse.GetValue(pod)!)));
        return command;
    }

    private static Command Watch(CliEnvironment environment)
    {
        var kinds = new Option<string[]>("--kind")
        {
            Description = "Only these record kinds: node, audit, session, attribution, finding (repeat or comma-separate). Defaults to all",
            AllowMultipleArgumentsPerToken = true,
        };
        var ns = new Option<string?>("--namespace", "-n") { Description = "Only records about this namespace" };
        var pod = new Option<string?>("--pod") { Description = "Only records about this pod" };
        var user = new Option<string?>("--user") { Description = "Only records of this user's sessions" };
        var session = new Option<string?>("--session") { Description = "Only records of this session" };
        var from = new Option<ulong>("--from-sequence") { Description = "Replay stored records from this sequence number first (the #N of each line), then follow live" };
        var maxRecords = new Option<int>("--max-records") { Description = "Stop after this many records", Hidden = true };
        var options = new AgentConnectionOptions();
        var command = new Command("watch", "Follow records live, one line each, until Ctrl-C (-o json: one JSON object per line)");
        foreach (var o in new Option[] { kinds, ns, pod, user, session, from, maxRecords }) command.Options.Add(o);
        options.AddTo(command);
        command.SetAction((parse, ct) => RunOnAgentsAsync(parse, options, environment, ct, async (ctx, agents) =>
        {
            var request = new SubscribeRequest
            {
                Namespace = parse.GetValue(ns) ?? "", Pod = parse.GetValue(pod) ?? "", User = parse.GetValue(user) ?? "",
                SessionId = parse.GetValue(session) ?? "", FromSequence = parse.GetValue(from),
            };
            foreach (var kind in (parse.GetValue(kinds) ?? []).SelectMany(k => k.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)))
            {
                request.Kinds.Add(kind.ToLowerInvariant() switch
                {
                    "node" => RecordKind.NodeEvent,
                    "audit" => RecordKind.AuditEvent,
                    "session" => RecordKind.Session,
                    "attribution" => RecordKind.Attribution,
                    "finding" => RecordKind.Finding,
                    _ => throw new CliUsageException($"--kind '{kind}' is not one of {string.Join(", ", KindNames)}"),
                });
            }
            if (agents.Several && request.FromSequence > 0)
                throw new CliUsageException("--from-sequence: every agent numbers its own records, so it needs one agent: add --node (or --pod, or one --agent address)");
            return await WatchAsync(ctx, agents, request, parse.GetValue(maxRecords)).ConfigureAwait(false);
        }, targetPod: parse => parse.GetValue(pod) is { Length: > 0 } p ? (DiscoveryNamespace(parse, ns, options, environment), p) : null));
        return command;
    }

    /// <summary>
    /// Prints every record of one agent's stream, or of every agent's merged in arrival order with the node in front
    /// (`-o json`: a "node" member), until Ctrl-C, --max-records, or every stream has ended. With several agents one
    /// that fails is a warning and the others go on (exit 4 at the end); alone, it is the command's error.
    /// </summary>
    private static async Task<int> WatchAsync(CommandContext ctx, AgentFanOut agents, SubscribeRequest request, int max)
    {
        bool several = agents.Several;
        bool partial = several && agents.WarnNotRunning(ctx.Error);
        int seen = 0, failed = 0;
        bool rejected = false;
        try
        {
            // No deadline on the streams: a watch runs until Ctrl-C (the invocation's token) or the agents end them.
            await foreach (var item in agents.FollowAsync((connection, token) => connection.Client.SubscribeAsync(request, new GrpcCallOptions(CancellationToken: token)),
                ctx.Call, ctx.Cancellation).ConfigureAwait(false))
            {
                if (item.Failure is { } failure)
                {
                    if (!several)
                    {
                        ctx.Error.WriteLine($"error: {failure.Message}");
                        return failure.ExitCode;
                    }
                    ctx.Error.WriteLine($"{(failure.Rejected ? "error" : "warning")}: {failure.Message}");
                    ctx.Error.Flush();
                    rejected |= failure.Rejected;
                    failed++;
                    continue;
                }
                var record = item.Value!;
                ctx.Output.WriteLine(ctx.Format switch
                {
                    OutputFormat.Json => several ? Serialized.JsonWithNode(record, item.Node) : Serialized.Json(record),
                    OutputFormat.Yaml => "---\n" + Serialized.Yaml(several ? Serialized.JsonWithNode(record, item.Node) : Serialized.Json(record)).TrimEnd(),
                    _ => several ? $"[{item.Node}] {RecordText.Line(record)}" : RecordText.Line(record),
                });
                ctx.Output.Flush();
                if (max > 0 && ++seen >= max) break;
            }
        }
        catch (OperationCanceledException) when (ctx.Cancellation.IsCancellationRequested)
        {
            // Ctrl-C: the normal way to stop watching.
        }
        if (rejected) return AgentExit.NotFound;
        if (failed == agents.Endpoints.Count)
        {
            ctx.Error.WriteLine("error: no agent could be watched");
            return AgentExit.Unreachable;
        }
        return partial || failed > 0 ? AgentExit.Partial : AgentExit.Ok;
    }

    private static Command Findings(CliEnvironment environment)
    {
        var ns = new Option<string?>("--namespace", "-n") { Description = "Only findings in this namespace" };
        var pod = new Option<string?>("--pod") { Description = "Only findings about this pod" };
        var kind = new Option<string?>("--kind") { Description = "Only findings of this kind (e.g. exec-download)" };
        var since = new Option<string?>("--since") { Description = "Only findings after this: a duration back from now (30m, 1h, 2d) or an RFC 3339 time" };
        var limit = new Option<uint>("--limit") { Description = "At most this many findings, newest first", DefaultValueFactory = _ => 100 };
        var options = new AgentConnectionOptions();
        var command = new Command("findings", "List findings: suspicious things sessions did (downloads, writes to binaries, secrets read, ...)");
        foreach (var o in new Option[] { ns, pod, kind, since, limit }) command.Options.Add(o);
        options.AddTo(command);
        command.SetAction((parse, ct) => RunOnAgentsAsync(parse, options, environment, ct, async (ctx, agents) =>
        {
            var request = new ListFindingsRequest
            {
                Namespace = parse.GetValue(ns) ?? "", Pod = parse.GetValue(pod) ?? "", Kind = parse.GetValue(kind) ?? "",
                Since = Point(parse.GetValue(since), "--since", environment.Time.GetUtcNow()), Limit = parse.GetValue(limit),
            };
            var answers = await agents.AskAsync(async connection =>
            {
                var response = await connection.Client.ListFindingsAsync(request, ctx.Call).ConfigureAwait(false);
                if (agents.Several)
                {
                    string node = await connection.NodeAsync(ctx.Call).ConfigureAwait(false);
                    foreach (var finding in response.Findings.Where(f => f.Node.Length == 0)) finding.Node = node;
                }
                return response.Findings;
            }, ctx.Cancellation).ConfigureAwait(false);
            if (agents.Failed(answers, ctx.Error, out int failed)) return failed;
            var findings = answers.Where(a => a.Answered).SelectMany(a => a.Value!).ToList();
            if (agents.Several)
            {
                findings = findings.OrderByDescending(f => SortKey(f.Time))
                    .Take(request.Limit == 0 ? DefaultLimit : (int)Math.Min(request.Limit, int.MaxValue)).ToList();
            }
            ctx.WriteList(findings, console => Views.Findings(console, findings, nodeColumn: agents.Several));
            return agents.Conclude(answers, ctx.Error);
        }, targetPod: parse => parse.GetValue(pod) is { Length: > 0 } p ? (DiscoveryNamespace(parse, ns, options, environment), p) : null));
        return command;
    }

    private static Command Status(CliEnvironment environment)
    {
        var options = new AgentConnectionOptions();
        var command = new Command("status", "Agent health: version, node, attached probes, pod watch, ring buffer fill, store size, counters");
        options.AddTo(command);
        command.SetAction((parse, ct) => RunOnAgentsAsync(parse, options, environment, ct, async (ctx, agents) =>
        {
            var answers = await agents.AskAsync(connection => connection.Client.GetStatusAsync(new GetStatusRequest(), ctx.Call), ctx.Cancellation).ConfigureAwait(false);
            if (agents.Failed(answers, ctx.Error, out int failed)) return failed;
            var statuses = answers.Where(a => a.Answered).Select(a => a.Value!).ToList();
            if (agents.Several)
            {
                ctx.WriteList(statuses, console =>
                {
                    for (int i = 0; i < statuses.Count; i++)
                    {
                        if (i > 0) console.WriteLine();
                        Views.Status(console, statuses[i]);
                    }
                });
            }
            else
            {
                ctx.Write(statuses[0], console => Views.Status(console, statuses[0]));
            }
            return agents.Conclude(answers, ctx.Error);
        }));
        return command;
    }

    /// <summary>
    /// The namespace used to look up --pod's node: -n, else the kubeconfig context's, else "default" (the request
    /// itself keeps an empty namespace: all namespaces).
    /// </summary>
    private static string DiscoveryNamespace(ParseResult parse, Option<string?> ns, AgentConnectionOptions options, CliEnvironment environment) =>
        parse.GetValue(ns) is { Length: > 0 } n ? n : AgentConnection.KubeconfigNamespace(parse, options, environment) ?? "default";

    private static Timestamp? Point(string? text, string flag, DateTimeOffset now)
    {
        if (string.IsNullOrWhiteSpace(text)) return null;
        if (!TimeArgument.TryParsePoint(text, now, out var point, out string error))
            throw new CliUsageException($"{flag}: {error}");
        return Timestamp.FromDateTimeOffset(point);
    }

    /// <summary>What an agent command body gets: the format, the writers, per-call options.</summary>
    private sealed class CommandContext(ParseResult parse, OutputFormat format, GrpcCallOptions call, CancellationToken cancellation)
    {
        public OutputFormat Format { get; } = format;
        public TextWriter Output { get; } = parse.InvocationConfiguration.Output;
        public TextWriter Error { get; } = parse.InvocationConfiguration.Error;
        public GrpcCallOptions Call { get; } = call;
        public CancellationToken Cancellation { get; } = cancellation;

        /// <summary>One message: the view for table/wide, the proto3 JSON mapping (as an object) for json/yaml.</summary>
        public void Write(IMessage message, Action<IAnsiConsole> view) => Write(() => Serialized.Json(message), view);

        /// <summary>A list: the view, or a JSON/YAML array (an empty list is [] so scripts need no special case).</summary>
        public void WriteList(IEnumerable<IMessage> messages, Action<IAnsiConsole> view) => Write(() => Serialized.Json(messages), view);

        private void Write(Func<string> json, Action<IAnsiConsole> view)
        {
            switch (Format)
            {
                case OutputFormat.Json:
                    Output.WriteLine(Serialized.PrettyJson(json()));
                    break;
                case OutputFormat.Yaml:
                    Output.Write(Serialized.Yaml(json()));
                    break;
                default:
                    bool interactive = ReferenceEquals(Output, System.Console.Out) && !System.Console.IsOutputRedirected;
                    view(CliConsole.Create(Output, interactive));
                    break;
            }
            Output.Flush();
        }
    }

    /// <summary>The agent's own limit when a request says 0; a merged answer is cut to the same.</summary>
    private const int DefaultLimit = 100;

    /// <summary>Newest-first order of merged rows; compared as (seconds, nanos) so an out-of-range time from an agent cannot throw.</summary>
    private static (long Seconds, int Nanos) SortKey(Timestamp? time) => time is null ? (long.MinValue, 0) : (time.Seconds, time.Nanos);

    /// <summary>Fills the node of sessions that lack it (an audit-only session has no workload) with the answering agent's.</summary>
    private static async Task TagNodeAsync(IEnumerable<Session> sessions, AgentConnection connection, GrpcCallOptions call)
    {
        foreach (var session in sessions)
        {
            if (session.Workload is { Node.Length: > 0 }) continue;
            session.Workload ??= new Workload();
            session.Workload.Node = await connection.NodeAsync(call).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Runs a command that can ask every agent (sessions, findings, show, status): the agents come from
    /// <see cref="AgentConnection.PlanAsync"/> (one, unless an address list or a cluster without --node/--pod).
    /// </summary>
    private static async Task<int> RunOnAgentsAsync(ParseResult parse, AgentConnectionOptions options, CliEnvironment environment, CancellationToken cancellation,
        Func<CommandContext, AgentFanOut, Task<int>> body, Func<ParseResult, (string, string)?>? targetPod = null)
    {
        var error = parse.InvocationConfiguration.Error;
        OutputFormats.TryParse(parse.GetValue(options.Output), out var format);
        string timeoutText = parse.GetValue(options.Timeout)!;
        if (!TimeArgument.TryParseDuration(timeoutText, out var timeout) || timeout <= TimeSpan.Zero)
        {
            error.WriteLine($"error: --timeout '{timeoutText}' is not a duration like 10s or 1m");
            return AgentExit.Usage;
        }
        try
        {
            var settings = AgentClientSettings.Read(parse, options);
            var plan = await AgentConnection.PlanAsync(parse, options, environment, targetPod?.Invoke(parse), clusterWide: true, cancellation).ConfigureAwait(false);
            var ctx = new CommandContext(parse, format, new GrpcCallOptions(timeout, cancellation), cancellation);
            return await body(ctx, new AgentFanOut(plan, settings, timeoutText)).ConfigureAwait(false);
        }
        catch (CliUsageException e)
        {
            error.WriteLine($"error: {e.Message}");
            return AgentExit.Usage;
        }
        catch (Exception e) when (AgentFailure.From(e, null, timeoutText) is { } failure)
        {
            error.WriteLine($"error: {failure.Message}");
            return failure.ExitCode;
        }
        catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
        {
            return AgentExit.Ok;
        }
    }

    private static async Task<int> RunAsync(ParseResult parse, AgentConnectionOptions options, CliEnvironment environment, CancellationToken cancellation,
        Func<CommandContext, AgentConnection, Task<int>> body, Func<ParseResult, (string, string)?>? targetPod = null)
    {
        var error = parse.InvocationConfiguration.Error;
        OutputFormats.TryParse(parse.GetValue(options.Output), out var format);
        if (!TimeArgument.TryParseDuration(parse.GetValue(options.Timeout), out var timeout) || timeout <= TimeSpan.Zero)
        {
            error.WriteLine($"error: --timeout '{parse.GetValue(options.Timeout)}' is not a duration like 10s or 1m");
            return AgentExit.Usage;
        }
        AgentConnection? connection = null;
        try
        {
            connection = await AgentConnection.OpenAsync(parse, options, environment, targetPod?.Invoke(parse), cancellation).ConfigureAwait(false);
            var ctx = new CommandContext(parse, format, new GrpcCallOptions(timeout, cancellation), cancellation);
            return await body(ctx, connection).ConfigureAwait(false);
        }
        catch (CliUsageException e)
        {
            error.WriteLine($"error: {e.Message}");
            return AgentExit.Usage;
        }
        catch (Exception e) when (AgentFailure.From(e, connection?.Address, parse.GetValue(options.Timeout)!) is { } failure)
        {
            error.WriteLine($"error: {failure.Message}");
            return failure.ExitCode;
        }
        catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
        {
            return AgentExit.Ok;
        }
        finally
        {
            if (connection is not null) await connection.DisposeAsync().ConfigureAwait(false);
        }
    }
}
