using System.Text;
using Ebpf.Core.Audit;
using Ebpf.Kubernetes.Audit;

namespace Ebpf.Kubernetes.Tests.Audit;

/// <summary>Real files in a temporary directory, real renames/truncations, real checkpoint files.</summary>
public sealed class AuditLogTailerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("audit-tail-").FullName;
    private readonly InMemoryAuditSink _sink = new();

    private string LogPath => Path.Combine(_dir, "audit.log");

    private string CheckpointPath => Path.Combine(_dir, "audit.checkpoint.json");

    private static IReadOnlyList<string> Lines => AuditFixtureLines.Demo;

    private AuditLogTailer NewTailer(int maxBatch = 400) => new(new AuditLogTailerOptions { Path = LogPath, CheckpointPath = CheckpointPath, MaxBatchEvents = maxBatch }, _sink);

    private void Append(string path, IEnumerable<string> lines) => File.AppendAllText(path, string.Concat(lines.Select(l => l + "\n")));

    private HashSet<string> StoredIds => _sink.Stored.Select(e => e.AuditId!).ToHashSet();

    [Fact]
    public async Task PollOnce_AppendedLines_DeliveredExactlyOnce()
    {
        using var tailer = NewTailer(maxBatch: 4);
        Append(LogPath, Lines.Take(10));

        Assert.Equal(10, await tailer.PollOnceAsync(default));
        Append(LogPath, Lines.Skip(10).Take(5));
        Assert.Equal(5, await tailer.PollOnceAsync(default));
        Assert.Equal(0, await tailer.PollOnceAsync(default));

        Assert.Equal(15, _sink.Delivered);
        Assert.Equal(15, _sink.Stored.Count);
        Assert.Equal(15, tailer.Counters.Lines);
    }

    [Fact]
    public async Task PollOnce_MissingFile_WaitsForIt()
    {
        using var tailer = NewTailer();

        Assert.Equal(0, await tailer.PollOnceAsync(default));
        Append(LogPath, Lines.Take(2));
        Assert.Equal(2, await tailer.PollOnceAsync(default));
    }

    [Fact]
    public async Task PollOnce_PartialLine_HeldUntilNewline()
    {
        using var tailer = NewTailer();
        var line = Encoding.UTF8.GetBytes(Lines[0]);
        await File.WriteAllBytesAsync(LogPath, line[..(line.Length / 2)]);

        Assert.Equal(0, await tailer.PollOnceAsync(default));
        await using (var stream = new FileStream(LogPath, FileMode.Append))
        {
            stream.Write(line[(line.Length / 2)..]);
        }

        Assert.Equal(0, await tailer.PollOnceAsync(default));
        File.AppendAllText(LogPath, "\n");
        Assert.Equal(1, await tailer.PollOnceAsync(default));
        Assert.Equal(0, tailer.Counters.Rejected);
        Assert.Equal(Lines[0], Encoding.UTF8.GetString(_sink.Stored.Single().RawJson.Span));
    }

    [Fact]
    public async Task PollOnce_RotateByRename_FinishesRenamedFileThenFollowsNew()
    {
        using var tailer = NewTailer();
        Append(LogPath, Lines.Take(5));
        await tailer.PollOnceAsync(default);

        Append(LogPath, Lines.Skip(5).Take(3));
        File.Move(LogPath, Path.Combine(_dir, "audit-2026-11-22T10-00-00.000.log"));
        Append(LogPath, Lines.Skip(8).Take(4));

        Assert.Equal(7, await tailer.PollOnceAsync(default));
        Append(LogPath, Lines.Skip(12).Take(1));
        Assert.Equal(1, await tailer.PollOnceAsync(default));

        Assert.Equal(13, _sink.Delivered);
        Assert.Equal(Lines.Take(13).Select(Id).ToHashSet(), StoredIds);
        Assert.Equal(1, tailer.Counters.Rotations);
    }

    [Fact]
    public async Task PollOnce_RenamedButNotYetRecreated_FinishesOldAndWaits()
    {
        using var tailer = NewTailer();
        Append(LogPath, Lines.Take(2));
        await tailer.PollOnceAsync(default);
        Append(LogPath, Lines.Skip(2).Take(2));
        File.Move(LogPath, Path.Combine(_dir, "audit-2026-11-22T10-00-01.000.log"));

        Assert.Equal(2, await tailer.PollOnceAsync(default));
        Append(LogPath, Lines.Skip(4).Take(2));
        Assert.Equal(2, await tailer.PollOnceAsync(default));
        Assert.Equal(6, _sink.Delivered);
    }

    [Fact]
    public async Task PollOnce_RotatedFileCompressedAndRemoved_StillFinishedFromOpenHandle()
    {
        using var tailer = NewTailer();
        Append(LogPath, Lines.Take(3));
        await tailer.PollOnceAsync(default);
        Append(LogPath, Lines.Skip(3).Take(3));
        var rotated = Path.Combine(_dir, "audit-2026-11-22T10-00-02.000.log");
        File.Move(LogPath, rotated);
        // lumberjack with compress=true writes <rotated>.gz and removes the rotated file.
        File.Delete(rotated);
        Append(LogPath, Lines.Skip(6).Take(2));

        Assert.Equal(5, await tailer.PollOnceAsync(default));
        Assert.Equal(Lines.Take(8).Select(Id).ToHashSet(), StoredIds);
    }

    [Fact]
    public async Task PollOnce_Truncated_RestartsAtZero()
    {
        using var tailer = NewTailer();
        Append(LogPath, Lines.Take(5));
        await tailer.PollOnceAsync(default);

        await using (var stream = new FileStream(LogPath, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
        {
            stream.SetLength(0);
        }

        Append(LogPath, Lines.Skip(20).Take(2));
        Assert.Equal(2, await tailer.PollOnceAsync(default));
        Assert.Equal(1, tailer.Counters.Truncations);
        Assert.Equal(7, _sink.Delivered);
    }

    [Fact]
    public async Task PollOnce_TruncatedAndRegrownPastOffset_DetectedByHeadHash()
    {
        using var tailer = NewTailer();
        Append(LogPath, Lines.Take(2));
        await tailer.PollOnceAsync(default);

        await using (var stream = new FileStream(LogPath, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
        {
            stream.SetLength(0);
        }

        Append(LogPath, Lines.Skip(10).Take(6));
        Assert.Equal(6, await tailer.PollOnceAsync(default));
        Assert.Equal(1, tailer.Counters.Truncations);
        Assert.Equal(8, _sink.Stored.Count);
    }

    [Fact]
    public async Task PollOnce_DeletedAndRecreated_FollowsNewInode()
    {
        using var tailer = NewTailer();
        Append(LogPath, Lines.Take(5));
        await tailer.PollOnceAsync(default);

        File.Delete(LogPath);
        Append(LogPath, Lines.Skip(5).Take(3));

        Assert.Equal(3, await tailer.PollOnceAsync(default));
        Assert.Equal(8, _sink.Delivered);
        Assert.Equal(1, tailer.Counters.Rotations);
    }

    [Fact]
    public async Task Restart_FromCheckpoint_NoGapNoDuplicate()
    {
        using (var first = NewTailer())
        {
            Append(LogPath, Lines.Take(10));
            await first.PollOnceAsync(default);
        }

        Append(LogPath, Lines.Skip(10).Take(5));
        using var second = NewTailer();

        Assert.Equal(5, await second.PollOnceAsync(default));
        Assert.Equal(15, _sink.Delivered);
        Assert.Equal(Lines.Take(15).Select(Id).ToHashSet(), StoredIds);
    }

    [Fact]
    public async Task Restart_WithPartialLineHeld_ResumesAtLineStart()
    {
        var partial = Encoding.UTF8.GetBytes(Lines[3]);
        using (var first = NewTailer())
        {
            Append(LogPath, Lines.Take(3));
            await using (var stream = new FileStream(LogPath, FileMode.Append))
            {
                stream.Write(partial[..100]);
            }

            Assert.Equal(3, await first.PollOnceAsync(default));
        }

        await using (var stream = new FileStream(LogPath, FileMode.Append))
        {
            stream.Write(partial[100..]);
            stream.Write("\n"u8);
        }

        using var second = NewTailer();
        Assert.Equal(1, await second.PollOnceAsync(default));
        Assert.Equal(4, _sink.Delivered);
        Assert.Equal(0, second.Counters.Rejected);
    }

    [Fact]
    public async Task Restart_AfterRotationWhileDown_ReadsRestOfRotatedFileFirst()
    {
        using (var first = NewTailer())
        {
            Append(LogPath, Lines.Take(10));
            await first.PollOnceAsync(default);
        }

        Append(LogPath, Lines.Skip(10).Take(3));
        File.Move(LogPath, Path.Combine(_dir, "audit-2026-11-22T10-05-00.000.log"));
        Append(LogPath, Lines.Skip(13).Take(4));
        using var second = NewTailer();

        Assert.Equal(7, await second.PollOnceAsync(default));
        Assert.Equal(17, _sink.Delivered);
        Assert.Equal(Lines.Take(17).Select(Id).ToHashSet(), StoredIds);
    }

    [Fact]
    public async Task Restart_AfterRotatedFileWasCompressedWhileDown_ReadsRestFromGzip()
    {
        using (var first = NewTailer())
        {
            Append(LogPath, Lines.Take(10));
            await first.PollOnceAsync(default);
        }

        Append(LogPath, Lines.Skip(10).Take(3));
        var rotated = Path.Combine(_dir, "audit-2026-11-22T10-06-00.000.log");
        File.Move(LogPath, rotated);
        await using (var gz = new System.IO.Compression.GZipStream(File.Create(rotated + ".gz"), System.IO.Compression.CompressionLevel.Fastest))
        {
            await gz.WriteAsync(await File.ReadAllBytesAsync(rotated));
        }

        File.Delete(rotated);
        Append(LogPath, Lines.Skip(13).Take(4));
        using var second = NewTailer();

        Assert.Equal(7, await second.PollOnceAsync(default));
        Assert.Equal(17, _sink.Delivered);
        Assert.Equal(Lines.Take(17).Select(Id).ToHashSet(), StoredIds);
        Assert.Equal(0, second.Counters.ResumeGaps);
    }

    [Fact]
    public async Task Restart_CheckpointedFileGone_CountsGapAndReadsCurrent()
    {
        using (var first = NewTailer())
        {
            Append(LogPath, Lines.Take(3));
            await first.PollOnceAsync(default);
        }

        File.Delete(LogPath);
        Append(LogPath, Lines.Skip(3).Take(2));
        using var second = NewTailer();

        Assert.Equal(2, await second.PollOnceAsync(default));
        Assert.Equal(1, second.Counters.ResumeGaps);
    }

    [Fact]
    public async Task PollOnce_SinkFails_NotCheckpointedAndReread()
    {
        var failures = 1;
        _sink.BeforeAppend = (_, _) => Interlocked.Decrement(ref failures) >= 0 ? throw new IOException("disk full") : Task.CompletedTask;
        using var tailer = NewTailer();
        Append(LogPath, Lines.Take(6));

        Assert.Equal(0, await tailer.PollOnceAsync(default));
        Assert.Equal(1, tailer.Counters.SinkFailures);
        Assert.Equal(6, await tailer.PollOnceAsync(default));
        Assert.Equal(6, _sink.Delivered);
    }

    [Fact]
    public async Task PollOnce_GarbageAndOverlongLines_RejectedAndSkipped()
    {
        using var tailer = new AuditLogTailer(new AuditLogTailerOptions { Path = LogPath, CheckpointPath = CheckpointPath, Parser = new AuditParserOptions { MaxEventBytes = 8192 } }, _sink);
        Append(LogPath, [Lines[0], "{\"kind\": 0}", "\"" + new string('x', 20000) + "\"", "", Lines[1]]);

        Assert.Equal(2, await tailer.PollOnceAsync(default));
        Assert.Equal(2, tailer.Counters.Rejected);
        Assert.Equal(4, tailer.Counters.Lines);
    }

    [Fact]
    public async Task RunAsync_FollowsAppendsUntilCancelled()
    {
        using var tailer = new AuditLogTailer(new AuditLogTailerOptions { Path = LogPath, CheckpointPath = CheckpointPath, PollInterval = TimeSpan.FromMilliseconds(20) }, _sink);
        using var cts = new CancellationTokenSource();
        var run = tailer.RunAsync(cts.Token);
        Append(LogPath, Lines.Take(4));

        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (_sink.Delivered < 4 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        await cts.CancelAsync();
        await run;
        Assert.Equal(4, _sink.Delivered);
    }

    private static string Id(string line) => new AuditEventParser().ParseRecord(Encoding.UTF8.GetBytes(line)).Event!.AuditId!;

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
