using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Threading.Channels;
using Ebpf.Events;
using Ebpf.Interop.Native;
using Microsoft.Extensions.Logging;

namespace Ebpf.Interop;

/// <summary>
/// Reads the ring buffer on one dedicated thread. libbpf calls <see cref="OnSample"/> for each record; the record
/// memory is the ring buffer itself and is valid only inside that call, so it is decoded there, stamped with
/// wall-clock time and handed off with <c>TryWrite</c> (never blocking the kernel's producer side). What cannot be
/// handed off or decoded is counted, never silently lost.
/// </summary>
public sealed unsafe class RingBufferReader : IDisposable
{
    private const int EINTR = 4;
    private const int KindSlots = 256;

    private readonly RingBufferHandle _ringBuffer;
    private readonly BootClock _clock;
    private readonly ILogger? _logger;
    private readonly int _pollTimeoutMs;
    private readonly Channel<NodeEvent> _channel;
    private readonly long[] _eventsByKind = new long[KindSlots];
    private readonly long[] _handoffDropsByKind = new long[KindSlots];
    private readonly NodeEventDecoder _decoder = new();
    private long _decoderExceptions;
    private readonly Action<NodeEvent>? _observer;
    private GCHandle _self;
    private Thread? _thread;
    private volatile bool _stopping;
    private int _disposed;

    /// <param name="ringBufferMap">A BPF_MAP_TYPE_RINGBUF map of a loaded object.</param>
    /// <param name="observer">Called on the reader thread for each decoded event before hand-off; must not throw or block.</param>
    internal RingBufferReader(BpfObject owner, BpfMap ringBufferMap, BootClock clock, int channelCapacity, int pollTimeoutMs, ILogger? logger, Action<NodeEvent>? observer = null)
    {
        _clock = clock;
        _logger = logger;
        _pollTimeoutMs = pollTimeoutMs;
        _observer = observer;
        // Wait mode: TryWrite returns false when full, so the loss is seen and counted (DropWrite would hide it).
        _channel = Channel.CreateBounded<NodeEvent>(new BoundedChannelOptions(channelCapacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleWriter = true,
            SingleReader = false,
            AllowSynchronousContinuations = false,
        });
        _self = GCHandle.Alloc(this);
        try
        {
            _ringBuffer = RingBufferHandle.Create(owner.Handle, ringBufferMap.Fd, &OnSample, GCHandle.ToIntPtr(_self));
        }
        catch
        {
            _self.Free();
            throw;
        }
    }

    /// <summary>Decoded events. Completes when the reader stops.</summary>
    public ChannelReader<NodeEvent> Events => _channel.Reader;

    /// <summary>True while the polling thread runs.</summary>
    public bool IsRunning => _thread is { IsAlive: true };

    /// <summary>Starts the polling thread.</summary>
    public void Start()
    {
        if (_thread is not null)
            throw new InvalidOperationException("The reader is already started.");
        _thread = new Thread(PollLoop) { IsBackground = true, Name = "bpf-ringbuf-reader" };
        _thread.Start();
    }

    internal void AddCounts(Dictionary<EventKind, ulong> events, Dictionary<EventKind, ulong> handoffDrops, Dictionary<string, ulong> decodeErrors)
    {
        for (var k = 0; k < KindSlots; k++)
        {
            var e = Interlocked.Read(ref _eventsByKind[k]);
            if (e != 0)
                events[(EventKind)k] = (ulong)e;
            var d = Interlocked.Read(ref _handoffDropsByKind[k]);
            if (d != 0)
                handoffDrops[(EventKind)k] = (ulong)d;
        }
        var c = _decoder.Counters;
        void Add(string reason, long n)
        {
            if (n != 0)
                decodeErrors[reason] = (ulong)n;
        }
        Add(nameof(DecodeResult.Short), c.Short);
        Add(nameof(DecodeResult.UnknownKind), c.UnknownKind);
        Add(nameof(DecodeResult.UnsupportedVersion), c.UnsupportedVersion);
        Add(nameof(DecodeResult.SizeMismatch), c.SizeMismatch);
        Add("DecoderException", Interlocked.Read(ref _decoderExceptions));
    }

    private void PollLoop()
    {
        var rb = _ringBuffer.DangerousGetHandle();
        while (!_stopping)
        {
            var rc = LibBpf.ring_buffer__poll(rb, _pollTimeoutMs);
            if (rc == 0 && !_stopping)
            {
                // The producer submits with BPF_RB_NO_WAKEUP below the wake-up threshold, so a quiet timeout
                // can leave records waiting: drain them, making the poll timeout the latency bound.
                rc = LibBpf.ring_buffer__consume(rb);
            }
            if (rc < 0 && rc != -EINTR)
            {
                if (_logger is not null)
                    InteropLog.PollFailed(_logger, -rc);
                break;
            }
        }
        _channel.Writer.TryComplete();
    }

    [UnmanagedCallersOnly]
    private static int OnSample(IntPtr context, IntPtr data, nuint size)
    {
        try
        {
            if (GCHandle.FromIntPtr(context).Target is RingBufferReader reader)
                reader.Handle(new ReadOnlySpan<byte>((void*)data, checked((int)size)));
        }
        catch
        {
            // Never let an exception unwind into libbpf; Handle itself counts its failures.
        }
        return 0;
    }

    private void Handle(ReadOnlySpan<byte> record)
    {
        NodeEvent? ev;
        try
        {
            // The decoder counts rejected records by reason itself (NodeEventDecoder.Counters).
            if (_decoder.TryDecode(record, out ev) != DecodeResult.Ok || ev is null)
                return;
        }
        catch (Exception)
        {
            // The decoder promises not to throw on content; count it if it ever does rather than lose it silently.
            Interlocked.Increment(ref _decoderExceptions);
            return;
        }
        ev.Time = _clock.ToWallClock(ev.BootTimeNs);
        var kind = (int)ev.Kind & (KindSlots - 1);
        _observer?.Invoke(ev);
        if (_channel.Writer.TryWrite(ev))
            Interlocked.Increment(ref _eventsByKind[kind]);
        else
            Interlocked.Increment(ref _handoffDropsByKind[kind]);
    }

    /// <summary>Stops polling, joins the thread and frees the ring buffer. Idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        _stopping = true;
        if (_thread is not null && _thread != Thread.CurrentThread)
            _thread.Join();
        _channel.Writer.TryComplete();
        _ringBuffer.Dispose();
        if (_self.IsAllocated)
            _self.Free();
    }
}
