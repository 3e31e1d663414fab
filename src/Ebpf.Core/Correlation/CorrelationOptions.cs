using System.Net;

namespace Ebpf.Core.Correlation;

/// <summary>Windows, horizons and bounds of <see cref="ExecSessionCorrelator"/>. docs/correlation.md explains each.</summary>
public sealed class CorrelationOptions
{
    /// <summary>
    /// Clock difference tolerated between the API server and this node: a root may start this long before
    /// requestReceived. Defaults to 2 s.
    /// </summary>
    public TimeSpan ClockSkew { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// How long after ResponseStarted (or requestReceived when the policy omits ResponseStarted) the root of an
    /// exec may start: kubelet → CRI → shim → runc exec. Defaults to 5 s.
    /// </summary>
    public TimeSpan StartWindow { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long a node-side root waits for its audit event before it is declared a probe or an unattributed
    /// exec. Webhook batching and retries delay audit events by 30 s and more. Defaults to 120 s.
    /// </summary>
    public TimeSpan AuditLatencyAllowance { get; set; } = TimeSpan.FromSeconds(120);

    /// <summary>
    /// How long after its window closed an allowed exec request waits for a late node event before it is declared
    /// audit-only; also how long a token check waits for connect events. Defaults to 5 s.
    /// </summary>
    public TimeSpan NodeEventGrace { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// attach and port-forward windows end at ResponseComplete; when it never arrives (policy omits it, the
    /// stream is still open) they end this long after requestReceived. Defaults to 1 h.
    /// </summary>
    public TimeSpan StreamWindowWithoutCompletion { get; set; } = TimeSpan.FromHours(1);

    /// <summary>A session with no live process is dropped this long after its last activity. Defaults to 15 min.</summary>
    public TimeSpan SessionRetention { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>An exited process is forgotten this long after its exit (it must outlive <see cref="AuditLatencyAllowance"/>). Defaults to 5 min.</summary>
    public TimeSpan ExitedProcessRetention { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Upper bound of tracked processes; beyond it the oldest exited ones are forgotten early. Defaults to 200,000.</summary>
    public int MaxTrackedProcesses { get; set; } = 200_000;

    /// <summary>Upper bound of sessions kept; beyond it the oldest finished ones are dropped early. Defaults to 50,000.</summary>
    public int MaxSessions { get; set; } = 50_000;

    /// <summary>Node-event sequences remembered per not-yet-attributed process for <see cref="AttributionUpdated.Sequences"/>. Defaults to 64.</summary>
    public int MaxPendingSequencesPerProcess { get; set; } = 64;

    /// <summary>This node's name: token checks only apply to tokens bound to pods of this node. Null: any pod the lookup knows.</summary>
    public string? NodeName { get; set; }

    /// <summary>
    /// Addresses a pod reaches the API server at: the kubernetes Service cluster IP:443 (connect sees the address
    /// before DNAT) and the endpoints. Empty disables the token-to-process join. Defaults to empty.
    /// </summary>
    public IReadOnlyList<IPEndPoint> ApiServerEndpoints { get; set; } = [];

    public void Validate()
    {
        static void Positive(TimeSpan value, string name)
        {
            if (value < TimeSpan.Zero) throw new ArgumentOutOfRangeException(name, value, $"{name} must not be negative.");
        }
        Positive(ClockSkew, nameof(ClockSkew));
        Positive(StartWindow, nameof(StartWindow));
        Positive(AuditLatencyAllowance, nameof(AuditLatencyAllowance));
        Positive(NodeEventGrace, nameof(NodeEventGrace));
        Positive(StreamWindowWithoutCompletion, nameof(StreamWindowWithoutCompletion));
        Positive(SessionRetention, nameof(SessionRetention));
        Positive(ExitedProcessRetention, nameof(ExitedProcessRetention));
        if (ExitedProcessRetention < AuditLatencyAllowance)
            throw new ArgumentOutOfRangeException(nameof(ExitedProcessRetention), ExitedProcessRetention,
                "ExitedProcessRetention must be at least AuditLatencyAllowance: a short exec exits long before its audit event arrives.");
        if (MaxTrackedProcesses <= 0) throw new ArgumentOutOfRangeException(nameof(MaxTrackedProcesses), MaxTrackedProcesses, "must be positive");
        if (MaxSessions <= 0) throw new ArgumentOutOfRangeException(nameof(MaxSessions), MaxSessions, "must be positive");
        if (MaxPendingSequencesPerProcess < 0) throw new ArgumentOutOfRangeException(nameof(MaxPendingSequencesPerProcess), MaxPendingSequencesPerProcess, "must not be negative");
    }
}
