using System.Buffers;
using System.IO.Pipelines;
using Ebpf.Api.Grpc;
using Ebpf.Api.V1;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Ebpf.Api.Tests;

/// <summary>
/// Batching on both ends of a stream: the server stages frames and flushes per burst, the client parses every frame
/// of a read at once. Proves that batching never loses, reorders or holds back a message.
/// </summary>
public sealed class GrpcBatchingTests
{
    private const string Service = "test.v1.Burst";

    [Fact]
    public async Task ServerStream_BurstThenLoneRecords_BurstInFewFlushesAndLoneRecordsDeliveredWhileHandlerWaits()
    {
        const int Burst = 3000;
        var releaseLone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var releaseEnd = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        async IAsyncEnumerable<Record> Stream(SubscribeRequest request, GrpcCallContext context)
        {
            for (ulong i = 1; i <= Burst; i++)
            {
                yield return TestExecTraceService.NodeExecRecord(i);
            }

            await releaseLone.Task.WaitAsync(context.CancellationToken);
            yield return TestExecTraceService.NodeExecRecord(Burst + 1);
            await releaseEnd.Task.WaitAsync(context.CancellationToken);
        }

        await using var server = await BurstServer.StartAsync(Stream);
        using var client = new GrpcClient(new GrpcClientOptions { Address = server.Address });
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var stream = client.ServerStreamingAsync("/" + Service + "/Stream", new SubscribeRequest(), Record.Parser,
            new GrpcCallOptions(CancellationToken: cts.Token)).GetAsyncEnumerator(cts.Token);
        await using var _ = stream;

        var received = new List<ulong>();
        while (received.Count < Burst && await stream.MoveNextAsync())
        {
            received.Add(stream.Current.Sequence);
        }

        // The handler is now parked on releaseLone: everything it produced reached us without a batch filling up.
        Assert.Equal(Enumerable.Range(1, Burst).Select(i => (ulong)i), received);
        Assert.False(releaseLone.Task.IsCompleted);
        var burstBytes = TestExecTraceService.NodeExecRecord(1).CalculateSize() * (long)Burst;
        var flushesForBurst = server.Flushes;
        // One flush for the response headers, one per 128 KiB while the source keeps producing, one when it waits.
        Assert.InRange(flushesForBurst, 1, 2 + (burstBytes / (128 * 1024)) + 1);

        releaseLone.SetResult();
        Assert.True(await stream.MoveNextAsync());
        Assert.Equal((ulong)Burst + 1, stream.Current.Sequence);
        Assert.False(releaseEnd.Task.IsCompleted);

        releaseEnd.SetResult();
        Assert.False(await stream.MoveNextAsync());
    }

    [Fact]
    public async Task ServerStream_HandlerThrowsAfterRecords_RecordsThenInternalStatus()
    {
        static async IAsyncEnumerable<Record> Stream(SubscribeRequest request, GrpcCallContext context)
        {
            for (ulong i = 1; i <= 3; i++)
            {
                yield return TestExecTraceService.NodeExecRecord(i);
            }

            // Thrown synchronously: the records are still staged, not flushed, when the handler fails.
            throw new InvalidOperationException("store went away");
        }

        await using var server = await BurstServer.StartAsync(Stream);
        using var client = new GrpcClient(new GrpcClientOptions { Address = server.Address });
        var received = new List<ulong>();
        var error = await Assert.ThrowsAsync<GrpcStatusException>(async () =>
        {
            await foreach (var record in client.ServerStreamingAsync("/" + Service + "/Stream", new SubscribeRequest(), Record.Parser))
            {
                received.Add(record.Sequence);
            }
        });

        Assert.Equal([1UL, 2UL, 3UL], received);
        Assert.Equal(StatusCode.Internal, error.StatusCode);
    }

    [Fact]
    public async Task Write_MessagesAroundOneLargerThanTheStagingBuffer_RoundTripInOrder()
    {
        var pipe = NewPipe();
        var writer = new GrpcMessageWriter(pipe.Writer);
        var huge = TestExecTraceService.NodeExecRecord(2);
        huge.NodeEvent.Exec.Argv.Add(new string('x', 300_000));
        var sent = new[] { TestExecTraceService.NodeExecRecord(1), huge, TestExecTraceService.NodeExecRecord(3) };

        foreach (var record in sent)
        {
            writer.Write(record);
        }

        await writer.FlushAsync(CancellationToken.None);
        await pipe.Writer.CompleteAsync();

        var reader = new GrpcMessageReader(pipe.Reader, 4 << 20, null);
        var batch = new List<Record>();
        while (await reader.ReadBatchAsync(Record.Parser, batch, 256, CancellationToken.None))
        {
        }

        Assert.Equal(sent, batch);
        Assert.Equal(3, writer.MessagesWritten);
    }

    [Fact]
    public async Task ReadBatchAsync_SeveralFramesBuffered_ReturnsAllInOneCall()
    {
        var pipe = NewPipe();
        await WriteFramesAsync(pipe, 1, 5);
        var reader = new GrpcMessageReader(pipe.Reader, 4 << 20, null);

        var batch = new List<Record>();
        Assert.True(await reader.ReadBatchAsync(Record.Parser, batch, 256, CancellationToken.None));

        Assert.Equal([1UL, 2UL, 3UL, 4UL, 5UL], batch.Select(r => r.Sequence));
    }

    [Fact]
    public async Task ReadBatchAsync_MoreFramesThanTheLimit_RestReturnedWithoutWaitingForNewBytes()
    {
        var pipe = NewPipe();
        await WriteFramesAsync(pipe, 1, 5);
        var reader = new GrpcMessageReader(pipe.Reader, 4 << 20, null);
        var sizes = new List<int>();
        var all = new List<Record>();

        for (var i = 0; i < 3; i++)
        {
            var batch = new List<Record>();
            var read = reader.ReadBatchAsync(Record.Parser, batch, 2, CancellationToken.None);
            // Buffered frames are handed out synchronously: no new bytes are needed for them.
            Assert.True(read.IsCompleted);
            Assert.True(await read);
            sizes.Add(batch.Count);
            all.AddRange(batch);
        }

        Assert.Equal([2, 2, 1], sizes);
        Assert.Equal([1UL, 2UL, 3UL, 4UL, 5UL], all.Select(r => r.Sequence));

        var next = new List<Record>();
        var pending = reader.ReadBatchAsync(Record.Parser, next, 2, CancellationToken.None);
        Assert.False(pending.IsCompleted);
        await WriteFramesAsync(pipe, 6, 1);
        Assert.True(await pending);
        Assert.Equal(6UL, Assert.Single(next).Sequence);
    }

    [Fact]
    public async Task ReadBatchAsync_FrameSplitAcrossWrites_WaitsForTheRest()
    {
        var pipe = NewPipe();
        var frame = RawGrpc.Frame(TestExecTraceService.NodeExecRecord(9));
        await pipe.Writer.WriteAsync(frame.AsMemory(0, 7));
        var reader = new GrpcMessageReader(pipe.Reader, 4 << 20, null);

        var batch = new List<Record>();
        var pending = reader.ReadBatchAsync(Record.Parser, batch, 256, CancellationToken.None);
        Assert.False(pending.IsCompleted);
        await pipe.Writer.WriteAsync(frame.AsMemory(7));

        Assert.True(await pending);
        Assert.Equal(9UL, Assert.Single(batch).Sequence);
    }

    [Fact]
    public async Task ReadBatchAsync_BadFrameAfterGoodOnes_GoodOnesFirstThenInternal()
    {
        var pipe = NewPipe();
        await WriteFramesAsync(pipe, 1, 2);
        var bad = RawGrpc.Frame(TestExecTraceService.NodeExecRecord(3));
        bad[0] = 7; // neither 0 (plain) nor 1 (compressed)
        await pipe.Writer.WriteAsync(bad);
        var reader = new GrpcMessageReader(pipe.Reader, 4 << 20, null);

        var batch = new List<Record>();
        Assert.True(await reader.ReadBatchAsync(Record.Parser, batch, 256, CancellationToken.None));
        Assert.Equal([1UL, 2UL], batch.Select(r => r.Sequence));

        var error = await Assert.ThrowsAsync<GrpcStatusException>(async () =>
            await reader.ReadBatchAsync(Record.Parser, new List<Record>(), 256, CancellationToken.None));
        Assert.Equal(StatusCode.Internal, error.StatusCode);
    }

    [Fact]
    public async Task ReadBatchAsync_StreamEnds_FalseWhenCleanInternalInsideAFrame()
    {
        var clean = NewPipe();
        await WriteFramesAsync(clean, 1, 1);
        await clean.Writer.CompleteAsync();
        var cleanReader = new GrpcMessageReader(clean.Reader, 4 << 20, null);
        var batch = new List<Record>();
        Assert.True(await cleanReader.ReadBatchAsync(Record.Parser, batch, 256, CancellationToken.None));
        Assert.False(await cleanReader.ReadBatchAsync(Record.Parser, batch, 256, CancellationToken.None));
        Assert.Single(batch);

        var cut = NewPipe();
        await cut.Writer.WriteAsync(RawGrpc.Frame(TestExecTraceService.NodeExecRecord(1)).AsMemory(0, 10));
        await cut.Writer.CompleteAsync();
        var cutReader = new GrpcMessageReader(cut.Reader, 4 << 20, null);
        var error = await Assert.ThrowsAsync<GrpcStatusException>(async () =>
            await cutReader.ReadBatchAsync(Record.Parser, new List<Record>(), 256, CancellationToken.None));
        Assert.Equal(StatusCode.Internal, error.StatusCode);
    }

    /// <summary>A pipe whose flush never waits for the reader, so a test can write everything before reading.</summary>
    private static Pipe NewPipe() => new(new PipeOptions(pauseWriterThreshold: 0));

    private static async Task WriteFramesAsync(Pipe pipe, int first, int count)
    {
        for (var i = first; i < first + count; i++)
        {
            pipe.Writer.Write(RawGrpc.Frame(TestExecTraceService.NodeExecRecord((ulong)i)).AsSpan());
        }

        await pipe.Writer.FlushAsync();
    }

    /// <summary>Real Kestrel serving one streaming method, with the response body wrapped to count flushes.</summary>
    private sealed class BurstServer : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private int _flushes;

        private BurstServer(WebApplication app) => _app = app;

        public Uri Address { get; private set; } = null!;

        public int Flushes => Volatile.Read(ref _flushes);

        public static async Task<BurstServer> StartAsync(Func<SubscribeRequest, GrpcCallContext, IAsyncEnumerable<Record>> handler)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.ConfigureKestrel(k => k.ListenGrpc(new GrpcListenOptions { Port = 0 }));
            var app = builder.Build();
            var server = new BurstServer(app);
            app.Use((context, next) =>
            {
                var body = context.Features.Get<IHttpResponseBodyFeature>()!;
                context.Features.Set<IHttpResponseBodyFeature>(new CountingBodyFeature(body, server));
                return next(context);
            });
            app.MapGrpcService(new GrpcServiceDefinition(Service,
                [new ServerStreamingMethod<SubscribeRequest, Record>("Stream", SubscribeRequest.Parser, handler)]));
            await app.StartAsync();
            var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            server.Address = new Uri($"http://127.0.0.1:{new Uri(bound).Port}");
            return server;
        }

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }

        private sealed class CountingBodyFeature(IHttpResponseBodyFeature inner, BurstServer server) : IHttpResponseBodyFeature
        {
            private PipeWriter? _writer;

            public Stream Stream => inner.Stream;

            public PipeWriter Writer => _writer ??= new CountingPipeWriter(inner.Writer, server);

            public Task CompleteAsync() => inner.CompleteAsync();

            public void DisableBuffering() => inner.DisableBuffering();

            public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default) =>
                inner.SendFileAsync(path, offset, count, cancellationToken);

            public Task StartAsync(CancellationToken cancellationToken = default) => inner.StartAsync(cancellationToken);
        }

        private sealed class CountingPipeWriter(PipeWriter inner, BurstServer server) : PipeWriter
        {
            public override void Advance(int bytes) => inner.Advance(bytes);

            public override void CancelPendingFlush() => inner.CancelPendingFlush();

            public override void Complete(Exception? exception = null) => inner.Complete(exception);

            public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);

            public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
            {
                Interlocked.Increment(ref server._flushes);
                return inner.FlushAsync(cancellationToken);
            }

            public override Memory<byte> GetMemory(int sizeHint = 0) => inner.GetMemory(sizeHint);

            public override Span<byte> GetSpan(int sizeHint = 0) => inner.GetSpan(sizeHint);
        }
    }
}
