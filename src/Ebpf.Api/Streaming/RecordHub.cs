using System.Runtime.CompilerServices;
using Ebpf.Api.V1;
using Google.Protobuf.WellKnownTypes;

namespace Ebpf.Api.Streaming;

/// <summary>Limits of the <see cref="RecordHub"/>.</summary>
public sealed class RecordHubOptions
{
    /// <summary>
    /// Records buffered per subscriber. When full the oldest is dropped (never blocking the publisher) and the
    /// subscriber is sent a <see cref="Dropped"/> record before the next one. Defaults to 8192.
    /// </summary>
    public int SubscriberQueueCapacity { get; set; } = 8192;

    /// <summary>Records asked of the replay source per batch when a subscriber resumes. Defaults to 4096.</summary>
    public int ReplayBatchSize { get; set; } = 4096;

    /// <summary>Session ids remembered per subscriber to match records that carry no namespace/pod/user. Defaults to 10000.</summary>
    public int MaxTrackedSessionsPerSubscriber { get; set; } = 10_000;

    /// <summary>Clock for the time stamp of <see cref="Dropped"/> records. Defaults to <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    internal void Validate()
    {
        if (SubscriberQueueCapacity < 1 || ReplayBatchSize < 1 || MaxTrackedSessionsPerSubscriber < 1)
        {
            throw new InvalidOperationException("RecordHubOptions: capacities and batch sizes must be at least 1.");
        }
    }
}

/// <summary>
/// Fans published records out to subscribers. Sequences are assigned by the caller (the store, which appends before
/// publishing); the hub only uses them to splice a replay onto the live stream. <see cref="Publish"/> never blocks:
/// each subscriber has a bounded queue that drops its oldest record and says so with a <see cref="Dropped"/> record.
/// </summary>
public sealed class RecordHub
{
    private readonly RecordHubOptions _options;
    private readonly IRecordReplaySource? _replaySource;
    private readonly Lock _subscribersLock = new();
    private Subscriber[] _subscribers = [];
    private long _published;
    private long _delivered;
    private long _dropped;

    public RecordHub(RecordHubOptions? options = null, IRecordReplaySource? replaySource = null)
    {
        _options = options ?? new RecordHubOptions();
        _options.Validate();
        _replaySource = replaySource;
    }

    /// <summary>Current subscriber count.</summary>
    public int Subscribers => Volatile.Read(ref _subscribers).Length;

    /// <summary>Records passed to <see cref="Publish"/>.</summary>
    public long Published => Interlocked.Read(ref _published);

    /// <summary>Records handed to subscribers (replayed and live, not counting Dropped notices).</summary>
    public long Delivered => Interlocked.Read(ref _delivered);

    /// <summary>Records dropped from subscriber queues because the subscriber was too slow.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Offers <paramref name="record"/> to every subscriber whose filter matches. Thread-safe; never waits on a subscriber.</summary>
    public void Publish(Record record)
    {
        ArgumentNullException.ThrowIfNull(record);
        Interlocked.Increment(ref _published);
        foreach (var subscriber in Volatile.Read(ref _subscribers))
        {
            subscriber.Offer(record);
        }
    }

    /// <summary>
    /// Records matching <paramref name="request"/>. With <c>from_sequence &gt; 0</c> and a replay source, stored records
    /// from that sequence come first, then the live stream, without gaps or duplicates: live records are queued from
    /// the moment of subscription and those already replayed are skipped by sequence.
    /// </summary>
    public async IAsyncEnumerable<Record> SubscribeAsync(
        SubscribeRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var subscriber = new Subscriber(this, new RecordFilter(request, _options.MaxTrackedSessionsPerSubscriber), _options.SubscriberQueueCapacity);
        Add(subscriber);
        try
        {
            ulong replayedUpTo = 0;
            if (request.FromSequence > 0 && _replaySource is not null)
            {
                var next = request.FromSequence;
                // If live records overflowed the queue while we replayed, they are in the store too: replay again
                // rather than report a loss. Bounded so a subscriber slower than the publisher still makes progress.
                for (var pass = 0; pass < 4; pass++)
                {
                    while (true)
                    {
                        var count = 0;
                        await foreach (var record in _replaySource.ReplayAsync(next, _options.ReplayBatchSize, cancellationToken).ConfigureAwait(false))
                        {
                            count++;
                            if (record.Sequence < next)
                            {
                                continue;
                            }

                            next = record.Sequence + 1;
                            replayedUpTo = record.Sequence;
                            if (subscriber.Matches(record))
                            {
                                Interlocked.Increment(ref _delivered);
                                yield return record;
                            }
                        }

                        if (count < _options.ReplayBatchSize)
                        {
                            break;
                        }
                    }

                    if (!subscriber.ClearDropsRecoverableByReplay())
                    {
                        break;
                    }
                }
            }

            while (true)
            {
                if (!subscriber.TryTake(out var record, out var dropped, out var totalDropped))
                {
                    await subscriber.WaitAsync(cancellationToken).ConfigureAwait(false);
                    continue;
                }

                if (dropped > 0)
                {
                    yield return new Record
                    {
                        Time = Timestamp.FromDateTimeOffset(_options.TimeProvider.GetUtcNow()),
                        Dropped = new Dropped { Count = dropped, Total = totalDropped },
                    };
                }

                if (record.Sequence != 0 && record.Sequence <= replayedUpTo)
                {
                    continue;
                }

                Interlocked.Increment(ref _delivered);
                yield return record;
            }
        }
        finally
        {
            Remove(subscriber);
        }
    }

    private void Add(Subscriber subscriber)
    {
        lock (_subscribersLock)
        {
            _subscribers = [.. _subscribers, subscriber];
        }
    }

    private void Remove(Subscriber subscriber)
    {
        lock (_subscribersLock)
        {
            _subscribers = Array.FindAll(_subscribers, s => !ReferenceEquals(s, subscriber));
        }
    }

    /// <summary>One subscriber's filter and bounded drop-oldest queue.</summary>
    private sealed class Subscriber(RecordHub hub, RecordFilter filter, int capacity)
    {
        private readonly Lock _lock = new();
        private readonly Record[] _ring = new Record[capacity];
        private int _head;
        private int _count;
        private ulong _pendingDropped;
        private ulong _totalDropped;
        private TaskCompletionSource? _waiter;

        public bool Matches(Record record)
        {
            lock (_lock)
            {
                return filter.Matches(record);
            }
        }

        public void Offer(Record record)
        {
            TaskCompletionSource? waiter;
            lock (_lock)
            {
                if (!filter.Matches(record))
                {
                    return;
                }

                if (_count == _ring.Length)
                {
                    _ring[_head] = null!;
                    _head = (_head + 1) % _ring.Length;
                    _count--;
                    _pendingDropped++;
                    _totalDropped++;
                    Interlocked.Increment(ref hub._dropped);
                }

                _ring[(_head + _count) % _ring.Length] = record;
                _count++;
                waiter = _waiter;
                _waiter = null;
            }

            waiter?.TrySetResult();
        }

        /// <summary>
        /// After a replay pass: records dropped meanwhile were stored before they were published, so the next replay
        /// pass serves them; forget the loss and return true so the caller replays again.
        /// </summary>
        public bool ClearDropsRecoverableByReplay()
        {
            lock (_lock)
            {
                if (_pendingDropped == 0)
                {
                    return false;
                }

                _pendingDropped = 0;
                _totalDropped = 0;
                return true;
            }
        }

        public bool TryTake(out Record record, out ulong dropped, out ulong totalDropped)
        {
            lock (_lock)
            {
                if (_count == 0)
                {
                    record = null!;
                    dropped = 0;
                    totalDropped = _totalDropped;
                    return false;
                }

                record = _ring[_head];
                _ring[_head] = null!;
                _head = (_head + 1) % _ring.Length;
                _count--;
                dropped = _pendingDropped;
                _pendingDropped = 0;
                totalDropped = _totalDropped;
                return true;
            }
        }

        public Task WaitAsync(CancellationToken cancellationToken)
        {
            lock (_lock)
            {
                if (_count > 0)
                {
                    return Task.CompletedTask;
                }

                _waiter ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                return _waiter.Task.WaitAsync(cancellationToken);
            }
        }
    }
}
