using System.Diagnostics.Metrics;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using Ebpf.Agent.Configuration;
using Ebpf.Agent.Health;
using Ebpf.Agent.Metrics;
using Ebpf.Agent.Pipeline;
using Ebpf.Agent.Services;
using Ebpf.Api.ExecTrace;
using Ebpf.Api.Grpc;
using Ebpf.Api.Streaming;
using Ebpf.Core.Audit;
using Ebpf.Core.Correlation;
using Ebpf.Interop;
using Ebpf.Kubernetes;
using Ebpf.Kubernetes.Audit;
using Ebpf.Store;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Ebpf.Agent.Hosting;

/// <summary>
/// Builds the one agent process: kernel capture, node identity, the store, the pipeline, the audit webhook and
/// log tailers, gRPC, and health/metrics — each listener on its own port. Start-up fails fast, with a message
/// that says what to fix, when the configuration or the kernel is not usable.
/// </summary>
public static partial class AgentHost
{
    public static async Task<WebApplication> BuildAsync(AgentOptions options, TextWriter? printRecords = null, TimeProvider? time = null)
    {
        var errors = AgentOptionsValidator.Validate(options);
        if (errors.Count > 0)
            throw new ConfigurationException("invalid configuration:\n  " + string.Join("\n  ", errors));
        time ??= TimeProvider.System;
        Directory.CreateDirectory(options.DataDirectory);

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ApplicationName = "ebpf-agent" });
        ConfigureLogging(builder.Logging);
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = TimeSpan.FromSeconds(20));
        using var bootstrapLoggers = LoggerFactory.Create(ConfigureLogging);
        var startupLog = bootstrapLoggers.CreateLogger("Ebpf.Agent");

        // Listeners: one port per concern, so the webhook can face the API server while gRPC stays on loopback.
        var grpcEndpoint = Endpoint(options.Grpc.Listen);
        var webhookEndpoint = Endpoint(options.Webhook.Listen);
        var healthEndpoint = Endpoint(options.Health.Listen);
        var webhookCertificate = options.Webhook.CertificatePath is { } certPath
            ? X509Certificate2.CreateFromPemFile(certPath, options.Webhook.KeyPath) : null;
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Limits.MaxRequestBodySize = options.Webhook.MaxBodyBytes;
            if (grpcEndpoint is not null)
            {
                kestrel.ListenGrpc(new GrpcListenOptions
                {
                    Address = grpcEndpoint.Address,
                    Port = grpcEndpoint.Port,
                    CertificatePath = options.Grpc.CertificatePath,
                    CertificateKeyPath = options.Grpc.KeyPath,
                    RequireClientCertificate = options.Grpc.ClientCaPath is not null,
                    ClientCertificateAuthorityPath = options.Grpc.ClientCaPath,
                });
            }
            if (webhookEndpoint is not null)
            {
                kestrel.Listen(webhookEndpoint, listen =>
                {
                    listen.Protocols = HttpProtocols.Http1AndHttp2;
                    if (webhookCertificate is null)
                        return;
                    if (options.Webhook.ClientCaPath is { } ca)
                        listen.UseAuditWebhookHttps(webhookCertificate, ca, ClientCertificateMode.AllowCertificate);
                    else
                        listen.UseHttps(webhookCertificate);
                });
            }
            if (healthEndpoint is not null)
                kestrel.Listen(healthEndpoint, listen => listen.Protocols = HttpProtocols.Http1);
        });

        var readiness = new Readiness();
        var metrics = new AgentMetrics();
        var status = new AgentStatusSource(options.NodeName, time);
        var loggers = LoggerFactory.Create(ConfigureLogging);

        // The store first: everything else writes into it.
        readiness.Register("store");
        var store = EventStore.Open(new EventStoreOptions
        {
            DataDirectory = options.DataDirectory,
            RetentionAge = options.Retention.MaxAge,
            RetentionMaxBytes = options.Retention.MaxBytes,
        }, time, loggers.CreateLogger<EventStore>());
        readiness.Set("store", true, "open at " + store.Options.DatabasePath);
        var hub = new RecordHub(new RecordHubOptions { SubscriberQueueCapacity = options.Grpc.SubscriberQueueCapacity, TimeProvider = time },
            new StoreReplaySource(store));

        // Kernel capture before the /proc scan, so a process starting in between is seen by one or the other.
        KernelCapture? capture = null;
        if (options.Capture.Enabled)
        {
            readiness.Register("capture");
            capture = KernelCapture.Start(ToCaptureOptions(options.Capture), loggers.CreateLogger<KernelCapture>(), time);
            readiness.Set("capture", true, $"{capture.AttachedPrograms.Count} programs attached");
        }

        readiness.Register("pods");
        bool standalone = options.Standalone || options.PodsFile is not null;
        // Discovered once: the pod watch uses it and the correlator's API server endpoints derive from its URL.
        var api = NodeIdentity.DiscoverApi(options.Kubeconfig, standalone);
        var identity = NodeIdentity.Start(new NodeIdentityOptions
        {
            NodeName = options.NodeName,
            Standalone = standalone,
            Kubeconfig = options.Kubeconfig,
        }, time, loggers, api);
        if (options.PodsFile is { } podsFile)
        {
            try
            {
                LogPodSnapshot(startupLog, identity.Pods.LoadSnapshot(podsFile), podsFile);
            }
            catch (InvalidDataException e)
            {
                throw new ConfigurationException("podsFile: " + e.Message, e);
            }
        }
        else if (identity.State == "standalone")
        {
            LogStandalone(startupLog, options.NodeName);
        }

        var apiServerEndpoints = ApiServerEndpointList.Resolve(options.Correlation.ApiServerEndpoints, api?.Server, Environment.GetEnvironmentVariable);
        LogApiServerEndpoints(startupLog, apiServerEndpoints.Count == 0 ? "none (service-account token calls stay unattributed)" : string.Join(", ", apiServerEndpoints));
        var correlator = new ExecSessionCorrelator(new CorrelationOptions
        {
            ClockSkew = options.Correlation.ClockSkew,
            AuditLatencyAllowance = options.Correlation.AuditWaitWindow,
            // Exited processes must outlive the wait for their audit event.
            ExitedProcessRetention = options.Correlation.AuditWaitWindow > TimeSpan.FromMinutes(5) ? options.Correlation.AuditWaitWindow : TimeSpan.FromMinutes(5),
            NodeName = options.NodeName,
            ApiServerEndpoints = apiServerEndpoints,
        }, new PodSpecLookup(
            (ns, name) => identity.Pods.TryGetPod(ns, name, out var pod) ? pod : null,
            uid => identity.Pods.TryGetPod(uid, out var pod) ? pod : null), time);

        // Rebuild what a root or request may still be waiting for: the wait window, the skew and the exec start window.
        var pipeline = new NodePipeline(capture?.Events, identity, correlator, store, hub, options.NodeName, metrics, time,
            loggers.CreateLogger<NodePipeline>(), options.Correlation.AuditWaitWindow + options.Correlation.ClockSkew + TimeSpan.FromSeconds(10));
        var sink = new StoreAuditSink(store, hub, pipeline);

        builder.Services.AddSingleton<IHostedService>(new StoreCloser(identity, store));
        builder.Services.AddSingleton<IHostedService>(pipeline);
        var forwarder = CreateForwarder(options, api, standalone, webhookEndpoint, webhookCertificate, identity, time, loggers, startupLog);
        if (forwarder is not null)
            builder.Services.AddSingleton<IHostedService>(new AuditForwarderService(forwarder));
        // A tailed log (on a control-plane node) holds every node's events, like the webhook: forward them too.
        IAuditEventSink tailerSink = forwarder is null ? sink : new ForwardingAuditSink(sink, forwarder.Offer);
        foreach (string path in options.AuditLog.Paths)
        {
            var tailer = new AuditLogTailer(new AuditLogTailerOptions
            {
                Path = path,
                CheckpointPath = Path.Combine(options.DataDirectory, "audit-checkpoints", CheckpointName(path)),
            }, tailerSink, time, loggers.CreateLogger<AuditLogTailer>());
            builder.Services.AddSingleton<IHostedService>(new AuditLogTailerService(tailer));
            status.AddCounters(() => Counters($"audit_log[{path}]", tailer.Counters));
        }
        if (printRecords is not null)
            builder.Services.AddSingleton<IHostedService>(new RecordPrinter(hub, printRecords));
        builder.Services.AddSingleton<IHostedService>(new CaptureStopper(capture));

        var app = builder.Build();
        if (grpcEndpoint is not null)
        {
            string? token = options.Grpc.BearerTokenFile is { } tokenFile ? (await File.ReadAllTextAsync(tokenFile).ConfigureAwait(false)).Trim() : null;
            app.MapExecTraceService(new ExecTraceService(store, hub, status), new GrpcServerOptions { BearerToken = token, TimeProvider = time })
                .RequireHost($"*:{grpcEndpoint.Port}");
        }
        AuditWebhookReceiver? receiver = null;
        if (webhookEndpoint is not null)
        {
            IReadOnlyList<string> tokens = options.Webhook.BearerTokenFile is { } tokenFile ? AuditWebhookOptions.ReadBearerTokenFile(tokenFile) : [];
            bool clientCerts = options.Webhook.ClientCaPath is not null;
            receiver = new AuditWebhookReceiver(new AuditWebhookOptions
            {
                MaxBodyBytes = options.Webhook.MaxBodyBytes,
                BearerTokens = tokens,
                ClientCertificateAuthentication = clientCerts,
                // Unauthenticated only where nothing but this machine can reach it.
                AllowUnauthenticated = tokens.Count == 0 && !clientCerts && IPAddress.IsLoopback(webhookEndpoint.Address),
            }, sink, loggers.CreateLogger<AuditWebhookReceiver>(), forwarder is null ? null : forwarder.Offer);
            app.MapAuditWebhook(options.Webhook.Path, receiver).RequireHost($"*:{webhookEndpoint.Port}");
            var webhookCounters = receiver.Counters;
            status.AddCounters(() => Counters("audit_webhook", webhookCounters));
        }
        AuditWebhookReceiver? forwardedReceiver = null;
        if (forwarder is not null && webhookEndpoint is not null)
        {
            // Peers' forwarded events: stored like webhook events, never offered to the forwarder again (no loops),
            // and only with the shared forwarding token, whatever the webhook's own authentication.
            forwardedReceiver = new AuditWebhookReceiver(new AuditWebhookOptions
            {
                MaxBodyBytes = options.Webhook.MaxBodyBytes,
                BearerTokens = forwarder.Options.AcceptedTokens,
            }, sink, loggers.CreateLogger<AuditWebhookReceiver>());
            app.MapAuditWebhook(options.Audit.Forwarding.Path, forwardedReceiver).RequireHost($"*:{webhookEndpoint.Port}");
            var forwardedCounters = forwardedReceiver.Counters;
            var forwardingCounters = forwarder.Counters;
            status.AddCounters(() => Counters("audit_forwarded", forwardedCounters));
            status.AddCounters(() => Counters("audit_forwarding", forwardingCounters));
            app.Lifetime.ApplicationStopped.Register(forwarder.Dispose);
        }
        if (healthEndpoint is not null)
            MapHealth(app, healthEndpoint.Port, readiness);

        // Status and metrics read each subsystem's own counters at request time.
        status.Probes = () => capture?.AttachedPrograms.Select(p => $"{p.Name} ({p.Section})").ToList() ?? [];
        status.PodWatchState = () => identity.State;
        status.LastSequence = () => store.LastSequence;
        status.StoreBytes = () => (ulong)Math.Max(0, store.StoreSizeBytes);
        status.AddCounters(() => Counters("store", store.Counters));
        status.AddCounters(() =>
        [
            new("grpc_subscribers", (ulong)hub.Subscribers), new("grpc_published", (ulong)hub.Published),
            new("grpc_delivered", (ulong)hub.Delivered), new("grpc_subscriber_dropped", (ulong)hub.Dropped),
        ]);
        if (capture is not null)
            status.AddCounters(() => CaptureCounters(capture.Snapshot()));
        RegisterMetrics(metrics, capture, store, hub, identity, receiver);
        if (forwarder is not null && forwardedReceiver is not null)
            RegisterForwardingMetrics(metrics, forwarder, forwardedReceiver);

        readiness.Register("pipeline");
        _ = pipeline.Started.ContinueWith(
            t => readiness.Set("pipeline", t.IsCompletedSuccessfully, t.IsCompletedSuccessfully ? "consuming" : "failed: " + t.Exception?.GetBaseException().Message),
            CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
        _ = TrackPodWatchAsync(identity, readiness, app.Lifetime.ApplicationStopping);

        app.Lifetime.ApplicationStarted.Register(() => LogListening(startupLog, options.NodeName,
            Describe(grpcEndpoint, options.Grpc.CertificatePath is null ? "h2c" : "https", ""),
            Describe(webhookEndpoint, webhookCertificate is null ? "http" : "https", options.Webhook.Path),
            Describe(healthEndpoint, "http", "/metrics"),
            store.Options.DatabasePath));
        app.Lifetime.ApplicationStopped.Register(metrics.Dispose);
        app.Lifetime.ApplicationStopped.Register(loggers.Dispose);
        return app;
    }

    private static void ConfigureLogging(ILoggingBuilder logging)
    {
        logging.ClearProviders();
        logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
        });
        logging.SetMinimumLevel(LogLevel.Information);
        logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        logging.AddFilter("Microsoft.Hosting", LogLevel.Warning);
    }

    /// <summary>Pod watch readiness: synced, or standalone (nothing to sync with), is ready; "error: ..." is not.</summary>
    private static async Task TrackPodWatchAsync(NodeIdentity identity, Readiness readiness, CancellationToken stopping)
    {
        try
        {
            while (!stopping.IsCancellationRequested)
            {
                string state = identity.State;
                readiness.Set("pods", state == "synced" || state.StartsWith("standalone", StringComparison.Ordinal), state);
                await Task.Delay(TimeSpan.FromMilliseconds(500), stopping).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private static void MapHealth(WebApplication app, int port, Readiness readiness)
    {
        string host = $"*:{port}";
        var exporter = new PrometheusTextExporter(AgentMetrics.MeterName);
        app.MapGet("/healthz", () => Results.Text("ok\n")).RequireHost(host);
        app.MapGet("/readyz", () =>
        {
            string lines = string.Concat(readiness.Snapshot().Select(c => $"[{(c.Ready ? "+" : "-")}] {c.Component}: {c.Detail}\n"));
            return readiness.IsReady
                ? Results.Text(lines + "ready\n")
                : Results.Text(lines + "not ready\n", statusCode: StatusCodes.Status503ServiceUnavailable);
        }).RequireHost(host);
        app.MapGet("/metrics", () => Results.Text(exporter.Render(), "text/plain; version=0.0.4; charset=utf-8")).RequireHost(host);
        app.Lifetime.ApplicationStopped.Register(exporter.Dispose);
    }

    internal static KernelCaptureOptions ToCaptureOptions(CaptureConfig c)
    {
        var options = new KernelCaptureOptions
        {
            RingBufferBytes = c.RingBufferBytes,
            WakeupThresholdBytes = c.WakeupThresholdBytes,
            PollTimeoutMs = c.PollTimeoutMs,
            CaptureFailedOpens = c.FailedOpens,
            FilterMode = c.Filter switch { "all" => CaptureFilterMode.All, "nonroot" => CaptureFilterMode.NonRoot, _ => CaptureFilterMode.Containers },
        };
        foreach (string prefix in c.FilePrefixes)
            options.FilePathPrefixes.Add(prefix);
        return options;
    }

    private static IPEndPoint? Endpoint(string listen) =>
        string.IsNullOrEmpty(listen) ? null : ListenAddress.TryParse(listen, out var endpoint, out _) ? endpoint : null;

    private static string Describe(IPEndPoint? endpoint, string scheme, string path) =>
        endpoint is null ? "disabled" : $"{scheme}://{endpoint}{path}";

    private static string CheckpointName(string path) =>
        Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(Path.GetFullPath(path))))[..16].ToLowerInvariant() + ".checkpoint";

    /// <summary>Every public numeric property of a counters object, as "prefix_name" pairs.</summary>
    internal static IEnumerable<KeyValuePair<string, ulong>> Counters(string prefix, object counters) =>
        CounterValues(counters).Select(kv => new KeyValuePair<string, ulong>($"{prefix}_{kv.Key}", kv.Value));

    /// <summary>
    /// Every public numeric property of a counters object as its snake_case name and value (negative values as 0),
    /// e.g. a metric's "counter" label.
    /// </summary>
    internal static IEnumerable<KeyValuePair<string, ulong>> CounterValues(object counters)
    {
        foreach (var property in counters.GetType().GetProperties())
        {
            ulong? number = property.GetValue(counters) switch
            {
                long l => (ulong)Math.Max(0, l),
                int i => (ulong)Math.Max(0, i),
                ulong u => u,
                uint u => u,
                _ => null,
            };
            if (number is ulong n)
                yield return new(SnakeCase(property.Name), n);
        }
    }

    private static IEnumerable<KeyValuePair<string, ulong>> CaptureCounters(CaptureCounters c)
    {
        foreach (var (kind, n) in c.EventsByKind) yield return new($"capture_events_{AgentMetrics.KindName(kind)}", n);
        foreach (var (kind, n) in c.KernelDropsByKind) yield return new($"capture_kernel_drops_{AgentMetrics.KindName(kind)}", n);
        foreach (var (kind, n) in c.HandoffDropsByKind) yield return new($"capture_handoff_drops_{AgentMetrics.KindName(kind)}", n);
        foreach (var (reason, n) in c.DecodeErrorsByReason) yield return new($"capture_decode_errors_{SnakeCase(reason)}", n);
    }

    internal static string SnakeCase(string name)
    {
        var text = new System.Text.StringBuilder(name.Length + 8);
        for (int i = 0; i < name.Length; i++)
        {
            if (char.IsUpper(name[i]) && i > 0)
                text.Append('_');
            text.Append(char.ToLowerInvariant(name[i]));
        }
        return text.ToString();
    }

    private static readonly Ebpf.Events.EventKind[] RecordedKinds = Enum.GetValues<Ebpf.Events.EventKind>().Where(k => k != Ebpf.Events.EventKind.Unknown).ToArray();

    private static void RegisterMetrics(AgentMetrics metrics, KernelCapture? capture, EventStore store, RecordHub hub, NodeIdentity identity, AuditWebhookReceiver? receiver)
    {
        static Measurement<long> M(ulong value, params KeyValuePair<string, object?>[] tags) => new((long)value, tags);
        if (capture is not null)
        {
            metrics.Observe("ebpf.capture.events", "Kernel records delivered to the agent, by kind", isCounter: true,
                () => capture.Snapshot().EventsByKind.Select(kv => M(kv.Value, AgentMetrics.Tag("kind", AgentMetrics.KindName(kv.Key)))));
            metrics.Observe("ebpf.capture.drops", "Kernel records lost, by stage (kernel: ring buffer full; handoff: pipeline channel full) and kind", isCounter: true, () =>
            {
                // Every kind and stage, zeros included: an alert on drops needs the series to exist before the first loss.
                var c = capture.Snapshot();
                return RecordedKinds.SelectMany(kind => new[]
                {
                    M(c.KernelDropsByKind.GetValueOrDefault(kind), AgentMetrics.Tag("stage", "kernel"), AgentMetrics.Tag("kind", AgentMetrics.KindName(kind))),
                    M(c.HandoffDropsByKind.GetValueOrDefault(kind), AgentMetrics.Tag("stage", "handoff"), AgentMetrics.Tag("kind", AgentMetrics.KindName(kind))),
                });
            });
            metrics.Observe("ebpf.capture.decode_errors", "Kernel records that could not be decoded, by reason", isCounter: true,
                () => capture.Snapshot().DecodeErrorsByReason.Select(kv => M(kv.Value, AgentMetrics.Tag("reason", kv.Key))));
        }
        metrics.Observe("ebpf.store.records", "Records committed to the store", isCounter: true, () => [new(store.Counters.Appended)]);
        metrics.Observe("ebpf.store.dropped", "Records the store's write queue could not take", isCounter: true, () => [new(store.Counters.Dropped)]);
        metrics.Observe("ebpf.store.audit_duplicates", "Audit events dropped as retried duplicates", isCounter: true, () => [new(store.Counters.AuditDuplicates)]);
        metrics.Observe("ebpf.store.size_bytes", "Size of the store on disk", isCounter: false, () => [new(store.StoreSizeBytes)]);
        metrics.Observe("ebpf.store.queue_length", "Records waiting to be written", isCounter: false, () => [new(store.Counters.QueueLength)]);
        metrics.Observe("ebpf.grpc.subscribers", "Connected Subscribe streams", isCounter: false, () => [new(hub.Subscribers)]);
        metrics.Observe("ebpf.grpc.subscriber_dropped", "Records dropped from slow subscribers' queues", isCounter: true, () => [new(hub.Dropped)]);
        metrics.Observe("ebpf.pods.watch_state", "Pod watch state (1 for the current state)", isCounter: false,
            () => [new(1, AgentMetrics.Tag("state", identity.State.Split(' ', ':')[0]))]);
        metrics.Observe("ebpf.processes.live", "Processes in the process table", isCounter: false, () => [new(identity.Processes.LiveCount)]);
        if (receiver is not null)
        {
            var c = receiver.Counters;
            metrics.Observe("ebpf.audit.webhook", "Audit webhook counters: requests, events received, appended, duplicates, rejected ...", isCounter: true,
                () => CounterValues(c).Select(kv => M(kv.Value, AgentMetrics.Tag("counter", kv.Key))));
        }
    }

    /// <summary>
    /// The audit forwarder when forwarding is on: explicitly enabled (validated), or unset and running in a pod with
    /// in-cluster API access and the forwarding token mounted. Null otherwise, with the reason logged.
    /// </summary>
    private static AuditEventForwarder? CreateForwarder(AgentOptions options, Ebpf.Kubernetes.Api.KubeClientConfig? api, bool standalone,
        IPEndPoint? webhookEndpoint, X509Certificate2? webhookCertificate, NodeIdentity identity, TimeProvider time, ILoggerFactory loggers, ILogger startupLog)
    {
        var f = options.Audit.Forwarding;
        if (f.Enabled == false)
            return null;
        bool automatic = f.Enabled is null;
        string? reason = null;
        if (standalone || api is null)
            reason = "no API server (standalone)";
        else if (automatic && options.Kubeconfig is not null)
            reason = "not running in a pod (kubeconfig given); set audit.forwarding.enabled to forward anyway";
        else if (webhookEndpoint is null)
            reason = "webhook.listen is empty";
        else if (string.IsNullOrEmpty(f.TokenFile) || !File.Exists(f.TokenFile))
            reason = $"no forwarding token (audit.forwarding.tokenFile '{f.TokenFile}'; create Secret ebpf-agent-forwarding-token)";
        string? ns = f.Namespace;
        if (string.IsNullOrEmpty(ns))
            ns = Environment.GetEnvironmentVariable("POD_NAMESPACE");
        if (string.IsNullOrEmpty(ns))
        {
            string nsFile = Path.Combine(Ebpf.Kubernetes.Api.KubeClientConfig.ServiceAccountDirectory, "namespace");
            ns = File.Exists(nsFile) ? File.ReadAllText(nsFile).Trim() : api?.Namespace;
        }
        if (reason is null && string.IsNullOrEmpty(ns))
            reason = "the agents' namespace is unknown: set audit.forwarding.namespace or POD_NAMESPACE";
        if (reason is not null)
        {
            if (!automatic)
                throw new ConfigurationException("audit.forwarding.enabled is true but forwarding cannot work: " + reason);
            LogForwardingOff(startupLog, reason);
            return null;
        }

        IReadOnlyList<string> tokens;
        try
        {
            // Several lines allow rotation: peers accept every line, this agent presents the first.
            tokens = AuditWebhookOptions.ReadBearerTokenFile(f.TokenFile!);
        }
        catch (ArgumentException e)
        {
            throw new ConfigurationException("audit.forwarding.tokenFile: " + e.Message, e);
        }
        var forwarding = new AuditForwardingOptions
        {
            NodeName = options.NodeName,
            AgentNamespace = ns!,
            AgentLabelSelector = f.AgentLabelSelector,
            Token = tokens[0],
            AcceptedTokens = tokens,
            ForwardedPath = f.Path,
            PeerScheme = webhookCertificate is null ? "http" : "https",
            PeerPort = f.PeerPort ?? webhookEndpoint!.Port,
            QueueCapacity = f.QueueCapacity,
            MaxAttempts = f.MaxAttempts,
        };
        if (webhookCertificate is not null)
        {
            if (f.PeerCaPath is { } caPath)
            {
                var authorities = new X509Certificate2Collection();
                authorities.ImportFromPemFile(caPath);
                if (authorities.Count == 0)
                    throw new ConfigurationException($"audit.forwarding.peerCaPath: no certificate in '{caPath}'");
                forwarding.PeerCertificateAuthorities = authorities;
                forwarding.PeerServerName = f.PeerServerName ?? $"ebpf-agent-webhook.{ns}.svc";
            }
            else
            {
                forwarding.PinnedPeerCertificates = [webhookCertificate];
            }
        }
        // Its own client: lookups must not wait behind the pod watch, and a slow answer only delays forwarding.
        var client = new Ebpf.Kubernetes.Api.KubeApiClient(api!, new Ebpf.Kubernetes.Api.KubeApiClientOptions { RequestTimeout = TimeSpan.FromSeconds(10) }, time);
        var directory = new AuditPeerDirectory(client, forwarding, time);
        var pods = identity.Pods;
        var forwarder = new AuditEventForwarder(forwarding, directory, (podNamespace, pod) => pods.TryGetPod(podNamespace, pod, out _),
            time, loggers.CreateLogger<AuditEventForwarder>(), ownedApiClient: client);
        LogForwardingOn(startupLog, ns!, f.AgentLabelSelector, forwarding.PeerScheme, f.Path);
        return forwarder;
    }

    private static void RegisterForwardingMetrics(AgentMetrics metrics, AuditEventForwarder forwarder, AuditWebhookReceiver forwardedReceiver)
    {
        static Measurement<long> M(ulong value, KeyValuePair<string, object?> tag) => new((long)value, tag);
        var c = forwarder.Counters;
        metrics.Observe("ebpf.audit.forwarding", "Audit events sent to the agent on the pod's node: candidates, queued, forwarded, failed, dropped (queue full), unresolved, local, retries, posts", isCounter: true,
            () => CounterValues(c).Select(kv => M(kv.Value, AgentMetrics.Tag("counter", kv.Key))));
        var r = forwardedReceiver.Counters;
        metrics.Observe("ebpf.audit.forwarded", "Forwarded audit events received from peers: requests, received, appended, duplicates, rejected, unauthorized ...", isCounter: true,
            () => CounterValues(r).Select(kv => M(kv.Value, AgentMetrics.Tag("counter", kv.Key))));
    }

    [LoggerMessage(EventId = 1004, Level = LogLevel.Information, Message = "Audit forwarding on: events of other nodes' pods go to the agent pods ({Selector}) of namespace {Namespace} over {Scheme}, path {Path}")]
    private static partial void LogForwardingOn(ILogger logger, string @namespace, string selector, string scheme, string path);

    [LoggerMessage(EventId = 1005, Level = LogLevel.Information, Message = "Audit forwarding off: {Reason}")]
    private static partial void LogForwardingOff(ILogger logger, string reason);

    [LoggerMessage(EventId = 1000, Level = LogLevel.Information,
        Message = "ebpf-agent on node {Node}: gRPC {Grpc}; audit webhook {Webhook}; health and metrics {Health}; store {Store}")]
    private static partial void LogListening(ILogger logger, string node, string grpc, string webhook, string health, string store);

    [LoggerMessage(EventId = 1001, Level = LogLevel.Warning,
        Message = "Standalone mode on node {Node}: no Kubernetes API server configured or reachable, so pods are known by UID and container id only (no names, namespaces or labels)")]
    private static partial void LogStandalone(ILogger logger, string node);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Information, Message = "Standalone with a pod snapshot: {Count} pods of this node loaded from {Path}")]
    private static partial void LogPodSnapshot(ILogger logger, int count, string path);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Information, Message = "API server endpoints for service-account token attribution: {Endpoints}")]
    private static partial void LogApiServerEndpoints(ILogger logger, string endpoints);
}
