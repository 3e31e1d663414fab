namespace Ebpf.Agent.Configuration;

/// <summary>Start-up validation: every problem found, each in words that say how to fix it.</summary>
public static class AgentOptionsValidator
{
    public static IReadOnlyList<string> Validate(AgentOptions o)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(o.NodeName))
            errors.Add("nodeName is empty: set NODE_NAME (the DaemonSet sets it from spec.nodeName) or --node-name");
        if (string.IsNullOrWhiteSpace(o.DataDirectory))
            errors.Add("dataDirectory is empty: set --data-dir");
        CheckListen("grpc.listen", o.Grpc.Listen, errors);
        CheckListen("health.listen", o.Health.Listen, errors);
        CheckListen("webhook.listen", o.Webhook.Listen, errors);
        CheckPair("grpc", o.Grpc.CertificatePath, o.Grpc.KeyPath, errors);
        CheckPair("webhook", o.Webhook.CertificatePath, o.Webhook.KeyPath, errors);
        foreach (var (name, path) in new[]
                 {
                     ("grpc.certificatePath", o.Grpc.CertificatePath), ("grpc.keyPath", o.Grpc.KeyPath),
                     ("grpc.clientCaPath", o.Grpc.ClientCaPath), ("grpc.bearerTokenFile", o.Grpc.BearerTokenFile),
                     ("webhook.certificatePath", o.Webhook.CertificatePath), ("webhook.keyPath", o.Webhook.KeyPath),
                     ("webhook.clientCaPath", o.Webhook.ClientCaPath), ("webhook.bearerTokenFile", o.Webhook.BearerTokenFile),
                     ("kubeconfig", o.Kubeconfig), ("podsFile", o.PodsFile),
                     ("audit.forwarding.peerCaPath", o.Audit.Forwarding.PeerCaPath),
                 })
        {
            if (!string.IsNullOrEmpty(path) && !File.Exists(path))
                errors.Add($"{name}: file '{path}' does not exist");
        }
        if (!string.IsNullOrEmpty(o.PodsFile) && !string.IsNullOrEmpty(o.Kubeconfig))
            errors.Add("podsFile and kubeconfig exclude each other: a pod snapshot is for nodes without API access");
        if (!string.IsNullOrEmpty(o.Webhook.Path) && !o.Webhook.Path.StartsWith('/'))
            errors.Add($"webhook.path '{o.Webhook.Path}' must start with '/'");
        if (o.Webhook.MaxBodyBytes < 1024)
            errors.Add("webhook.maxBodyBytes must be at least 1024");
        if (o.Grpc.SubscriberQueueCapacity < 16)
            errors.Add("grpc.subscriberQueueCapacity must be at least 16");
        if (o.Capture.Filter is not ("containers" or "nonroot" or "all"))
            errors.Add($"capture.filter '{o.Capture.Filter}' must be one of containers, nonroot, all");
        if (o.Capture.RingBufferBytes < 4096 || (o.Capture.RingBufferBytes & (o.Capture.RingBufferBytes - 1)) != 0)
            errors.Add($"capture.ringBufferBytes {o.Capture.RingBufferBytes} must be a power of two of at least 4096");
        if (o.Capture.PollTimeoutMs is < 1 or > 10_000)
            errors.Add("capture.pollTimeoutMs must be between 1 and 10000");
        if (o.Capture.WakeupThresholdBytes < 0 || o.Capture.WakeupThresholdBytes > o.Capture.RingBufferBytes)
            errors.Add("capture.wakeupThresholdBytes must be between 0 and capture.ringBufferBytes");
        if (o.Retention.MaxAge <= TimeSpan.Zero)
            errors.Add("retention.maxAge must be positive (e.g. 7.00:00:00)");
        if (o.Retention.MaxBytes < 1024 * 1024)
            errors.Add("retention.maxBytes must be at least 1 MiB");
        if (o.Correlation.ClockSkew < TimeSpan.Zero || o.Correlation.ClockSkew > TimeSpan.FromMinutes(5))
            errors.Add("correlation.clockSkew must be between 0 and 5 minutes");
        if (o.Correlation.AuditWaitWindow < TimeSpan.FromSeconds(1) || o.Correlation.AuditWaitWindow > TimeSpan.FromHours(1))
            errors.Add("correlation.auditWaitWindow must be between 1 s and 1 h");
        foreach (var endpoint in o.Correlation.ApiServerEndpoints)
        {
            if (!ApiServerEndpointList.TryParse(endpoint, out _, out string? error))
                errors.Add($"correlation.apiServerEndpoints: {error}");
        }
        CheckForwarding(o, errors);
        return errors;
    }

    private static void CheckForwarding(AgentOptions o, List<string> errors)
    {
        var f = o.Audit.Forwarding;
        if (f.Enabled == true)
        {
            // Unset means "when possible"; an explicit true must be able to work, or the agent does not start.
            if (string.IsNullOrEmpty(f.TokenFile))
                errors.Add("audit.forwarding.enabled is true but audit.forwarding.tokenFile is not set: peers accept forwarded events only with the shared token (Secret ebpf-agent-forwarding-token)");
            else if (!File.Exists(f.TokenFile))
                errors.Add($"audit.forwarding.tokenFile: file '{f.TokenFile}' does not exist");
            if (o.Standalone || !string.IsNullOrEmpty(o.PodsFile))
                errors.Add("audit.forwarding.enabled needs the API server (to find pods' nodes and the other agents): not with standalone or podsFile");
            if (string.IsNullOrEmpty(o.Webhook.Listen))
                errors.Add("audit.forwarding.enabled needs webhook.listen: forwarded events arrive on the webhook listener");
        }
        if (!f.Path.StartsWith('/'))
            errors.Add($"audit.forwarding.path '{f.Path}' must start with '/'");
        else if (string.Equals(f.Path, o.Webhook.Path, StringComparison.Ordinal))
            errors.Add("audit.forwarding.path must differ from webhook.path: forwarded events must never be forwarded again");
        if (string.IsNullOrWhiteSpace(f.AgentLabelSelector))
            errors.Add("audit.forwarding.agentLabelSelector is empty: set the agent pods' labels (e.g. app.kubernetes.io/name=ebpf-agent)");
        if (f.PeerPort is < 1 or > 65535)
            errors.Add("audit.forwarding.peerPort must be 1-65535");
        if (f.QueueCapacity is < 1 or > 1_000_000)
            errors.Add("audit.forwarding.queueCapacity must be between 1 and 1000000");
        if (f.MaxAttempts is < 1 or > 20)
            errors.Add("audit.forwarding.maxAttempts must be between 1 and 20");
    }

    private static void CheckListen(string name, string value, List<string> errors)
    {
        if (!string.IsNullOrEmpty(value) && !ListenAddress.TryParse(value, out _, out string? error))
            errors.Add($"{name}: {error}");
    }

    private static void CheckPair(string name, string? cert, string? key, List<string> errors)
    {
        if (string.IsNullOrEmpty(cert) != string.IsNullOrEmpty(key))
            errors.Add($"{name}: certificatePath and keyPath go together");
    }
}
