using Ebpf.Testing;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Ebpf.Api.ExecTrace;
using Ebpf.Api.Grpc;
using Ebpf.Testing.Runc;

namespace Ebpf.Agent.Tests.EndToEnd;

/// <summary>Options of <see cref="AgentProcess.StartAsync"/>.</summary>
public sealed class AgentProcessOptions
{
    /// <summary>Node name the agent runs as; pods must name it in spec.nodeName.</summary>
    public required string NodeName { get; init; }

    /// <summary>kubeconfig text pointing at the test API server.</summary>
    public required string Kubeconfig { get; init; }

    /// <summary>How long a root waits for its audit event before it becomes unattributed. Defaults to 5 s.</summary>
    public TimeSpan AuditWaitWindow { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Data directory to reuse (restart tests); null creates a temporary one the agent owns.</summary>
    public string? DataDirectory { get; init; }

    /// <summary><c>capture.filter</c>; null keeps the agent's default (<c>containers</c>).</summary>
    public string? CaptureFilter { get; init; }

    /// <summary>More top-level YAML for the config file (e.g. an <c>audit:</c> section). Defaults to none.</summary>
    public string? ExtraConfig { get; init; }
}

/// <summary>
/// The real <c>ebpf-agent run</c> as a child process (<c>dotnet ebpf-agent.dll</c> from the Release build), on free
/// loopback ports, with a temporary data directory, a kubeconfig and a config file. Its stdout and stderr are kept
/// so a failing test can show them. Disposal stops it (SIGTERM, then SIGKILL) and deletes what it created.
/// </summary>
public sealed class AgentProcess : IAsyncDisposable
{
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(60);
    private readonly Process _process;
    private readonly StringBuilder _output;
    private readonly string _workDirectory;
    private readonly bool _ownsDataDirectory;
    private int _disposed;

    private AgentProcess(Process process, StringBuilder output, string workDirectory, string dataDirectory, bool ownsDataDirectory,
        int grpcPort, int webhookPort, int healthPort)
    {
        _process = process;
        _output = output;
        _workDirectory = workDirectory;
        DataDirectory = dataDirectory;
        _ownsDataDirectory = ownsDataDirectory;
        GrpcAddress = new Uri($"http://127.0.0.1:{grpcPort}");
        WebhookUri = new Uri($"http://127.0.0.1:{webhookPort}/audit/webhook");
        HealthAddress = new Uri($"http://127.0.0.1:{healthPort}");
    }

    /// <summary>src/Ebpf.Agent/bin/Release/net10.0/ebpf-agent.dll of this repository.</summary>
    public static string AgentDll { get; } = Path.Combine(RepoPaths.Root, "src", "Ebpf.Agent", "bin", "Release", "net10.0", "ebpf-agent.dll");

    public string DataDirectory { get; }
    public Uri GrpcAddress { get; }
    public Uri WebhookUri { get; }
    public Uri HealthAddress { get; }
    public int ProcessId => _process.Id;

    /// <summary>Everything the agent wrote to stdout and stderr so far.</summary>
    public string Output
    {
        get { lock (_output) return _output.ToString(); }
    }

    /// <summary>Starts the agent and waits until /readyz answers 200 (store, capture, pod watch synced, pipeline).</summary>
    public static async Task<AgentProcess> StartAsync(AgentProcessOptions options)
    {
        var work = Directory.CreateTempSubdirectory("ebpf-e2e-").FullName;
        bool ownsData = options.DataDirectory is null;
        var data = options.DataDirectory ?? Path.Combine(work, "data");
        Directory.CreateDirectory(data);
        var kubeconfig = Path.Combine(work, "kubeconfig");
        await File.WriteAllTextAsync(kubeconfig, options.Kubeconfig);
        var config = Path.Combine(work, "agent.yaml");
        await File.WriteAllTextAsync(config, $"""
            correlation:
              auditWaitWindow: "{options.AuditWaitWindow.ToString("c", CultureInfo.InvariantCulture)}"
              clockSkew: "00:00:02"
            """ + (options.CaptureFilter is { } filter ? $"\ncapture:\n  filter: {filter}\n" : "")
            + (options.ExtraConfig is { } extra ? "\n" + extra + "\n" : ""));
        int grpc = FreePort(), webhook = FreePort(), health = FreePort();
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in (string[])[AgentDll, "run", "--config", config, "--data-dir", data, "--node-name", options.NodeName,
            "--kubeconfig", kubeconfig, "--grpc-listen", $"127.0.0.1:{grpc}", "--webhook-listen", $"127.0.0.1:{webhook}",
            "--health-listen", $"127.0.0.1:{health}"])
            psi.ArgumentList.Add(arg);
        var output = new StringBuilder();
        var process = new Process { StartInfo = psi };
        void Append(string? line)
        {
            if (line is null) return;
            lock (output) output.AppendLine(line);
        }
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var agent = new AgentProcess(process, output, work, data, ownsData, grpc, webhook, health);
        try
        {
            await agent.WaitReadyAsync();
            return agent;
        }
        catch
        {
            await agent.DisposeAsync();
            throw;
        }
    }

    private async Task WaitReadyAsync()
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow + ReadyTimeout;
        string last = "";
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited)
                throw new InvalidOperationException($"the agent exited with {_process.ExitCode} before it was ready:\n{Output}");
            try
            {
                using var response = await http.GetAsync(new Uri(HealthAddress, "/readyz"));
                last = await response.Content.ReadAsStringAsync();
                if (response.StatusCode == HttpStatusCode.OK)
                    return;
            }
            catch (HttpRequestException e)
            {
                last = e.Message;
            }
            catch (TaskCanceledException e)
            {
                last = e.Message;
            }
            await Task.Delay(200);
        }
        throw new TimeoutException($"the agent was not ready within {ReadyTimeout}: {last}\n{Output}");
    }

    /// <summary>A typed gRPC client for this agent (h2c).</summary>
    public ExecTraceClient CreateClient() => new(new GrpcClientOptions { Address = GrpcAddress });

    /// <summary>POSTs an audit.k8s.io/v1 EventList to the webhook as the API server would; throws unless 2xx.</summary>
    public async Task PostAuditAsync(string eventListJson)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        using var content = new StringContent(eventListJson, Encoding.UTF8, "application/json");
        using var response = await http.PostAsync(WebhookUri, content);
        if (!response.IsSuccessStatusCode)
            throw new InvalidOperationException($"webhook answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
    }

    /// <summary>SIGTERM (graceful shutdown: store flushed), then SIGKILL if it has not exited within the grace time.</summary>
    public async Task StopAsync(TimeSpan? grace = null)
    {
        if (_process.HasExited)
            return;
        await HostProcess.RunAsync("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)], TimeSpan.FromSeconds(5));
        using var cts = new CancellationTokenSource(grace ?? TimeSpan.FromSeconds(20));
        try
        {
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
    }

    public int? ExitCode => _process.HasExited ? _process.ExitCode : null;

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        try
        {
            await StopAsync();
        }
        catch (InvalidOperationException)
        {
            // Never started or already reaped.
        }
        _process.Dispose();
        try
        {
            if (!_ownsDataDirectory)
            {
                // The data directory belongs to the caller (restart tests): only the work files go.
                foreach (var f in Directory.EnumerateFiles(_workDirectory)) File.Delete(f);
                if (!Directory.EnumerateFileSystemEntries(_workDirectory).Any()) Directory.Delete(_workDirectory);
            }
            else
            {
                Directory.Delete(_workDirectory, recursive: true);
            }
        }
        catch (IOException)
        {
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
