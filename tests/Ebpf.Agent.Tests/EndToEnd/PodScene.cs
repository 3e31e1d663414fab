using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Ebpf.Testing.KubeApi;
using Ebpf.Testing.Runc;

namespace Ebpf.Agent.Tests.EndToEnd;

/// <summary>
/// One pod of a test: a Kubernetes API test server listing it on a unique node name, and a runc container in the
/// kubelet-shaped cgroup <c>/kubepods/besteffort/pod&lt;uid&gt;/&lt;id&gt;</c> whose id is the pod status containerID,
/// so the agent resolves cgroup → pod → names. Names, uid and ids are unique per scene.
/// </summary>
public sealed class PodScene : IAsyncDisposable
{
    private PodScene(KubeApiTestServer kubeApi, RuncContainer container, string nodeName, string ns, string pod, string uid, string containerId, JsonObject podObject)
    {
        KubeApi = kubeApi;
        Container = container;
        NodeName = nodeName;
        Namespace = ns;
        Pod = pod;
        PodUid = uid;
        ContainerId = containerId;
        PodObject = podObject;
    }

    public KubeApiTestServer KubeApi { get; }
    public RuncContainer Container { get; }
    public string NodeName { get; }
    public string Namespace { get; }
    public string Pod { get; }
    public string PodUid { get; }
    /// <summary>The CRI container id: the cgroup leaf and the pod status containerID.</summary>
    public string ContainerId { get; }
    public JsonObject PodObject { get; }
    /// <summary>The pod template's container name.</summary>
    public string ContainerName => "web";
    /// <summary>The template's exec liveness probe command.</summary>
    public static IReadOnlyList<string> LivenessProbe { get; } = ["cat", "/tmp/healthy"];

    public static async Task<PodScene> StartAsync(string scenario)
    {
        string suffix = Guid.NewGuid().ToString("N")[..8];
        string node = $"e2e-node-{suffix}";
        string ns = $"e2e-{scenario}-{suffix}";
        string pod = $"web-{suffix}";
        string uid = Guid.NewGuid().ToString();
        string containerId = RuncContainer.NewContainerId();
        var kubeApi = await KubeApiTestServer.StartAsync();
        RuncContainer? container = null;
        try
        {
            container = await RuncContainer.StartAsync(new RuncContainerOptions
            {
                CgroupsPath = $"/kubepods/besteffort/pod{uid}/{containerId}",
                HostNetwork = true,
            });
            var podObject = KubePodTemplate.Create(ns, pod, node, uid, containerId);
            kubeApi.AddPod(podObject);
            return new PodScene(kubeApi, container, node, ns, pod, uid, containerId, podObject);
        }
        catch
        {
            if (container is not null) await container.DisposeAsync();
            await kubeApi.DisposeAsync();
            throw;
        }
    }

    public AgentProcessOptions AgentOptions(TimeSpan? auditWaitWindow = null, string? dataDirectory = null, string? captureFilter = null) => new()
    {
        NodeName = NodeName,
        Kubeconfig = KubeApi.Kubeconfig(),
        AuditWaitWindow = auditWaitWindow ?? TimeSpan.FromSeconds(5),
        DataDirectory = dataDirectory,
        CaptureFilter = captureFilter,
    };

    /// <summary>The first of the pod object's status.podIPs.</summary>
    public string PodIp => PodObject["status"]!["podIPs"]![0]!["ip"]!.GetValue<string>();

    public ExecAuditRequest ExecRequest(IReadOnlyList<string> command, AuditUser user, DateTimeOffset requestReceived) => new()
    {
        Namespace = Namespace,
        Pod = Pod,
        Container = ContainerName,
        Command = command,
        User = user,
        RequestReceived = requestReceived,
    };

    public async ValueTask DisposeAsync()
    {
        await Container.DisposeAsync();
        await KubeApi.DisposeAsync();
    }
}

/// <summary>A tiny HTTP/1.0 server on the host's 127.0.0.1 that hostNetwork containers can reach; counts requests.</summary>
public sealed class TinyHttpServer : IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private int _requests;

    public TinyHttpServer()
    {
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _ = Task.Run(AcceptLoopAsync);
    }

    public int Port { get; }
    public int Requests => Volatile.Read(ref _requests);

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            _ = Task.Run(async () =>
            {
                using (client)
                {
                    try
                    {
                        var stream = client.GetStream();
                        var buffer = new byte[4096];
                        int total = 0;
                        while (total < buffer.Length)
                        {
                            int n = await stream.ReadAsync(buffer.AsMemory(total), _stop.Token);
                            if (n == 0) break;
                            total += n;
                            if (Encoding.ASCII.GetString(buffer, 0, total).Contains("\r\n\r\n", StringComparison.Ordinal)) break;
                        }
                        Interlocked.Increment(ref _requests);
                        await stream.WriteAsync(Encoding.ASCII.GetBytes("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nhello\n"), _stop.Token);
                    }
                    catch (Exception e) when (e is IOException or OperationCanceledException or SocketException)
                    {
                    }
                }
            });
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
        _stop.Dispose();
    }
}
