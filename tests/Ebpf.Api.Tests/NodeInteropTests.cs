using System.Text.Json;
using Ebpf.Api.V1;

namespace Ebpf.Api.Tests;

/// <summary>The reference gRPC implementation (grpc-js) against our framing server: proof beyond our own client.</summary>
public sealed class NodeInteropTests
{
    [Fact]
    public async Task GrpcJs_SubscribeLookupsAndErrors_InteroperateWithOurServer()
    {
        await NodeInterop.EnsureInstalledAsync();
        await using var server = await GrpcTestServer.StartAsync();
        server.Service.AddSession(TestExecTraceService.SampleSession("s-alice-1"));
        server.Service.AddSession(TestExecTraceService.SampleSession("s-bob-1", user: "bob"));
        const int Wanted = 50;

        var node = NodeInterop.RunAsync("node",
            ["interop.js", $"127.0.0.1:{server.Address.Port}", NodeInterop.ProtosDirectory, Wanted.ToString(System.Globalization.CultureInfo.InvariantCulture)],
            TimeSpan.FromSeconds(60));

        // Publish until the node client has cancelled: it needs Wanted records, more only prove the cancel stops them.
        await GrpcServerTests.WaitUntil(() => server.Service.Hub.Subscribers == 1 || node.IsCompleted, 30_000);
        ulong sequence = 0;
        while (!server.Service.SubscribeCancelled.Task.IsCompleted && !node.IsCompleted && sequence < 100_000)
        {
            server.Service.Hub.Publish(TestExecTraceService.NodeExecRecord(++sequence, sessionId: "s-alice-1"));
            if (sequence % 10 == 0)
            {
                await Task.Delay(1);
            }
        }

        var (exitCode, stdout, stderr) = await node;
        Assert.True(exitCode == 0, $"node failed ({exitCode}): {stderr}");
        using var json = JsonDocument.Parse(stdout);
        var root = json.RootElement;

        var subscribe = root.GetProperty("subscribe");
        Assert.Equal(1, subscribe.GetProperty("code").GetInt32()); // CANCELLED: the client's own cancel
        var sequences = subscribe.GetProperty("sequences").EnumerateArray().Select(e => ulong.Parse(e.GetString()!, System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.True(sequences.Count >= Wanted);
        Assert.Equal(Enumerable.Range(1, sequences.Count).Select(i => (ulong)i), sequences);
        var sample = subscribe.GetProperty("sample");
        Assert.Equal("nodeEvent", sample.GetProperty("body").GetString());
        Assert.Equal(["cat", "/etc/shadow"], sample.GetProperty("nodeEvent").GetProperty("exec").GetProperty("argv").EnumerateArray().Select(e => e.GetString()));
        // No deadline on the subscription: only grpc-js's cancel (RST_STREAM) can have fired the handler's token.
        Assert.Null(await server.Service.SubscribeCancelled.Task.WaitAsync(TimeSpan.FromSeconds(10)));

        var list = root.GetProperty("listSessions");
        Assert.Equal(0, list.GetProperty("code").GetInt32());
        var session = Assert.Single(list.GetProperty("response").GetProperty("sessions").EnumerateArray());
        Assert.Equal("s-alice-1", session.GetProperty("id").GetString());
        Assert.Equal("SESSION_KIND_EXEC", session.GetProperty("kind").GetString());
        Assert.Equal(["sh", "-c", "cat /etc/shadow"], session.GetProperty("command").EnumerateArray().Select(e => e.GetString()));

        var status = root.GetProperty("getStatus");
        Assert.Equal(0, status.GetProperty("code").GetInt32());
        Assert.Equal("node-a", status.GetProperty("response").GetProperty("node").GetString());
        Assert.Equal("42", status.GetProperty("response").GetProperty("counters").GetProperty("events.exec").GetString());

        var notFound = root.GetProperty("getSessionUnknown");
        Assert.Equal(5, notFound.GetProperty("code").GetInt32());
        Assert.Equal("no session “does-not-exist” (100% sure)", notFound.GetProperty("details").GetString());

        Assert.Equal(4, root.GetProperty("getSessionSleeping").GetProperty("code").GetInt32());
        Assert.Equal(12, root.GetProperty("unknownMethod").GetProperty("code").GetInt32());
    }
}
