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
}

/// <summary>
/// The commands that ask the agent: sessions, show, pod, watch, findings, status. Each opens one connection
/// (<see cref="AgentConnection"/>), makes its calls and renders with <see cref="Views"/> or <see cref="Serialized"/>.
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
        command.SetAction((parse, ct) => RunAsync(parse, options, environment, ct, async (ctx, connection) =>
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
            var response = await connection.Client.ListSessionsAsync(request, ctx.Call).ConfigureAwait(false);
            ctx.WriteList(response.Sessions, console => Views.Sessions(console, response.Sessions, ctx.Format == OutputFormat.Wide));
            return AgentExit.Ok;
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
        command.SetAction((parse, ct) => RunAsync(parse, options, environment, ct, async (ctx, connection) =>
        {
            string value = parse.GetValue(id)!;
            SessionDetail detail;
            try
            {
                detail = await connection.Client.GetSessionAsync(new GetSessionRequest { Id = value }, ctx.Call).ConfigureAwait(false);
            }
            catch (GrpcStatusException e) when (e.StatusCode == StatusCode.NotFound)
            {
                ctx.Error.WriteLine($"error: session '{value}' not found");
                return AgentExit.NotFound;
            }
            ctx.Write(detail, console => Views.Session(console, detail));
            return AgentExit.Ok;
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
        command.SetAction((parse, ct) => RunAsync(parse, options, environment, ct, async (ctx, connection) =>
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
            int max = parse.GetValue(maxRecords), seen = 0;
            try
            {
                // No deadline: a watch runs until Ctrl-C (the invocation's token) or the agent ends the stream.
                await foreach (var record in connection.Client.SubscribeAsync(request, new GrpcCallOptions(CancellationToken: ctx.Cancellation)).ConfigureAwait(false))
                {
                    ctx.Output.WriteLine(ctx.Format switch
                    {
                        OutputFormat.Json => Serialized.Json(record),
                        OutputFormat.Yaml => "---\n" + Serialized.Yaml(Serialized.Json(record)).TrimEnd(),
                        _ => RecordText.Line(record),
                    });
                    ctx.Output.Flush();
                    if (max > 0 && ++seen >= max) break;
                }
            }
            catch (OperationCanceledException) when (ctx.Cancellation.IsCancellationRequested)
            {
                // Ctrl-C: the normal way to stop watching.
            }
            return AgentExit.Ok;
        }, timeoutApplies: false));
        return command;
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
        command.SetAction((parse, ct) => RunAsync(parse, options, environment, ct, async (ctx, connection) =>
        {
            var request = new ListFindingsRequest
            {
                Namespace = parse.GetValue(ns) ?? "", Pod = parse.GetValue(pod) ?? "", Kind = parse.GetValue(kind) ?? "",
                Since = Point(parse.GetValue(since), "--since", environment.Time.GetUtcNow()), Limit = parse.GetValue(limit),
            };
            var response = await connection.Client.ListFindingsAsync(request, ctx.Call).ConfigureAwait(false);
            ctx.WriteList(response.Findings, console => Views.Findings(console, response.Findings));
            return AgentExit.Ok;
        }, targetPod: parse => parse.GetValue(pod) is { Length: > 0 } p ? (DiscoveryNamespace(parse, ns, options, environment), p) : null));
        return command;
    }

    private static Command Status(CliEnvironment environment)
    {
        var options = new AgentConnectionOptions();
        var command = new Command("status", "Agent health: version, node, attached probes, pod watch, ring buffer fill, store size, counters");
        options.AddTo(command);
        command.SetAction((parse, ct) => RunAsync(parse, options, environment, ct, async (ctx, connection) =>
        {
            var status = await connection.Client.GetStatusAsync(new GetStatusRequest(), ctx.Call).ConfigureAwait(false);
            ctx.Write(status, console => Views.Status(console, status));
            return AgentExit.Ok;
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

    private static async Task<int> RunAsync(ParseResult parse, AgentConnectionOptions options, CliEnvironment environment, CancellationToken cancellation,
        Func<CommandContext, AgentConnection, Task<int>> body, Func<ParseResult, (string, string)?>? targetPod = null, bool timeoutApplies = true)
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
            var ctx = new CommandContext(parse, format, new GrpcCallOptions(timeoutApplies ? timeout : null, cancellation), cancellation);
            return await body(ctx, connection).ConfigureAwait(false);
        }
        catch (CliUsageException e)
        {
            error.WriteLine($"error: {e.Message}");
            return AgentExit.Usage;
        }
        catch (AgentDiscoveryException e)
        {
            error.WriteLine($"error: cannot find the agent: {e.Message}. Pass --agent or set ${AgentConnectionOptions.AgentEnvironmentVariable} to skip discovery.");
            return AgentExit.Unreachable;
        }
        catch (GrpcStatusException e) when (e.StatusCode == StatusCode.Unavailable)
        {
            error.WriteLine($"error: cannot reach the agent at {connection?.Address}: {Reason(e)}. Is ebpf-agent running? (--agent, ${AgentConnectionOptions.AgentEnvironmentVariable})");
            return AgentExit.Unreachable;
        }
        catch (GrpcStatusException e) when (e.StatusCode == StatusCode.DeadlineExceeded)
        {
            error.WriteLine($"error: the agent at {connection?.Address} did not answer within {parse.GetValue(options.Timeout)} (--timeout)");
            return AgentExit.Unreachable;
        }
        catch (GrpcStatusException e) when (e.StatusCode is StatusCode.Unauthenticated or StatusCode.PermissionDenied)
        {
            error.WriteLine($"error: the agent at {connection?.Address} refused the request: {e.Detail} (--token-file)");
            return AgentExit.Unreachable;
        }
        catch (GrpcStatusException e)
        {
            error.WriteLine($"error: {e.Detail}");
            return AgentExit.NotFound;
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

    /// <summary>The innermost socket or HTTP message ("Connection refused (127.0.0.1:1)"), not the gRPC wrapping.</summary>
    private static string Reason(GrpcStatusException e)
    {
        Exception inner = e;
        while (inner.InnerException is not null) inner = inner.InnerException;
        return inner == e ? e.Detail : inner.Message;
    }
}
