using System.CommandLine;
using Ebpf.Agent.Configuration;
using Ebpf.Agent.Hosting;
using Ebpf.Interop;
using Microsoft.AspNetCore.Builder;

namespace Ebpf.Agent.Commands;

/// <summary>`ebpf-agent run`: the agent itself (the DaemonSet's command, and `make run`).</summary>
public static class RunCommand
{
    public static Command Create()
    {
        var config = new Option<string?>("--config", "-c") { Description = "YAML or JSON configuration file (see docs/operations.md for every setting)" };
        var standalone = new Option<bool>("--standalone") { Description = "Do not contact a Kubernetes API server: identify pods by cgroup only" };
        var dataDir = new Option<string?>("--data-dir") { Description = "Where the store and checkpoints live (default /var/lib/ebpf-agent)" };
        var nodeName = new Option<string?>("--node-name") { Description = "This node's name (default $NODE_NAME, else the host name)" };
        var kubeconfig = new Option<string?>("--kubeconfig") { Description = "kubeconfig for the API server (default: in-cluster configuration)" };
        var podsFile = new Option<string?>("--pods-file") { Description = "Standalone with known pods: `kubectl get pods -o json` output to name pods by" };
        var grpc = new Option<string?>("--grpc-listen") { Description = "gRPC listen address host:port (default 127.0.0.1:50051; empty disables)" };
        var webhook = new Option<string?>("--webhook-listen") { Description = "Audit webhook listen address (default 127.0.0.1:8443; empty disables)" };
        var health = new Option<string?>("--health-listen") { Description = "/healthz, /readyz and /metrics listen address (default 127.0.0.1:9090)" };
        var auditLog = new Option<string[]>("--audit-log") { Description = "Follow this kube-apiserver JSON-lines audit log (repeatable)", AllowMultipleArgumentsPerToken = false };
        var noCapture = new Option<bool>("--no-capture") { Description = "Do not load BPF programs: receive and store audit events only" };
        var print = new Option<bool>("--print") { Description = "Print every record as one line on stdout (a live view)" };
        var command = new Command("run", "Run the agent: capture kernel events, receive audit events, join them, serve gRPC")
        {
            config, standalone, dataDir, nodeName, kubeconfig, podsFile, grpc, webhook, health, auditLog, noCapture, print,
        };
        command.SetAction(async (parse, ct) =>
        {
            var flags = new Dictionary<string, string?>();
            void Set(string key, string? value)
            {
                if (value is not null)
                    flags[key] = value;
            }
            Set("DataDirectory", parse.GetValue(dataDir));
            Set("NodeName", parse.GetValue(nodeName));
            Set("Kubeconfig", parse.GetValue(kubeconfig));
            Set("PodsFile", parse.GetValue(podsFile));
            Set("Grpc:Listen", parse.GetValue(grpc));
            Set("Webhook:Listen", parse.GetValue(webhook));
            Set("Health:Listen", parse.GetValue(health));
            if (parse.GetValue(standalone)) flags["Standalone"] = "true";
            if (parse.GetValue(noCapture)) flags["Capture:Enabled"] = "false";
            var logs = parse.GetValue(auditLog) ?? [];
            for (int i = 0; i < logs.Length; i++)
                flags[$"AuditLog:Paths:{i}"] = logs[i];
            return await RunAsync(parse.GetValue(config), flags, parse.GetValue(print) ? parse.InvocationConfiguration.Output : null,
                parse.InvocationConfiguration.Error, ct).ConfigureAwait(false);
        });
        return command;
    }

    public static async Task<int> RunAsync(string? configPath, IReadOnlyDictionary<string, string?> flags, TextWriter? print, TextWriter error, CancellationToken ct)
    {
        WebApplication app;
        try
        {
            var options = AgentConfiguration.Load(configPath, flags);
            app = await AgentHost.BuildAsync(options, print).ConfigureAwait(false);
        }
        catch (ConfigurationException e)
        {
            await error.WriteLineAsync($"ebpf-agent: {e.Message}").ConfigureAwait(false);
            return 2;
        }
        catch (Exception e) when (e is BpfException or UnauthorizedAccessException or IOException
            || (e is InvalidOperationException && e.Message.StartsWith("Kernel capture cannot start", StringComparison.Ordinal)))
        {
            await error.WriteLineAsync($"ebpf-agent: cannot start: {e.Message}").ConfigureAwait(false);
            return 1;
        }
        await using (app.ConfigureAwait(false))
        {
            try
            {
                await app.RunAsync(ct).ConfigureAwait(false);
            }
            catch (IOException e) when (e.InnerException is System.Net.Sockets.SocketException || e.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
            {
                await error.WriteLineAsync($"ebpf-agent: cannot listen: {e.Message}").ConfigureAwait(false);
                return 1;
            }
        }
        return 0;
    }
}
