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
