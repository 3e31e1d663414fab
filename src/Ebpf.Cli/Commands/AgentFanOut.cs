using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Ebpf.Api.Grpc;

namespace Ebpf.Cli.Commands;

/// <summary>Why one agent gave no answer, as the CLI prints it, and the exit code it maps to on its own.</summary>
public sealed record AgentFailure(int ExitCode, string Message)
{
    /// <summary>The agent answered, but no: the request itself was refused (exit 1), as opposed to an agent that could not be asked.</summary>
    public bool Rejected => ExitCode == AgentExit.NotFound;

    /// <summary>
    /// The message for an exception from reaching or asking an agent (null: not an agent failure, let it through).
    /// These are the single-agent CLI's error texts; <paramref name="address"/> is how the agent reads in them.
    /// </summary>
    public static AgentFailure? From(Exception exception, string? address, string timeoutText) => exception switch
    {
        AgentDiscoveryException e => new(AgentExit.Unreachable,
            $"cannot find the agent: {e.Message}. Pass --agent or set ${AgentConnectionOptions.AgentEnvironmentVariable} to skip discovery."),
        GrpcStatusException { StatusCode: StatusCode.Unavailable } e => new(AgentExit.Unreachable,
            $"cannot reach the agent at {address}: {Reason(e)}. Is ebpf-agent running? (--agent, ${AgentConnectionOptions.AgentEnvironmentVariable})"),
        GrpcStatusException { StatusCode: StatusCode.DeadlineExceeded } => new(AgentExit.Unreachable,
            $"the agent at {address} did not answer within {timeoutText} (--timeout)"),
        GrpcStatusException { StatusCode: StatusCode.Unauthenticated or StatusCode.PermissionDenied } e => new(AgentExit.Unreachable,
            $"the agent at {address} refused the request: {e.Detail} (--token-file)"),
        GrpcStatusException e => new(AgentExit.NotFound, e.Detail),
        _ => null,
    };

    /// <summary>The innermost socket or HTTP message ("Connection refused (127.0.0.1:1)"), not the gRPC wrapping.</summary>
    private static string Reason(GrpcStatusException e)
    {
        Exception inner = e;
        while (inner.InnerException is not null) inner = inner.InnerException;
        return inner == e ? e.Detail : inner.Message;
    }
}

/// <summary>One agent's part of a fanned-out command: its value, or why it has none.</summary>
public sealed record AgentAnswer<T>(AgentEndpoint Endpoint, T? Value, AgentFailure? Failure)
{
    public bool Answered => Failure is null;
}

/// <summary>
/// What a followed stream yields: an item of <paramref name="Node"/>'s agent, or (with <see cref="Failure"/> set) the
/// news that this agent's stream failed; the other agents' streams go on.
/// </summary>
public sealed record AgentStreamItem<T>(AgentEndpoint Endpoint, string Node, T? Value, AgentFailure? Failure);

/// <summary>
/// Asks several agents the same thing: the DaemonSet's agents each store only their own node, so a cluster-wide
/// question (sessions, findings, show, status) goes to every agent. At most <see cref="MaxConcurrentAgents"/> at
/// once, each with its own connection (and port-forward child), torn down as soon as its answer is in.
/// </summary>
public sealed class AgentFanOut(AgentPlan plan, AgentClientSettings settings, string timeoutText)
{
    /// <summary>Agents asked at once: each may be a kubectl child process, so a 100-node cluster must not start 100.</summary>
    public const int MaxConcurrentAgents = 8;

    public IReadOnlyList<AgentEndpoint> Endpoints => plan.Endpoints;

    /// <summary>More than one agent: results are merged and every row names its node.</summary>
    public bool Several => plan.Endpoints.Count > 1;

    /// <summary>
    /// Runs <paramref name="ask"/> against every agent; answers come back in <see cref="Endpoints"/> order.
    /// Agent failures (unreachable, refused, rejected) become <see cref="AgentAnswer{T}.Failure"/>; anything else throws.
    /// </summary>
    public async Task<IReadOnlyList<AgentAnswer<T>>> AskAsync<T>(Func<AgentConnection, Task<T>> ask, CancellationToken cancellationToken)
    {
        using var slots = new SemaphoreSlim(MaxConcurrentAgents);
        var tasks = plan.Endpoints.Select(async endpoint =>
        {
            await slots.WaitAsync(cancellationToken).ConfigureAwait(false);
            AgentConnection? connection = null;
            try
            {
                connection = await AgentConnection.ConnectAsync(endpoint, settings, cancellationToken).ConfigureAwait(false);
                return new AgentAnswer<T>(endpoint, await ask(connection).ConfigureAwait(false), null);
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested && AgentFailure.From(e, connection?.Address, timeoutText) is { } failure)
            {
                // A port-forward failure names the pod, not the node; with several agents the node is what the user knows.
                if (Several && e is AgentDiscoveryException && endpoint.Pod is { } pod)
                    failure = failure with { Message = $"node {pod.Node}: {failure.Message}" };
                return new AgentAnswer<T>(endpoint, default, failure);
            }
            finally
            {
                if (connection is not null) await connection.DisposeAsync().ConfigureAwait(false);
                slots.Release();
            }
        }).ToList();
        return await Task.WhenAll(tasks).ConfigureAwait(false);
    }

    /// <summary>
    /// Follows a stream from every agent at once (watch): all streams stay open together, so this is not limited to
    /// <see cref="MaxConcurrentAgents"/>. Items are yielded as they arrive, in arrival order across agents, each with
    /// the agent's node (asked once with <paramref name="call"/> of an agent given by address, when there are several).
    /// A failing agent yields one item with its <see cref="AgentStreamItem{T}.Failure"/> and leaves the others
    /// running; the enumeration ends when every stream has ended or failed, or when the caller stops reading (which
    /// cancels every stream and closes every connection).
    /// </summary>
    public async IAsyncEnumerable<AgentStreamItem<T>> FollowAsync<T>(Func<AgentConnection, CancellationToken, IAsyncEnumerable<T>> follow,
        GrpcCallOptions call, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        // Bounded: a terminal that cannot keep up slows the readers (HTTP/2 flow control pushes back to the agents,
        // whose per-subscriber queues drop oldest and say so), instead of buffering without limit here.
        var merged = Channel.CreateBounded<AgentStreamItem<T>>(new BoundedChannelOptions(1024) { SingleReader = true, SingleWriter = false });
        var streams = plan.Endpoints.Select(endpoint => PumpAsync(endpoint, follow, call with { CancellationToken = stop.Token }, merged.Writer, stop.Token)).ToList();
        // Anything that is not an agent failure (a bug) ends the whole enumeration with that exception.
        var allEnded = Task.WhenAll(streams).ContinueWith(t => merged.Writer.TryComplete(t.Exception?.InnerException), TaskScheduler.Default);
        try
        {
            await foreach (var item in merged.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
                yield return item;
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            await allEnded.ConfigureAwait(false);
        }
    }

    private async Task PumpAsync<T>(AgentEndpoint endpoint, Func<AgentConnection, CancellationToken, IAsyncEnumerable<T>> follow,
        GrpcCallOptions call, ChannelWriter<AgentStreamItem<T>> output, CancellationToken stop)
    {
        AgentConnection? connection = null;
        string node = endpoint.Pod?.Node ?? "";
        bool received = false;
        try
        {
            connection = await AgentConnection.ConnectAsync(endpoint, settings, stop).ConfigureAwait(false);
            if (Several && node.Length == 0) node = await connection.NodeAsync(call).ConfigureAwait(false);
            await foreach (var item in follow(connection, stop).ConfigureAwait(false))
            {
                received = true;
                await output.WriteAsync(new AgentStreamItem<T>(endpoint, node, item, null), stop).ConfigureAwait(false);
            }
            // With several agents the watch goes on without this one: say so, or its node would fall silent unnoticed.
            if (Several)
            {
                await output.WriteAsync(new AgentStreamItem<T>(endpoint, node, default,
                    new AgentFailure(AgentExit.Unreachable, $"{StreamName(endpoint, node)}: the agent ended its stream; its records are no longer followed")), stop).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (!stop.IsCancellationRequested && AgentFailure.From(e, connection?.Address, timeoutText) is { } failure)
        {
            if (Several && e is AgentDiscoveryException && endpoint.Pod is { } pod)
                failure = failure with { Message = $"node {pod.Node}: {failure.Message}" };
            // After records have flowed the agent was reachable and accepted the request: whatever the status, it is
            // this stream that broke, not a rejection. An agent shutting down (an upgrade) says UNAVAILABLE itself,
            // often before a quiet watch got any record: that too is the stream ending, not an unreachable agent.
            if (received || e is GrpcStatusException { StatusCode: StatusCode.Unavailable, InnerException: null })
                failure = new AgentFailure(AgentExit.Unreachable, $"{StreamName(endpoint, node)}: the stream broke ({BrokenReason(e)}); its records are no longer followed");
            try
            {
                await output.WriteAsync(new AgentStreamItem<T>(endpoint, node, default, failure), stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                // The reader has stopped meanwhile: nobody is left to tell.
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // The reader stopped (Ctrl-C, --max-records): the normal end of a watch.
        }
        finally
        {
            if (connection is not null) await connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>How a followed agent reads in warnings: its node, and the address when it was given as one.</summary>
    private static string StreamName(AgentEndpoint endpoint, string node) =>
        endpoint.Pod is not null ? $"node {node}" : node.Length > 0 ? $"node {node} ({endpoint.Text})" : endpoint.Text;

    private static string BrokenReason(Exception e)
    {
        if (e is GrpcStatusException status && status.InnerException is null) return $"{status.StatusCode}: {status.Detail}";
        while (e.InnerException is not null) e = e.InnerException;
        return e.Message;
    }

    /// <summary>
    /// Call before printing: when no usable answer came back, prints the errors and returns the exit code. A request an
    /// agent rejected (bad filter, ambiguous id) is an error for the whole command (exit 1); when every agent failed,
    /// each failure is printed as the single-agent CLI prints it (exit 3, or 1 if all rejected).
    /// </summary>
    public bool Failed<T>(IReadOnlyList<AgentAnswer<T>> answers, TextWriter error, out int exitCode)
    {
        var rejected = answers.Where(a => a.Failure is { Rejected: true }).Select(a => a.Failure!.Message).Distinct(StringComparer.Ordinal).ToList();
        if (rejected.Count > 0)
        {
            foreach (var message in rejected) error.WriteLine($"error: {message}");
            WriteWarnings(answers, error);
            exitCode = AgentExit.NotFound;
            return true;
        }
        if (answers.All(a => !a.Answered))
        {
            foreach (var message in answers.Select(a => a.Failure!.Message).Distinct(StringComparer.Ordinal))
                error.WriteLine($"error: {message}");
            WriteNotRunning(error);
            exitCode = AgentExit.Unreachable;
            return true;
        }
        exitCode = AgentExit.Ok;
        return false;
    }

    /// <summary>
    /// Call after printing: a warning per agent that did not answer and per node without a running agent; the exit
    /// code is <see cref="AgentExit.Partial"/> when there was any, else <paramref name="okExitCode"/>.
    /// </summary>
    public int Conclude<T>(IReadOnlyList<AgentAnswer<T>> answers, TextWriter error, int okExitCode = AgentExit.Ok) =>
        WriteWarnings(answers, error) ? AgentExit.Partial : okExitCode;

    /// <summary>A warning per node whose agent is not running (its data is missing); true when there was any.</summary>
    public bool WarnNotRunning(TextWriter error) => WriteNotRunning(error);

    private bool WriteNotRunning(TextWriter error)
    {
        foreach (var pod in plan.NotRunning)
            error.WriteLine($"warning: node {pod.Node}: the ebpf-agent pod {pod.Name} is not running; that node's data is missing");
        return plan.NotRunning.Count > 0;
    }

    private bool WriteWarnings<T>(IReadOnlyList<AgentAnswer<T>> answers, TextWriter error)
    {
        bool any = WriteNotRunning(error);
        foreach (var answer in answers.Where(a => a.Failure is { Rejected: false }))
        {
            error.WriteLine($"warning: {answer.Failure!.Message}");
            any = true;
        }
        return any;
    }
}
