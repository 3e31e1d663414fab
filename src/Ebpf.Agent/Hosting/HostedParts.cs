using Ebpf.Api;
using Ebpf.Api.Streaming;
using Ebpf.Api.V1;
using Ebpf.Interop;
using Ebpf.Kubernetes;
using Ebpf.Kubernetes.Audit;
using Ebpf.Store;
using Microsoft.Extensions.Hosting;

namespace Ebpf.Agent.Hosting;

/// <summary>The store as the hub's replay source for subscribers that resume from a sequence.</summary>
internal sealed class StoreReplaySource(EventStore store) : IRecordReplaySource
{
    public IAsyncEnumerable<Record> ReplayAsync(ulong fromSequence, int max, CancellationToken cancellationToken) =>
        store.ReplayAsync(fromSequence, max, cancellationToken);
}

/// <summary>Runs one audit log tailer for the life of the host.</summary>
internal sealed class AuditLogTailerService(AuditLogTailer tailer) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => tailer.RunAsync(stoppingToken);
}

/// <summary>Runs the audit forwarder's delivery loop for the life of the host.</summary>
internal sealed class AuditForwarderService(AuditEventForwarder forwarder) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => forwarder.RunAsync(stoppingToken);
}

/// <summary>`run --print`: one line per record on stdout, the first thing a newcomer watches.</summary>
internal sealed class RecordPrinter(RecordHub hub, TextWriter output) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await foreach (var record in hub.SubscribeAsync(new SubscribeRequest(), stoppingToken).ConfigureAwait(false))
            {
                await output.WriteLineAsync(RecordText.Line(record)).ConfigureAwait(false);
                await output.FlushAsync(stoppingToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }
}

/// <summary>
/// Registered last, so stopped first: detaches the BPF programs, so no record arrives while the rest shuts down.
/// </summary>
internal sealed class CaptureStopper(KernelCapture? capture) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken)
    {
        capture?.Dispose();
        return Task.CompletedTask;
    }
}

/// <summary>
/// Registered first, so stopped last, after the pipeline: stops the pod watch, then commits everything the
/// store still has queued and closes it.
/// </summary>
internal sealed class StoreCloser(NodeIdentity identity, EventStore store) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await identity.DisposeAsync().ConfigureAwait(false);
        await store.FlushAsync(cancellationToken).ConfigureAwait(false);
        await store.DisposeAsync().ConfigureAwait(false);
    }
}
