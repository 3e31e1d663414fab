using System.IO.Compression;
using Microsoft.AspNetCore.Hosting;
using System.Net;
using Ebpf.Api.ExecTrace;
using Ebpf.Api.Grpc;
using Ebpf.Api.V1;

namespace Ebpf.Api.Tests;

public sealed class GrpcServerTests
{
    private const string Service = "/ebpf.v1.ExecTrace/";

    [Fact]
    public async Task GetStatus_UnaryCall_RoundTripsEveryField()
    {
        await using var server = await GrpcTestServer.StartAsync();
        using var client = server.CreateClient();

        var status = await client.GetStatusAsync(new GetStatusRequest());

        Assert.Equal("1.2.3-test", status.Version);
        Assert.Equal("node-a", status.Node);
        Assert.Equal(["tp/sched/sched_process_exec", "tp/sched/sched_process_exit"], status.Probes);
        Assert.Equal(42UL, status.Counters["events.exec"]);
        Assert.Equal(0.25, status.RingBufferFill);
        Assert.Equal(new DateTime(2026, 11, 22, 8, 0, 0, DateTimeKind.Utc), status.Started.ToDateTime());
    }

    [Fact]
    public async Task GetSession_KnownPrefix_ReturnsDetail()
    {
        await using var server = await GrpcTestServer.StartAsync();
        server.Service.AddSession(TestExecTraceService.SampleSession("s-123456"), new ProcessNode { ProcessKey = "4242@123456", Pid = 4242, Argv = { "sh" } });
        using var client = server.CreateClient();

        var detail = await client.GetSessionAsync(new GetSessionRequest { Id = "s-123" });

        Assert.Equal("s-123456", detail.Session.Id);
        Assert.Equal("alice", detail.Session.User);
        Assert.Equal(4242, Assert.Single(detail.Processes).Pid);
    }

    [Fact]
    public async Task GetSession_UnknownId_NotFoundWithPercentDecodedMessage()
    {
        await using var server = await GrpcTestServer.StartAsync();
        using var client = server.CreateClient();

        var ex = await Assert.ThrowsAsync<GrpcStatusException>(() => client.GetSessionAsync(new GetSessionRequest { Id = "nope" }));

        Assert.Equal(StatusCode.NotFound, ex.StatusCode);
        Assert.Equal("no session “nope” (100% sure)", ex.Detail);
    }

    [Fact]
    public async Task GetSession_UnknownId_WireCarriesTrailersOnlyPercentEncodedStatus()
    {
        await using var server = await GrpcTestServer.StartAsync();
        using var http = RawGrpc.CreateHttpClient();
        using var request = RawGrpc.Request(server.Address, Service + "GetSession",
            new ByteArrayContent(RawGrpc.Frame(new GetSessionRequest { Id = "nope" })));

        using var response = await http.SendAsync(request);
        var body = await response.Content.ReadAsByteArrayAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Empty(body);
        Assert.Equal("5", response.Headers.GetValues("grpc-status").Single());
        Assert.Equal("no session %E2%80%9Cnope%E2%80%9D (100%25 sure)", response.Headers.GetValues("grpc-message").Single());
    }

    [Fact]
    public async Task Subscribe_ServerStreaming_DeliversPublishedRecordsInOrder()
    {
        await using var server = await GrpcTestServer.StartAsync();
        using var client = server.CreateClient();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));

        var received = new List<Record>();
        var subscription = Task.Run(async () =>
        {
            await foreach (var record in client.SubscribeAsync(new SubscribeRequest(), new GrpcCallOptions(CancellationToken: cts.Token)))
            {
                received.Add(record);
                if (received.Count == 500)
                {
                    break;
                }
            }
        });

        await WaitUntil(() => server.Service.Hub.Subscribers == 1);
        for (ulong i = 1; i <= 500; i++)
        {
            server.Service.Hub.Publish(TestExecTraceService.NodeExecRecord(i));
        }

        await subscription;
        Assert.Equal(Enumerable.Range(1, 500).Select(i => (ulong)i), received.Select(r => r.Sequence));
        Assert.Equal(["cat", "/etc/shadow"], received[^1].NodeEvent.Exec.Argv);
    }

    [Fact]
    public async Task Request_FrameSplitAcrossSeveralWrites_IsReassembled()
    {
        await using var server = await GrpcTestServer.StartAsync();
        server.Service.AddSession(TestExecTraceService.SampleSession("s-split"));
        using var http = RawGrpc.CreateHttpClient();
        var frame = RawGrpc.Frame(new GetSessionRequest { Id = "s-split" });
        // Header split inside the length, then the payload in two pieces: four separate DATA frames.
        var pieces = new[] { frame[..2], frame[2..5], frame[5..8], frame[8..] };
        using var request = RawGrpc.Request(server.Address, Service + "GetSession", new ChunkedContent(pieces, TimeSpan.FromMilliseconds(50)));

        using var response = await http.SendAsync(request);
        var body = await response.Content.ReadAsByteArrayAsync();

        Assert.Equal((0, null), RawGrpc.GrpcStatus(response));
        Assert.Equal("s-split", Assert.Single(RawGrpc.ParseFrames(body, SessionDetail.Parser)).Session.Id);
    }

    [Fact]
    public async Task Request_TwoMessagesInOneWriteForUnaryCall_Internal()
    {
        await using var server = await GrpcTestServer.StartAsync();
        using var http = RawGrpc.CreateHttpClient();
        var one = RawGrpc.Frame(new GetStatusRequest());
        using var request = RawGrpc.Request(server.Address, Service + "GetStatus", new ByteArrayContent([.. one, .. one]));

        using var response = await http.SendAsync(request);
        await response.Content.ReadAsByteArrayAsync();

        var (status, message) = RawGrpc.GrpcStatus(response);
        Assert.Equal((int)StatusCode.Internal, status);
        Assert.Contains("Additional data", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Request_TruncatedFrame_Internal()
    {
        await using var server = await GrpcTestServer.StartAsync();
        using var http = RawGrpc.CreateHttpClient();
        var frame = RawGrpc.Frame(new GetSessionRequest { Id = "abcdef" });
        using var request = RawGrpc.Request(server.Address, Service + "GetSession", new ByteArrayContent(frame[..^2]));

        using var response = await http.SendAsync(request);
        await response.Content.ReadAsByteArrayAsync();

        Assert.Equal((int)StatusCode.Internal, RawGrpc.GrpcStatus(response).Status);
    }

    [Fact]
    public async Task Request_InvalidProtobuf_Internal()
    {
        await using var server = await GrpcTestServer.StartAsync();
        using var http = RawGrpc.CreateHttpClient();
        // Field 1, wire type 2, length 100, but only 3 bytes follow.
        using var request = RawGrpc.Request(server.Address, Service + "GetSession", new ByteArrayContent(RawGrpc.Frame([0x0A, 100, 1, 2, 3])));

        using var response = await http.SendAsync(request);
        await response.Content.ReadAsByteArrayAsync();

        var (status, message) = RawGrpc.GrpcStatus(response);
        Assert.Equal((int)StatusCode.Internal, status);
        Assert.Equal("Failed to deserialize the message.", message);
    }

    [Fact]
    public async Task Request_LargerThanMaxReceiveSize_ResourceExhausted()
    {
        await using var server = await GrpcTestServer.StartAsync(new GrpcServerOptions { MaxReceiveMessageSize = 1024 });
        using var client = server.CreateClient();

        var ex = await Assert.ThrowsAsync<GrpcStatusException>(
            () => client.GetSessionAsync(new GetSessionRequest { Id = new string('x', 2000) }));

        Assert.Equal(StatusCode.ResourceExhausted, ex.StatusCode);
    }

    [Fact]
    public async Task Request_HugeDeclaredLengthWithoutPayload_ResourceExhaustedBeforeBodyArrives()
    {
        await using var server = await GrpcTestServer.StartAsync();
        using var http = RawGrpc.CreateHttpClient();
        var header = new byte[5];
        GrpcProtocol.WriteFrameHeader(header, int.MaxValue);
        // Send only the header and keep the request open: the server must answer from the header alone.
        var pieces = new[] { header, new byte[] { 0 } };
        using var request = RawGrpc.Request(server.Address, Service + "GetSession", new ChunkedContent(pieces, TimeSpan.FromSeconds(5)));

        var started = DateTime.UtcNow;
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);

        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(4), "the server waited for the body");
        Assert.Equal(((int)StatusCode.ResourceExhausted).ToString(System.Globalization.CultureInfo.InvariantCulture), response.Headers.GetValues("grpc-status").Single());
    }

    [Fact]
    public async Task Request_CompressedFlagWithoutEncoding_Unimplemented()
    {
        await using var server = await GrpcTestServer.StartAsync();
        using var http = RawGrpc.CreateHttpClient();
        using var request = RawGrpc.Request(server.Address, Service + "GetStatus",
            new ByteArrayContent(RawGrpc.Frame(new GetStatusRequest(), compressedFlag: true)));

        using var response = await http.SendAsync(request);
        await response.Content.ReadAsByteArrayAsync();

        Assert.Equal((int)StatusCode.Unimplemented, RawGrpc.GrpcStatus(response).Status);
        Assert.Equal("identity,gzip", response.Headers.GetValues("grpc-accept-encoding").Single());
    }

    [Fact]
    public async Task Request_UnsupportedEncodingHeader_Unimplemented()
    {
        await using var server = await GrpcTestServer.StartAsync();
        using var http = RawGrpc.CreateHttpClient();
        using var request = RawGrpc.Request(server.Address, Service + "GetStatus", new ByteArrayContent(RawGrpc.Frame(new GetStatusRequest())));
        request.Headers.TryAddWithoutValidation("grpc-encoding", "snappy");

        using var response = await http.SendAsync(request);

        Assert.Equal((int)StatusCode.Unimplemented, RawGrpc.GrpcStatus(response).Status);
    }

    [Fact]
    public async Task Request_GzipCompressedMessage_IsDecompressed()
    {
        await using var server = await GrpcTestServer.StartAsync();
        server.Service.AddSession(TestExecTraceService.SampleSession("s-gzip"));
        using var http = RawGrpc.CreateHttpClient();
        using var compressed = new MemoryStream();
        using (var gzip = new GZipStream(compressed, CompressionLevel.Fastest, leaveOpen: true))
        {
            gzip.Write(Google.Protobuf.MessageExtensions.ToByteArray(new GetSessionRequest { Id = "s-gzip" }));
        }

        using var request = RawGrpc.Request(server.Address, Service + "GetSession",
            new ByteArrayContent(RawGrpc.Frame(compressed.ToArray(), compressedFlag: true)));
        request.Headers.TryAddWithoutValidation("grpc-encoding", "gzip");

        using var response = await http.SendAsync(request);
        var body = await response.Content.ReadAsByteArrayAsync();

        Assert.Equal((0, null), RawGrpc.GrpcStatus(response));
        Assert.Equal("s-gzip", Assert.Single(RawGrpc.ParseFrames(body, SessionDetail.Parser)).Session.Id);
    }

    [Theory]
    [InlineData("/ebpf.v1.ExecTrace/NoSuchMethod")]
    [InlineData("/ebpf.v1.NoSuchService/GetStatus")]
    public async Task Call_UnknownMethodOrService_Unimplemented(string path)
    {
        await using var server = await GrpcTestServer.StartAsync();
        using var grpc = new GrpcClient(new GrpcClientOptions { Address = server.Address });

        var ex = await Assert.ThrowsAsync<GrpcStatusException>(() => grpc.UnaryAsync(path, new GetStatusRequest(), AgentStatus.Parser));

        Assert.Equal(StatusCode.Unimplemented, ex.StatusCode);
        Assert.Contains(path, ex.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Call_WrongContentType_Http415WithInternalStatus()
    {
        await using var server = await GrpcTestServer.StartAsync();
        using var http = RawGrpc.CreateHttpClient();
        using var request = RawGrpc.Request(server.Address, Service + "GetStatus", new ByteArrayContent(RawGrpc.Frame(new GetStatusRequest())), "application/json");

        using var response = await http.SendAsync(request);

        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.StatusCode);
        Assert.Equal((int)StatusCode.Internal, RawGrpc.GrpcStatus(response).Status);
    }

    [Fact]
    public async Task Call_GrpcProtoContentType_Accepted()
    {
        await using var server = await GrpcTestServer.StartAsync();
        using var http = RawGrpc.CreateHttpClient();
        using var request = RawGrpc.Request(server.Address, Service + "GetStatus", new ByteArrayContent(RawGrpc.Frame(new GetStatusRequest())), "application/grpc+proto");

        using var response = await http.SendAsync(request);
        var body = await response.Content.ReadAsByteArrayAsync();

        Assert.Equal((0, null), RawGrpc.GrpcStatus(response));
        Assert.Equal("node-a", Assert.Single(RawGrpc.ParseFrames(body, AgentStatus.Parser)).Node);
    }

    [Fact]
    public async Task Subscribe_ServerStopsMidStream_StreamEndsWithUnavailableAndStopDoesNotWaitForIt()
    {
        var server = await GrpcTestServer.StartAsync();
        bool disposed = false;
        try
        {
            using var client = server.CreateClient();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            var received = new List<ulong>();
            var subscription = Task.Run(async () =>
            {
                await foreach (var record in client.SubscribeAsync(new SubscribeRequest(), new GrpcCallOptions(CancellationToken: cts.Token)))
                {
                    lock (received) received.Add(record.Sequence);
                }
            });
            await WaitUntil(() => server.Service.Hub.Subscribers == 1);
            server.Service.Hub.Publish(TestExecTraceService.NodeExecRecord(1));
            await WaitUntil(() => { lock (received) return received.Count == 1; });

            // Without ending open streams, Kestrel's graceful stop would wait for this one until its shutdown timeout and
            // then reset the connection: the client would see a transport error, not this status.
            await server.DisposeAsync();
            disposed = true;

            var e = await Assert.ThrowsAsync<GrpcStatusException>(() => subscription.WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.Equal(StatusCode.Unavailable, e.StatusCode);
            Assert.Equal("The server is shutting down.", e.Detail);
            Assert.Equal([1UL], received);
        }
        finally
        {
            if (!disposed) await server.DisposeAsync();
        }
    }

    [Fact]
    public async Task Subscribe_ClientCancelsMidStream_HandlerTokenFires()
    {
        await using var server = await GrpcTestServer.StartAsync();
        using var client = server.CreateClient();
        using var cts = new CancellationTokenSource();
        var received = 0;

        var subscription = Task.Run(async () =>
        {
            await foreach (var record in client.SubscribeAsync(new SubscribeRequest(), new GrpcCallOptions(CancellationToken: cts.Token)))
            {
                if (++received == 10)
                {
                    await cts.CancelAsync();
                }
            }
        });

        await WaitUntil(() => server.Service.Hub.Subscribers == 1);
        for (ulong i = 1; i <= 10; i++)
        {
            server.Service.Hub.Publish(TestExecTraceService.NodeExecRecord(i));
        }

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => subscription);
        // No deadline was set, so only the client's RST_STREAM can have fired the handler's token.
        Assert.Null(await server.Service.SubscribeCancelled.Task.WaitAsync(TimeSpan.FromSeconds(10)));
        await WaitUntil(() => server.Service.Hub.Subscribers == 0);
    }

    [Fact]
    public async Task Call_GrpcTimeoutPasses_DeadlineExceededAndHandlerTokenFires()
    {
        await using var server = await GrpcTestServer.StartAsync();
        using var http = RawGrpc.CreateHttpClient();
        using var request = RawGrpc.Request(server.Address, Service + "GetSession",
            new ByteArrayContent(RawGrpc.Frame(new GetSessionRequest { Id = TestExecTraceService.SleepingSessionId })));
        request.Headers.TryAddWithoutValidation("grpc-timeout", "300m");

        using var response = await http.SendAsync(request);
        await response.Content.ReadAsByteArrayAsync();

        Assert.Equal((int)StatusCode.DeadlineExceeded, RawGrpc.GrpcStatus(response).Status);
        var deadline = await server.Service.DeadlineObserved.Task.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.NotNull(deadline);
    }

    [Fact]
    public async Task Client_TimeoutOption_DeadlineExceeded()
    {
        await using var server = await GrpcTestServer.StartAsync();
        using var client = server.CreateClient();

        var ex = await Assert.ThrowsAsync<GrpcStatusException>(() => client.GetSessionAsync(
            new GetSessionRequest { Id = TestExecTraceService.SleepingSessionId }, new GrpcCallOptions(Timeout: TimeSpan.FromMilliseconds(200))));

        Assert.Equal(StatusCode.DeadlineExceeded, ex.StatusCode);
    }

    [Fact]
    public async Task Handler_Throws_InternalWithoutLeakingDetails()
    {
        await using var server = await GrpcTestServer.StartAsync();
        using var client = server.CreateClient();

        var ex = await Assert.ThrowsAsync<GrpcStatusException>(() => client.GetSessionAsync(new GetSessionRequest { Id = TestExecTraceService.ThrowingSessionId }));

        Assert.Equal(StatusCode.Internal, ex.StatusCode);
        Assert.DoesNotContain("secret", ex.Detail, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("InvalidOperation", ex.Detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("wrong-token")]
    [InlineData("s3cret-token-x")]
    public async Task Call_BearerTokenMissingOrWrong_Unauthenticated(string? token)
    {
        await using var server = await GrpcTestServer.StartAsync(new GrpcServerOptions { BearerToken = "s3cret-token" });
        using var client = server.CreateClient(token);

        var ex = await Assert.ThrowsAsync<GrpcStatusException>(() => client.GetStatusAsync(new GetStatusRequest()));

        Assert.Equal(StatusCode.Unauthenticated, ex.StatusCode);
    }

    [Fact]
    public async Task Call_BearerTokenCorrect_Succeeds()
    {
        await using var server = await GrpcTestServer.StartAsync(new GrpcServerOptions { BearerToken = "s3cret-token" });
        using var client = server.CreateClient("s3cret-token");

        Assert.Equal("node-a", (await client.GetStatusAsync(new GetStatusRequest())).Node);
    }

    [Fact]
    public async Task Call_Http11_RejectedWithUpgradeRequired()
    {
        // A second listener that also speaks HTTP/1.1 is needed to even send an HTTP/1.1 request.
        var builder = Microsoft.AspNetCore.Builder.WebApplication.CreateSlimBuilder();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, l => l.Protocols = Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols.Http1));
        await using var app = builder.Build();
        app.MapExecTraceService(new TestExecTraceService(new Streaming.RecordHub()));
        await app.StartAsync();
        var address = new Uri(app.Urls.First());
        using var http = new HttpClient();
        using var request = RawGrpc.Request(address, Service + "GetStatus", new ByteArrayContent(RawGrpc.Frame(new GetStatusRequest())));
        request.Version = HttpVersion.Version11;

        using var response = await http.SendAsync(request);

        Assert.Equal(HttpStatusCode.UpgradeRequired, response.StatusCode);
        await app.StopAsync();
    }

    internal static async Task WaitUntil(Func<bool> condition, int timeoutMs = 10_000, int pollMs = 10)
    {
        var deadline = DateTime.UtcNow.AddMilliseconds(timeoutMs);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("condition not met in time");
            }

            await Task.Delay(pollMs);
        }
    }
}
