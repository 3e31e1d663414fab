namespace Ebpf.Core.Audit;

/// <summary>
/// Values computed once per event from its fields. Never throws: a hostile requestURI leaves
/// <see cref="AuditStreamingRequest.QueryError"/> set and the argv empty rather than guessed.
/// </summary>
public sealed record AuditDerivedFields
{
    /// <summary>Whom to attribute the request to: <c>impersonatedUser</c> when present, else <c>user</c>.</summary>
    public required AuditUserInfo? AttributedUser { get; init; }

    /// <summary>True when <see cref="AttributedUser"/> came from <c>impersonatedUser</c>; <c>user</c> is then the impersonator.</summary>
    public required bool IsImpersonated { get; init; }

    /// <summary>Set for pods/exec, pods/attach, pods/portforward and pods/ephemeralcontainers requests.</summary>
    public required AuditStreamingRequest? Streaming { get; init; }

    /// <summary>Set when the caller authenticated with a pod-bound service-account token (details in user.extra).</summary>
    public required AuditBoundTokenInfo? BoundToken { get; init; }

    /// <summary>
    /// When the stage was reached: <c>stageTimestamp</c>, else the legacy <c>timestamp</c>, else
    /// <c>metadata.creationTimestamp</c>. Null only for events the parser rejects.
    /// </summary>
    public required DateTimeOffset? StageTime { get; init; }

    /// <summary>When the API server received the request: <c>requestReceivedTimestamp</c>, else <see cref="StageTime"/>.</summary>
    public required DateTimeOffset? RequestReceivedTime { get; init; }

    /// <summary>
    /// Identity of this event for deduplication. auditID alone is not unique: every stage of one request shares it,
    /// and clients may set it themselves (Audit-ID request header), so stage and stage time are part of the key.
    /// </summary>
    public required AuditDedupeKey DedupeKey { get; init; }

    internal static AuditDerivedFields Compute(AuditEvent e)
    {
        var stageTime = e.StageTimestamp ?? e.Timestamp ?? e.Metadata?.CreationTimestamp;
        var impersonated = e.ImpersonatedUser is { Username.Length: > 0 };
        return new AuditDerivedFields
        {
            AttributedUser = impersonated ? e.ImpersonatedUser : e.User,
            IsImpersonated = impersonated,
            Streaming = AuditStreamingRequest.TryCreate(e),
            BoundToken = AuditBoundTokenInfo.FromUser(e.User),
            StageTime = stageTime,
            RequestReceivedTime = e.RequestReceivedTimestamp ?? stageTime,
            DedupeKey = new AuditDedupeKey(e.AuditId ?? string.Empty, e.Stage ?? string.Empty, stageTime ?? default),
        };
    }
}

/// <summary>Dedupe identity of an audit event: (auditID, stage, stage time).</summary>
public readonly record struct AuditDedupeKey(string AuditId, string Stage, DateTimeOffset StageTime)
{
    public override string ToString() => $"{AuditId}/{Stage}/{StageTime.UtcDateTime:O}";
}

/// <summary>The pod subresources that open a session into (or add a container to) a running pod.</summary>
public enum AuditStreamingKind
{
    Exec = 1,
    Attach = 2,
    PortForward = 3,
    EphemeralContainers = 4,
}

/// <summary>
/// Details of an exec/attach/portforward/ephemeralcontainers request. The API server records them only in
/// <c>requestURI</c>: PodExecOptions/PodAttachOptions/PodPortForwardOptions are query parameters
/// (k8s.io/api/core/v1/types.go), form-encoded, <c>command=</c> once per argv element.
/// </summary>
public sealed record AuditStreamingRequest
{
    public required AuditStreamingKind Kind { get; init; }
    public required string? PodNamespace { get; init; }
    public required string? PodName { get; init; }

    /// <summary>The <c>container</c> parameter (first value, as the API server's query conversion takes it); for ephemeralcontainers the last ephemeral container named in the request body, if logged.</summary>
    public required string? Container { get; init; }

    /// <summary>Decoded argv, in order. Empty when absent or when the query could not be decoded.</summary>
    public required IReadOnlyList<string> Command { get; init; }
    public required bool Tty { get; init; }
    public required bool Stdin { get; init; }
    public required bool Stdout { get; init; }
    public required bool Stderr { get; init; }

    /// <summary>Port-forward <c>ports</c> (repeated or comma-separated). Empty for other kinds.</summary>
    public required IReadOnlyList<int> Ports { get; init; }

    /// <summary>Why the query string was rejected (bad escape, invalid UTF-8, too long), or null when it decoded cleanly.</summary>
    public required string? QueryError { get; init; }

    internal static AuditStreamingRequest? TryCreate(AuditEvent e)
    {
        var kind = (e.ObjectRef?.Resource, e.ObjectRef?.Subresource) switch
        {
            ("pods", "exec") => AuditStreamingKind.Exec,
            ("pods", "attach") => AuditStreamingKind.Attach,
            ("pods", "portforward") => AuditStreamingKind.PortForward,
            ("pods", "ephemeralcontainers") => AuditStreamingKind.EphemeralContainers,
            _ => (AuditStreamingKind)0,
        };
        if (kind == 0)
        {
            return null;
        }

        var uri = e.RequestUri ?? string.Empty;
        var q = uri.IndexOf('?', StringComparison.Ordinal);
        var query = q < 0 ? ReadOnlySpan<char>.Empty : uri.AsSpan(q + 1);
        var parameters = new List<KeyValuePair<string, string>>();
        var error = query.IsEmpty ? null : FormQueryDecoder.TryDecode(query, parameters);
        if (error is not null)
        {
            parameters.Clear();
        }

        string? container = null;
        var command = new List<string>();
        var ports = new List<int>();
        bool tty = false, stdin = false, stdout = false, stderr = false;
        foreach (var (key, value) in parameters)
        {
            switch (key)
            {
                case "container":
                    container ??= value;
                    break;
                case "command":
                    command.Add(value);
                    break;
                case "tty":
                    tty = ParseBool(value);
                    break;
                case "stdin":
                    stdin = ParseBool(value);
                    break;
                case "stdout":
                    stdout = ParseBool(value);
                    break;
                case "stderr":
                    stderr = ParseBool(value);
                    break;
                case "ports" when kind == AuditStreamingKind.PortForward:
                    foreach (var part in value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
                    {
                        if (int.TryParse(part, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port) && port is > 0 and <= 65535)
                        {
                            ports.Add(port);
                        }
                        else
                        {
                            error ??= $"invalid port '{Truncate(part)}'";
                        }
                    }

                    break;
            }
        }

        if (kind == AuditStreamingKind.EphemeralContainers && container is null)
        {
            container = LastEphemeralContainerName(e);
        }

        return new AuditStreamingRequest
        {
            Kind = kind,
            PodNamespace = e.ObjectRef?.Namespace,
            PodName = e.ObjectRef?.Name,
            Container = container,
            Command = command,
            Tty = tty,
            Stdin = stdin,
            Stdout = stdout,
            Stderr = stderr,
            Ports = ports,
            QueryError = error,
        };
    }

    // Mirrors apimachinery's Convert_Slice_string_To_bool: only an explicit false-like value is false.
    private static bool ParseBool(string value) => value.ToLowerInvariant() switch
    {
        "" or "0" or "f" or "false" or "n" or "no" or "off" => false,
        _ => true,
    };

    private static string? LastEphemeralContainerName(AuditEvent e)
    {
        if (e.RequestObject is not { ValueKind: System.Text.Json.JsonValueKind.Object } body
            || !body.TryGetProperty("spec", out var spec) || spec.ValueKind != System.Text.Json.JsonValueKind.Object
            || !spec.TryGetProperty("ephemeralContainers", out var list) || list.ValueKind != System.Text.Json.JsonValueKind.Array)
        {
            return null;
        }

        string? last = null;
        foreach (var item in list.EnumerateArray())
        {
            if (item.ValueKind == System.Text.Json.JsonValueKind.Object && item.TryGetProperty("name", out var name) && name.ValueKind == System.Text.Json.JsonValueKind.String)
            {
                last = name.GetString();
            }
        }

        return last;
    }

    internal static string Truncate(ReadOnlySpan<char> s) => s.Length <= 32 ? s.ToString() : string.Concat(s[..32], "…");
}

/// <summary>
/// A pod-bound service-account token's claims as the API server copies them into user.extra
/// (keys <c>authentication.kubernetes.io/pod-name</c>, <c>pod-uid</c>, <c>node-name</c>, <c>node-uid</c>, <c>credential-id</c>).
/// </summary>
public sealed record AuditBoundTokenInfo
{
    public required string? ServiceAccountNamespace { get; init; }
    public required string? ServiceAccountName { get; init; }
    public required string? PodName { get; init; }
    public required string? PodUid { get; init; }
    public required string? NodeName { get; init; }
    public required string? NodeUid { get; init; }
    public required string? CredentialId { get; init; }

    private const string Prefix = "authentication.kubernetes.io/";
    private const string ServiceAccountPrefix = "system:serviceaccount:";

    internal static AuditBoundTokenInfo? FromUser(AuditUserInfo? user)
    {
        if (user?.Extra is not { Count: > 0 } extra)
        {
            return null;
        }

        var podName = First(extra, "pod-name");
        var podUid = First(extra, "pod-uid");
        var nodeName = First(extra, "node-name");
        var nodeUid = First(extra, "node-uid");
        var credentialId = First(extra, "credential-id");
        if (podName is null && podUid is null && nodeName is null && nodeUid is null && credentialId is null)
        {
            return null;
        }

        string? saNamespace = null, saName = null;
        var username = user.Username ?? string.Empty;
        if (username.StartsWith(ServiceAccountPrefix, StringComparison.Ordinal))
        {
            var rest = username.AsSpan(ServiceAccountPrefix.Length);
            var colon = rest.IndexOf(':');
            if (colon > 0 && colon < rest.Length - 1)
            {
                saNamespace = rest[..colon].ToString();
                saName = rest[(colon + 1)..].ToString();
            }
        }

        return new AuditBoundTokenInfo
        {
            ServiceAccountNamespace = saNamespace,
            ServiceAccountName = saName,
            PodName = podName,
            PodUid = podUid,
            NodeName = nodeName,
            NodeUid = nodeUid,
            CredentialId = credentialId,
        };
    }

    private static string? First(IReadOnlyDictionary<string, IReadOnlyList<string>> extra, string key)
        => extra.TryGetValue(Prefix + key, out var values) && values is { Count: > 0 } ? values[0] : null;
}
