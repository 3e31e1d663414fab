using System.Net;
using System.Runtime.CompilerServices;
using Ebpf.Api.ExecTrace;
using Ebpf.Api.Grpc;
using Ebpf.Api.Streaming;
using Ebpf.Api.V1;

namespace Ebpf.Api.Tests;

public sealed class RecordHubTests
{
    [Fact]
    public async Task Publish_SlowSubscriberQueueOverflows_DroppedNoticeThenNewestRecords()
    {
        var hub = new RecordHub(new RecordHubOptions { SubscriberQueueCapacity = 100 });
        await using var slow = hub.SubscribeAsync(new SubscribeRequest()).GetAsyncEnumerator();
        var firstMove = slow.MoveNextAsync(); // registers the subscriber and parks it on an empty queue
        await GrpcServerTests.WaitUntil(() => hub.Subscribers == 1);
        hub.Publish(TestExecTraceService.NodeExecRecord(1));
        Assert.True(await firstMove);
        Assert.Equal(1UL, slow.Current.Sequence);

        // Nobody is reading now: 1000 more records into a queue of 100.
        for (ulong i = 2; i <= 1001; i++)
        {
            hub.Publish(TestExecTraceService.NodeExecRecord(i));
        }

        Assert.True(await slow.MoveNextAsync());
        Assert.Equal(new Dropped { Count = 900, Total = 900 }, slow.Current.Dropped);
        Assert.Equal(0UL, slow.Current.Sequence);
        var rest = new List<ulong>();
        while (rest.Count < 100)
        {
            Assert.True(await slow.MoveNextAsync());
            rest.Add(slow.Current.Sequence);
        }

        Assert.Equal(Enumerable.Range(902, 100).Select(i => (ulong)i), rest);
        Assert.Equal(900, hub.Dropped);
        Assert.Equal(1001, hub.Published);
    }

    [Fact]
    public async Task Subscribe_OverGrpcSlowAndFastSubscribers_SlowGetsDroppedFastGetsEverything()
    {
        var hub = new RecordHub(new RecordHubOptions { SubscriberQueueCapacity = 64 });
        await using var server = await GrpcTestServer.StartAsync(hub: hub);
        using var fastClient = server.CreateClient();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        const int Total = 20_000;

        var fastCount = 0;
        var fastSequences = new List<ulong>(Total);
        var fast = Task.Run(async () =>
        {
            await foreach (var record in fastClient.SubscribeAsync(new SubscribeRequest(), new GrpcCallOptions(CancellationToken: cts.Token)))
            {
                fastSequences.Add(record.Sequence);
                Volatile.Write(ref fastCount, fastSequences.Count);
                if (fastSequences.Count == Total)
                {
                    break;
                }
            }
        });
        await GrpcServerTests.WaitUntil(() => hub.Subscribers == 1);

        // The slow subscriber opens its stream and then does not read: HTTP/2 flow control stops the server's
        // writes, the handler stops draining its hub queue, and the hub must drop rather than block.
        using var http = RawGrpc.CreateHttpClient();
        using var slowRequest = RawGrpc.Request(server.Address, "/ebpf.v1.ExecTrace/Subscribe",
            new ByteArrayContent(RawGrpc.Frame(new SubscribeRequest())));
        using var slowResponse = await http.SendAsync(slowRequest, HttpCompletionOption.ResponseHeadersRead, cts.Token);
        var slowBody = await slowResponse.Content.ReadAsStreamAsync(cts.Token);
        await GrpcServerTests.WaitUntil(() => hub.Subscribers == 2);

        // Publish in steps the fast reader keeps up with (its queue holds 64), so only the slow one can overflow.
        for (ulong i = 1; i <= Total; i++)
        {
            hub.Publish(TestExecTraceService.NodeExecRecord(i));
            if (i % 60 == 0)
            {
                var target = (int)i;
                await GrpcServerTests.WaitUntil(() => Volatile.Read(ref fastCount) >= target, 30_000, pollMs: 1);
            }
        }

        await fast;
        Assert.Equal(Enumerable.Range(1, Total).Select(i => (ulong)i), fastSequences);

        // Now read what the slow subscriber was sent: records, then a Dropped notice, then the newest records.
        var reader = new GrpcMessageReader(System.IO.Pipelines.PipeReader.Create(slowBody), 4 << 20, null);
        var slowRecords = new List<Record>();
        while (slowRecords.Count == 0 || slowRecords[^1].Sequence != Total)
        {
            slowRecords.Add((await reader.ReadAsync(Record.Parser, cts.Token))!);
        }

        var dropped = slowRecords.Where(r => r.BodyCase == Record.BodyOneofCase.Dropped).ToList();
        Assert.NotEmpty(dropped);
        var delivered = slowRecords.Where(r => r.BodyCase != Record.BodyOneofCase.Dropped).ToList();
        Assert.Equal((ulong)Total, (ulong)delivered.Count + dropped.Sum(d => (long)d.Dropped.Count).ToUlong());
        Assert.Equal(dropped[^1].Dropped.Total, (ulong)dropped.Sum(d => (long)d.Dropped.Count));
        Assert.True(delivered.Select(r => r.Sequence).SequenceEqual(delivered.Select(r => r.Sequence).Order()), "order kept");
        Assert.True(hub.Dropped > 0);
    }

    [Fact]
    public async Task Subscribe_FromSequenceWhilePublishing_ReplaysThenLiveWithoutGapsOrDuplicates()
    {
        var store = new InMemoryRecordStore(replayDelay: TimeSpan.FromMilliseconds(2));
        var hub = new RecordHub(new RecordHubOptions { ReplayBatchSize = 50, SubscriberQueueCapacity = 100_000 }, store);
        await using var server = await GrpcTestServer.StartAsync(hub: hub);
        using var client = server.CreateClient();
        for (ulong i = 1; i <= 1000; i++)
        {
            store.AppendAndPublish(hub, i);
        }

        using var stopPublishing = new CancellationTokenSource();
        var publisher = Task.Run(async () =>
        {
            var next = 1001UL;
            while (!stopPublishing.IsCancellationRequested)
            {
                store.AppendAndPublish(hub, next++);
                if (next % 20 == 0)
                {
                    await Task.Delay(1);
                }
            }
        });

        var received = new List<ulong>();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await foreach (var record in client.SubscribeAsync(new SubscribeRequest { FromSequence = 200 }, new GrpcCallOptions(CancellationToken: cts.Token)))
        {
            Assert.NotEqual(Record.BodyOneofCase.Dropped, record.BodyCase);
            received.Add(record.Sequence);
            if (received.Count == 3000)
            {
                break;
            }
        }

        await stopPublishing.CancelAsync();
        await publisher;
        Assert.Equal(Enumerable.Range(200, 3000).Select(i => (ulong)i), received);
        Assert.True(store.ReplayCalls > 1, "replay must have been batched");
    }

    [Fact]
    public async Task Subscribe_LiveQueueOverflowsDuringReplay_RecoversFromStoreWithoutLoss()
    {
        var store = new InMemoryRecordStore(replayDelay: TimeSpan.FromMilliseconds(5));
        var hub = new RecordHub(new RecordHubOptions { ReplayBatchSize = 20, SubscriberQueueCapacity = 16 }, store);
        for (ulong i = 1; i <= 200; i++)
        {
            store.AppendAndPublish(hub, i);
        }

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var received = new List<ulong>();
        await using var subscription = hub.SubscribeAsync(new SubscribeRequest { FromSequence = 1 }, cts.Token).GetAsyncEnumerator(cts.Token);
        Assert.True(await subscription.MoveNextAsync());
        received.Add(subscription.Current.Sequence);

        // 100 live records while the subscriber is still replaying: its live queue (16) overflows.
        for (ulong i = 201; i <= 300; i++)
        {
            store.AppendAndPublish(hub, i);
        }

        while (received[^1] != 300)
        {
            Assert.True(await subscription.MoveNextAsync());
            Assert.NotEqual(Record.BodyOneofCase.Dropped, subscription.Current.BodyCase);
            received.Add(subscription.Current.Sequence);
        }

        Assert.Equal(Enumerable.Range(1, 300).Select(i => (ulong)i), received);
        Assert.True(hub.Dropped > 0, "the live queue did overflow");
    }

    [Fact]
    public async Task Subscribe_FiltersByKindNamespaceAndUser_PassesMatchingAndAttributedRecords()
    {
        var hub = new RecordHub();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var byUser = hub.SubscribeAsync(new SubscribeRequest { User = "alice" }, cts.Token).GetAsyncEnumerator(cts.Token);
        await using var byKind = hub.SubscribeAsync(new SubscribeRequest { Kinds = { RecordKind.Session } }, cts.Token).GetAsyncEnumerator(cts.Token);
        await using var byNamespace = hub.SubscribeAsync(new SubscribeRequest { Namespace = "staging" }, cts.Token).GetAsyncEnumerator(cts.Token);
        var pending = new[] { byUser.MoveNextAsync(), byKind.MoveNextAsync(), byNamespace.MoveNextAsync() };
        await GrpcServerTests.WaitUntil(() => hub.Subscribers == 3);

        hub.Publish(TestExecTraceService.NodeExecRecord(1, sessionId: "s-a")); // before alice's session is known
        hub.Publish(new Record { Sequence = 2, Session = TestExecTraceService.SampleSession("s-a", user: "alice") });
        hub.Publish(new Record { Sequence = 3, Session = TestExecTraceService.SampleSession("s-b", user: "bob", ns: "staging") });
        hub.Publish(TestExecTraceService.NodeExecRecord(4, sessionId: "s-a"));
        hub.Publish(TestExecTraceService.NodeExecRecord(5, sessionId: "s-b", ns: "staging"));
        hub.Publish(new Record { Sequence = 6, Attribution = new AttributionUpdate { SessionId = "s-a", Sequences = { 4 } } });
        hub.Publish(new Record { Sequence = 7, Finding = new Finding { Id = "f", User = "alice", Namespace = "prod" } });
        hub.Publish(new Record { Sequence = 100 }); // end marker: no body, passes only empty filters
        hub.Publish(new Record { Sequence = 101, Session = TestExecTraceService.SampleSession("s-end", user: "alice", ns: "staging") });

        Assert.Equal([2UL, 4, 6, 7, 101], await Collect(byUser, pending[0], 101));
        Assert.Equal([2UL, 3, 101], await Collect(byKind, pending[1], 101));
        Assert.Equal([3UL, 5, 101], await Collect(byNamespace, pending[2], 101));
    }

    private static async Task<List<ulong>> Collect(IAsyncEnumerator<Record> enumerator, ValueTask<bool> first, ulong last)
    {
        var sequences = new List<ulong>();
        var move = first;
        while (true)
        {
            Assert.True(await move);
            sequences.Add(enumerator.Current.Sequence);
            if (enumerator.Current.Sequence == last)
            {
                return sequences;
            }

            move = enumerator.MoveNextAsync();
        }
    }

    /// <summary>A journal in memory: append assigns nothing (the test passes sequences), replay reads in order.</summary>
    private sealed class InMemoryRecordStore(TimeSpan replayDelay) : IRecordReplaySource
    {
        private readonly Lock _lock = new();
        private readonly List<Record> _records = [];
        public int ReplayCalls;

        public void AppendAndPublish(RecordHub hub, ulong sequence)
        {
            var record = TestExecTraceService.NodeExecRecord(sequence);
            lock (_lock)
            {
                _records.Add(record);
            }

            hub.Publish(record);
        }

        public async IAsyncEnumerable<Record> ReplayAsync(ulong fromSequence, int max, [EnumeratorCancellation] CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref ReplayCalls);
            await Task.Delay(replayDelay, cancellationToken);
            List<Record> batch;
            lock (_lock)
            {
                batch = _records.Where(r => r.Sequence >= fromSequence).Take(max).ToList();
            }

            foreach (var record in batch)
            {
                yield return record;
            }
        }
    }
}

internal static class LongExtensions
{
    public static ulong ToUlong(this long value) => checked((ulong)value);
}
