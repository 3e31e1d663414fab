using System.IO.Compression;
using System.Security.Cryptography;
using System.Text.Json;
using Ebpf.Core.Audit;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Win32.SafeHandles;

namespace Ebpf.Kubernetes.Audit;

/// <summary>
/// Follows kube-apiserver's log backend file (<c>--audit-log-path</c>, one JSON event per line), poll-based.
/// Rotation: the API server (lumberjack) renames the file to <c>&lt;name&gt;-&lt;UTC timestamp&gt;&lt;ext&gt;</c>, may gzip it
/// later, and creates a new file; we keep the old file open, finish it, then switch. Truncation (size shrinks or the
/// first bytes change) restarts at 0. The checkpoint (device, inode, offset, hash of the first bytes) is replaced
/// atomically only after the sink acknowledged, so a restart resumes without gap or duplicate, also when the file was
/// rotated (found again by inode among <c>&lt;name&gt;-*&lt;ext&gt;</c>) or rotated and compressed (found by its head hash
/// among <c>&lt;name&gt;-*&lt;ext&gt;.gz</c>) meanwhile.
/// Not thread-safe: one loop (<see cref="RunAsync"/>) or one caller of <see cref="PollOnceAsync"/> at a time.
/// </summary>
public sealed partial class AuditLogTailer : IDisposable
{
    private readonly AuditLogTailerOptions _options;
    private readonly IAuditEventSink _sink;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly AuditEventParser _parser;
    private readonly AuditLineAssembler _lines;
    private readonly byte[] _chunk;
    private readonly List<AuditEvent> _batch = [];

    private OpenFile? _file;
    private bool _started;

    public AuditLogTailer(AuditLogTailerOptions options, IAuditEventSink sink, TimeProvider? timeProvider = null, ILogger<AuditLogTailer>? logger = null)
    {
        options.Validate();
        _options = options;
        _sink = sink;
        _time = timeProvider ?? TimeProvider.System;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _parser = new AuditEventParser(options.Parser);
        _lines = new AuditLineAssembler(options.Parser.MaxEventBytes);
        _chunk = new byte[options.ReadChunkBytes];
    }

    public AuditLogTailerCounters Counters { get; } = new();

    /// <summary>Polls until cancelled. Errors are logged and retried on the next poll.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await PollOnceAsync(ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                LogPollFailed(_logger, _options.Path, ex);
                CloseFile();
            }

            try
            {
                await Task.Delay(_options.PollInterval, _time, ct);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    /// <summary>
    /// Reads everything available now, following rotation and truncation, and hands it to the sink.
    /// Returns the number of events the sink acknowledged (appended + duplicates).
    /// </summary>
    public async Task<long> PollOnceAsync(CancellationToken ct)
    {
        var before = Counters.Appended + Counters.Duplicates;
        if (!_started)
        {
            if (!await ResumeAsync(ct))
            {
                return 0;
            }

            _started = true;
        }

        if (_file is null && !OpenCurrent(0))
        {
            return 0;
        }

        for (var switches = 0; switches < 8; switches++)
        {
            // Check before reading: after copytruncate the file may already have regrown past our offset, and reading
            // on from there would deliver the tail of unrelated lines.
            var file = _file!;
            var (_, size) = FileStat.Of(file.Handle);
            if (size < file.ReadOffset || !HeadUnchanged(file))
            {
                Interlocked.Increment(ref Counters._truncations);
                LogTruncated(_logger, _options.Path, file.ReadOffset, size);
                file.ReadOffset = 0;
                file.AckedOffset = 0;
                file.HeadHash = null;
                _lines.Reset(0);
                _batch.Clear();
                await WriteCheckpointAsync(file, ct);
            }

            if (!await DrainAsync(ct))
            {
                break;
            }

            var atPath = FileStat.Of(_options.Path);
            if (atPath is { } now && now.Identity == file.Identity)
            {
                break;
            }

            // Renamed away (rotation) or replaced (recreation): the old inode gets no more writes; finish it first.
            if (!await DrainAsync(ct))
            {
                break;
            }

            _lines.Complete(file.ReadOffset, HandleLine);
            if (!await FlushAsync(file, ct))
            {
                break;
            }

            if (atPath is null)
            {
                break; // new file not created yet; keep the drained old one until it appears
            }

            Interlocked.Increment(ref Counters._rotations);
            LogRotated(_logger, _options.Path, file.Identity.ToString(), now: atPath.Value.Identity.ToString());
            CloseFile();
            if (!OpenCurrent(0))
            {
                break;
            }

            await WriteCheckpointAsync(_file!, ct);
        }

        return Counters.Appended + Counters.Duplicates - before;
    }

    private bool OpenCurrent(long offset)
    {
        var handle = TryOpen(_options.Path);
        if (handle is null)
        {
            return false;
        }

        _file = new OpenFile(handle, FileStat.Of(handle).Identity, _options.Path) { ReadOffset = offset, AckedOffset = offset };
        _lines.Reset(offset);
        return true;
    }

    private static SafeFileHandle? TryOpen(string path)
    {
        try
        {
            // FileShare.Delete: the API server must stay free to rename/remove the file while we hold it.
            return File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
    }

    private void CloseFile()
    {
        _file?.Handle.Dispose();
        _file = null;
        _batch.Clear();
    }

    // Reads to EOF, flushing full batches. Returns false when the sink failed (the position was rewound).
    private async Task<bool> DrainAsync(CancellationToken ct)
    {
        var file = _file!;
        while (true)
        {
            var read = RandomAccess.Read(file.Handle, _chunk, file.ReadOffset);
            if (read == 0)
            {
                return await FlushAsync(file, ct);
            }

            _lines.Feed(_chunk.AsSpan(0, read), file.ReadOffset, HandleLine);
            file.ReadOffset += read;
            if (_batch.Count >= _options.MaxBatchEvents && !await FlushAsync(file, ct))
            {
                return false;
            }
        }
    }

    private void HandleLine(ReadOnlySpan<byte> line, long start, long end, bool overlong)
    {
        var file = _file!;
        file.PendingOffset = end;
        if (overlong)
        {
            Interlocked.Increment(ref Counters._lines);
            Interlocked.Increment(ref Counters._rejected);
            LogLineRejected(_logger, $"{file.Name}@{start}", $"line longer than {_options.Parser.MaxEventBytes} bytes");
            return;
        }

        var item = _parser.ParseLine(line, file.Name, start);
        if (item is null)
        {
            return;
        }

        Interlocked.Increment(ref Counters._lines);
        if (item.Event is { } ev)
        {
            _batch.Add(ev);
        }
        else
        {
            Interlocked.Increment(ref Counters._rejected);
            LogLineRejected(_logger, $"{file.Name}@{start}", item.Rejection!);
        }
    }

    private async Task<bool> FlushAsync(OpenFile file, CancellationToken ct)
    {
        // Only complete lines are acknowledged; a held partial line is re-read from its start after a restart.
        var target = _lines.LineStart;
        if (_batch.Count == 0 && target == file.AckedOffset)
        {
            return true;
        }

        if (_batch.Count > 0)
        {
            try
            {
                var result = await _sink.AppendAsync(_batch.ToArray(), ct);
                Interlocked.Add(ref Counters._appended, result.Appended);
                Interlocked.Add(ref Counters._duplicates, result.Duplicates);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                Interlocked.Increment(ref Counters._sinkFailures);
                LogSinkFailed(_logger, _options.Path, ex);
                Rewind(file);
                return false;
            }
            catch (OperationCanceledException)
            {
                Rewind(file);
                throw;
            }
        }

        _batch.Clear();
        file.AckedOffset = target;
        await WriteCheckpointAsync(file, ct);
        return true;
    }

    private void Rewind(OpenFile file)
    {
        _batch.Clear();
        file.ReadOffset = file.AckedOffset;
        _lines.Reset(file.AckedOffset);
    }

    private bool HeadUnchanged(OpenFile file)
    {
        if (file.HeadHash is null)
        {
            return true;
        }

        var head = new byte[file.HeadLength];
        var read = RandomAccess.Read(file.Handle, head, 0);
        return read == file.HeadLength && SHA256.HashData(head).AsSpan().SequenceEqual(file.HeadHash);
    }

    private void UpdateHead(OpenFile file)
    {
        if (file.HeadHash is not null && file.HeadLength == _options.HeadHashBytes)
        {
            return;
        }

        // Hash only acknowledged bytes so the head we record is what a restart will compare against.
        var length = (int)Math.Min(_options.HeadHashBytes, file.AckedOffset);
        var head = new byte[length];
        length = RandomAccess.Read(file.Handle, head, 0);
        file.HeadLength = length;
        file.HeadHash = SHA256.HashData(head.AsSpan(0, length));
    }

    private async Task WriteCheckpointAsync(OpenFile file, CancellationToken ct)
    {
        UpdateHead(file);
        var temp = _options.CheckpointPath + ".tmp";
        await using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            await using (var writer = new Utf8JsonWriter(stream))
            {
                writer.WriteStartObject();
                writer.WriteString("path", _options.Path);
                writer.WriteNumber("device", file.Identity.Device);
                writer.WriteNumber("inode", file.Identity.Inode);
                writer.WriteNumber("offset", file.AckedOffset);
                writer.WriteNumber("headLength", file.HeadLength);
                writer.WriteString("headSha256", Convert.ToHexString(file.HeadHash!));
                writer.WriteString("written", _time.GetUtcNow());
                writer.WriteEndObject();
            }

            // fsync before the rename: otherwise a crash can leave the renamed checkpoint empty.
            stream.Flush(flushToDisk: true);
        }

        File.Move(temp, _options.CheckpointPath, overwrite: true);
        ct.ThrowIfCancellationRequested();
    }

    private sealed record Checkpoint(FileIdentity Identity, long Offset, int HeadLength, byte[] HeadHash);

    private Checkpoint? ReadCheckpoint()
    {
        if (!File.Exists(_options.CheckpointPath))
        {
            return null;
        }

        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(_options.CheckpointPath));
            var root = doc.RootElement;
            return new Checkpoint(
                new FileIdentity(root.GetProperty("device").GetUInt64(), root.GetProperty("inode").GetUInt64()),
                root.GetProperty("offset").GetInt64(),
                root.GetProperty("headLength").GetInt32(),
                Convert.FromHexString(root.GetProperty("headSha256").GetString()!));
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or FormatException or InvalidOperationException)
        {
            LogCheckpointUnreadable(_logger, _options.CheckpointPath, ex.Message);
            return null;
        }
    }

    // Finds the checkpointed file again: still at the path, or renamed by rotation next to it. Reads the rest of a
    // rotated file before the current one. Returns false if the sink failed (retry on the next poll).
    private async Task<bool> ResumeAsync(CancellationToken ct)
    {
        var checkpoint = ReadCheckpoint();
        if (checkpoint is null)
        {
            return true;
        }

        foreach (var candidate in CandidatePaths())
        {
            var handle = TryOpen(candidate);
            if (handle is null)
            {
                continue;
            }

            var (identity, size) = FileStat.Of(handle);
            var file = new OpenFile(handle, identity, candidate) { ReadOffset = checkpoint.Offset, AckedOffset = checkpoint.Offset, HeadLength = checkpoint.HeadLength, HeadHash = checkpoint.HeadHash };
            if (identity != checkpoint.Identity || size < checkpoint.Offset || !HeadUnchanged(file))
            {
                handle.Dispose();
                continue;
            }

            LogResumed(_logger, candidate, checkpoint.Offset);
            _file = file;
            _lines.Reset(checkpoint.Offset);
            if (candidate == _options.Path)
            {
                return true;
            }

            // A rotated file: finish it, then start the current file from its beginning.
            if (!await DrainAsync(ct))
            {
                return false;
            }

            _lines.Complete(file.ReadOffset, HandleLine);
            if (!await FlushAsync(file, ct))
            {
                return false;
            }

            Interlocked.Increment(ref Counters._rotations);
            CloseFile();
            return true;
        }

        var compressed = await ResumeFromCompressedAsync(checkpoint, ct);
        if (compressed is null)
        {
            return false;
        }

        if (compressed == false)
        {
            Interlocked.Increment(ref Counters._resumeGaps);
            LogResumeGap(_logger, _options.Path, checkpoint.Identity.ToString(), checkpoint.Offset);
        }

        return true;
    }

    // lumberjack (compress: true) gzips a rotated file into <rotated>.gz and deletes it, so after a restart the
    // checkpointed inode may be gone. The gzip holds the same bytes: find it by the hash of its first bytes, skip to
    // the checkpointed offset and deliver the rest. Returns true if found and delivered, false if not found, null if
    // the sink failed (retry on the next poll; re-delivery is deduped by the sink).
    private async Task<bool?> ResumeFromCompressedAsync(Checkpoint checkpoint, CancellationToken ct)
    {
        var directory = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(_options.Path))!;
        var stem = System.IO.Path.GetFileNameWithoutExtension(_options.Path);
        var extension = System.IO.Path.GetExtension(_options.Path);
        foreach (var candidate in Directory.EnumerateFiles(directory, $"{stem}-*{extension}.gz").OrderDescending(StringComparer.Ordinal))
        {
            try
            {
                await using var gzip = new GZipStream(File.OpenRead(candidate), CompressionMode.Decompress);
                var head = new byte[checkpoint.HeadLength];
                if (await gzip.ReadAtLeastAsync(head, head.Length, throwOnEndOfStream: false, ct) != head.Length
                    || !SHA256.HashData(head).AsSpan().SequenceEqual(checkpoint.HeadHash))
                {
                    continue;
                }

                LogResumed(_logger, candidate, checkpoint.Offset);
                var name = System.IO.Path.GetFileName(candidate);
                var lines = new AuditLineAssembler(_options.Parser.MaxEventBytes);
                var batch = new List<AuditEvent>();
                var position = (long)head.Length;
                AuditLineAssembler.LineHandler handler = (line, start, _, overlong) =>
                {
                    var item = overlong ? new AuditParseItem($"{name}:{start}", null, "line over the limit") : _parser.ParseLine(line, name, start);
                    if (item is null)
                    {
                        return;
                    }

                    Interlocked.Increment(ref Counters._lines);
                    if (item.Event is { } ev)
                    {
                        batch.Add(ev);
                    }
                    else
                    {
                        Interlocked.Increment(ref Counters._rejected);
                        LogLineRejected(_logger, item.Location, item.Rejection!);
                    }
                };

                lines.Reset(checkpoint.Offset);
                while (true)
                {
                    var read = await gzip.ReadAsync(_chunk, ct);
                    if (read == 0)
                    {
                        break;
                    }

                    var chunk = _chunk.AsSpan(0, read);
                    if (position + read <= checkpoint.Offset)
                    {
                        position += read;
                        continue;
                    }

                    var skip = (int)Math.Max(0, checkpoint.Offset - position);
                    lines.Feed(chunk[skip..], position + skip, handler);
                    position += read;
                    if (batch.Count >= _options.MaxBatchEvents && !await AppendDirectAsync(batch, ct))
                    {
                        return null;
                    }
                }

                lines.Complete(position, handler);
                if (!await AppendDirectAsync(batch, ct))
                {
                    return null;
                }

                Interlocked.Increment(ref Counters._rotations);
                return true;
            }
            catch (InvalidDataException ex)
            {
                LogCheckpointUnreadable(_logger, candidate, "corrupt gzip: " + ex.Message);
            }
        }

        return false;
    }

    private async Task<bool> AppendDirectAsync(List<AuditEvent> batch, CancellationToken ct)
    {
        if (batch.Count == 0)
        {
            return true;
        }

        try
        {
            var result = await _sink.AppendAsync(batch.ToArray(), ct);
            Interlocked.Add(ref Counters._appended, result.Appended);
            Interlocked.Add(ref Counters._duplicates, result.Duplicates);
            batch.Clear();
            return true;
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            Interlocked.Increment(ref Counters._sinkFailures);
            LogSinkFailed(_logger, _options.Path, ex);
            return false;
        }
    }

    private IEnumerable<string> CandidatePaths()
    {
        yield return _options.Path;
        var directory = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(_options.Path))!;
        var stem = System.IO.Path.GetFileNameWithoutExtension(_options.Path);
        var extension = System.IO.Path.GetExtension(_options.Path);
        // lumberjack backup names: <stem>-<2006-01-02T15-04-05.000><ext>; newest first is the likely one.
        foreach (var rotated in Directory.EnumerateFiles(directory, $"{stem}-*{extension}").OrderDescending(StringComparer.Ordinal))
        {
            yield return rotated;
        }
    }

    public void Dispose() => CloseFile();

    private sealed class OpenFile(SafeFileHandle handle, FileIdentity identity, string path)
    {
        public SafeFileHandle Handle { get; } = handle;
        public FileIdentity Identity { get; } = identity;
        public string Name { get; } = System.IO.Path.GetFileName(path);
        public long ReadOffset { get; set; }
        public long AckedOffset { get; set; }
        public long PendingOffset { get; set; }
        public int HeadLength { get; set; }
        public byte[]? HeadHash { get; set; }
    }

    [LoggerMessage(EventId = 4120, Level = LogLevel.Warning, Message = "Audit log {Path}: poll failed")]
    private static partial void LogPollFailed(ILogger logger, string path, Exception exception);

    [LoggerMessage(EventId = 4121, Level = LogLevel.Information, Message = "Audit log {Path}: truncated (read up to {Offset}, size now {Size}); restarting at 0")]
    private static partial void LogTruncated(ILogger logger, string path, long offset, long size);

    [LoggerMessage(EventId = 4122, Level = LogLevel.Information, Message = "Audit log {Path}: rotated from {Old} to {Now}")]
    private static partial void LogRotated(ILogger logger, string path, string old, string now);

    [LoggerMessage(EventId = 4123, Level = LogLevel.Warning, Message = "Audit log line {Location} rejected: {Reason}")]
    private static partial void LogLineRejected(ILogger logger, string location, string reason);

    [LoggerMessage(EventId = 4124, Level = LogLevel.Error, Message = "Audit log {Path}: sink failed; will re-read from the checkpoint")]
    private static partial void LogSinkFailed(ILogger logger, string path, Exception exception);

    [LoggerMessage(EventId = 4125, Level = LogLevel.Warning, Message = "Audit log checkpoint {Path} unreadable ({Reason}); starting from the beginning")]
    private static partial void LogCheckpointUnreadable(ILogger logger, string path, string reason);

    [LoggerMessage(EventId = 4126, Level = LogLevel.Information, Message = "Audit log: resuming {Path} at offset {Offset}")]
    private static partial void LogResumed(ILogger logger, string path, long offset);

    [LoggerMessage(EventId = 4127, Level = LogLevel.Warning, Message = "Audit log {Path}: checkpointed file {Identity} at {Offset} not found (rotated and compressed or deleted); starting the current file at 0")]
    private static partial void LogResumeGap(ILogger logger, string path, string identity, long offset);
}
