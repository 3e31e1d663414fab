using System.IO.Compression;
using Ebpf.Core.Audit;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ebpf.Kubernetes.Audit;

/// <summary>Outcome of a one-shot import.</summary>
/// <param name="Lines">Non-blank lines read.</param>
/// <param name="Appended">Events the sink stored as new.</param>
/// <param name="Duplicates">Events the sink already had.</param>
/// <param name="Rejected">Lines rejected (with the first few in <paramref name="FirstRejections"/>).</param>
public sealed record AuditImportResult(long Lines, long Appended, long Duplicates, long Rejected, IReadOnlyList<AuditParseItem> FirstRejections);

/// <summary>
/// One-shot import of an audit log (JSON lines, optionally gzip-compressed as lumberjack's rotated backups are, or
/// a cloud export of AKS/GKE records) from a file or a stream such as stdin. Memory is bounded by the batch size and
/// the line limit, whatever the file size.
/// </summary>
public sealed partial class AuditImporter(IAuditEventSink sink, AuditParserOptions? parserOptions = null, int maxBatchEvents = 400, ILogger<AuditImporter>? logger = null)
{
    private const int MaxRejectionsKept = 20;
    private readonly AuditEventParser _parser = new(parserOptions);
    private readonly ILogger _logger = (ILogger?)logger ?? NullLogger.Instance;

    /// <summary>Imports <paramref name="path"/>; "-" reads standard input. Gzip is detected by its magic bytes, not the name.</summary>
    public async Task<AuditImportResult> ImportFileAsync(string path, CancellationToken ct)
    {
        if (path == "-")
        {
            await using var stdin = Console.OpenStandardInput();
            return await ImportStreamAsync(stdin, "stdin", ct);
        }

        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1, useAsync: true);
        return await ImportStreamAsync(file, Path.GetFileName(path), ct);
    }

    /// <summary>Imports JSON lines from <paramref name="stream"/> (plain or gzip); <paramref name="sourceName"/> prefixes locations.</summary>
    public async Task<AuditImportResult> ImportStreamAsync(Stream stream, string sourceName, CancellationToken ct)
    {
        var buffered = new BufferedStream(stream, 64 * 1024);
        var magic = new byte[2];
        var peeked = await buffered.ReadAtLeastAsync(magic, 2, throwOnEndOfStream: false, ct);
        Stream input = new PrefixedStream(magic.AsMemory(0, peeked), buffered);
        if (peeked == 2 && magic[0] == 0x1f && magic[1] == 0x8b)
        {
            input = new GZipStream(input, CompressionMode.Decompress);
        }

        var state = new ImportState(sourceName);
        var lines = new AuditLineAssembler(_parser.Options.MaxEventBytes);
        var chunk = new byte[128 * 1024];
        long offset = 0;
        try
        {
            while (true)
            {
                var read = await input.ReadAsync(chunk, ct);
                if (read == 0)
                {
                    break;
                }

                lines.Feed(chunk.AsSpan(0, read), offset, state.Handler(_parser));
                offset += read;
                if (state.Batch.Count >= maxBatchEvents)
                {
                    await FlushAsync(state, ct);
                }
            }
        }
        catch (InvalidDataException ex)
        {
            // Corrupt or truncated gzip: keep what was decoded, report the rest as one rejection.
            state.Reject(new AuditParseItem($"{sourceName}@{offset}", null, "corrupt compressed data: " + ex.Message));
        }

        lines.Complete(offset, state.Handler(_parser));
        await FlushAsync(state, ct);
        LogImported(_logger, sourceName, state.Lines, state.Appended, state.Duplicates, state.Rejected);
        return new AuditImportResult(state.Lines, state.Appended, state.Duplicates, state.Rejected, state.FirstRejections);
    }

    private async Task FlushAsync(ImportState state, CancellationToken ct)
    {
        if (state.Batch.Count == 0)
        {
            return;
        }

        var result = await sink.AppendAsync(state.Batch.ToArray(), ct);
        state.Appended += result.Appended;
        state.Duplicates += result.Duplicates;
        state.Batch.Clear();
    }

    private sealed class ImportState(string source)
    {
        public List<AuditEvent> Batch { get; } = [];
        public List<AuditParseItem> FirstRejections { get; } = [];
        public long Lines { get; set; }
        public long Appended { get; set; }
        public long Duplicates { get; set; }
        public long Rejected { get; set; }

        private AuditLineAssembler.LineHandler? _handler;

        public AuditLineAssembler.LineHandler Handler(AuditEventParser parser) => _handler ??= (line, start, _, overlong) =>
        {
            if (overlong)
            {
                Lines++;
                Reject(new AuditParseItem($"{source}@{start}", null, $"line longer than {parser.Options.MaxEventBytes} bytes"));
                return;
            }

            var item = parser.ParseLine(line, source, Lines + 1);
            if (item is null)
            {
                return;
            }

            Lines++;
            if (item.Event is { } ev)
            {
                Batch.Add(ev);
            }
            else
            {
                Reject(item);
            }
        };

        public void Reject(AuditParseItem item)
        {
            Rejected++;
            if (FirstRejections.Count < MaxRejectionsKept)
            {
                FirstRejections.Add(item);
            }
        }
    }

    // Replays the sniffed magic bytes before the rest of the stream.
    private sealed class PrefixedStream(ReadOnlyMemory<byte> prefix, Stream inner) : Stream
    {
        private ReadOnlyMemory<byte> _prefix = prefix;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (!_prefix.IsEmpty)
            {
                var n = Math.Min(buffer.Length, _prefix.Length);
                _prefix.Span[..n].CopyTo(buffer);
                _prefix = _prefix[n..];
                return n;
            }

            return inner.Read(buffer);
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (!_prefix.IsEmpty)
            {
                return Read(buffer.Span);
            }

            return await inner.ReadAsync(buffer, cancellationToken);
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
            => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    [LoggerMessage(EventId = 4140, Level = LogLevel.Information, Message = "Audit import {Source}: {Lines} lines, {Appended} appended, {Duplicates} duplicates, {Rejected} rejected")]
    private static partial void LogImported(ILogger logger, string source, long lines, long appended, long duplicates, long rejected);
}
