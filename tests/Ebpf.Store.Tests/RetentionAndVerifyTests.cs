using Ebpf.Api.V1;

namespace Ebpf.Store.Tests;

public sealed class RetentionAndVerifyTests : IDisposable
{
    private readonly TempStoreDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private async Task AppendNodeEvents(int count, int seconds0 = 0)
    {
        await using var store = _dir.Open();
        await store.AppendAsync(Enumerable.Range(0, count)
            .Select(i => Records.Exec($"{i}@1", "1@1", i, "/bin/true", ["true", i.ToString(System.Globalization.CultureInfo.InvariantCulture)], seconds0 + i)).ToList());
    }

    [Fact]
    public async Task Verify_UntouchedStore_IsValid()
    {
        await AppendNodeEvents(100);
        var result = StoreVerifier.Verify(_dir.Path);
        Assert.True(result.IsValid, result.Problem);
        Assert.Equal("ok", result.IntegrityCheck);
        Assert.Equal((100L, 1UL, 100UL), (result.RecordsChecked, result.FirstSequence, result.LastSequence));
        Assert.Null(result.BrokenAtSequence);
    }

    [Fact]
    public async Task Verify_PayloadEditedWithSql_ReportsThatSequence()
    {
        await AppendNodeEvents(100);
        var edited = Records.Exec("49@1", "1@1", 49, "/bin/true", ["true", "innocent"], 49);
        edited.Sequence = 50;
        _dir.Execute($"UPDATE journal SET payload = x'{Convert.ToHexString(Google.Protobuf.MessageExtensions.ToByteArray(edited))}' WHERE sequence = 50");

        var result = StoreVerifier.Verify(_dir.Path);
        Assert.False(result.IsValid);
        Assert.Equal(50UL, result.BrokenAtSequence);
        Assert.Null(result.MissingSequence);
        Assert.Equal(49, result.RecordsChecked);
        Assert.Contains("50", result.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Verify_MiddleRowDeleted_ReportsMissingSequenceAndItsSuccessor()
    {
        await AppendNodeEvents(100);
        Assert.Equal(1, _dir.Execute("DELETE FROM journal WHERE sequence = 37"));
        var result = StoreVerifier.Verify(_dir.Path);
        Assert.False(result.IsValid);
        Assert.Equal(37UL, result.MissingSequence);
        Assert.Equal(38UL, result.BrokenAtSequence);
        Assert.Contains("37", result.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Verify_TwoRowsSwapped_ReportsFirstOfThem()
    {
        await AppendNodeEvents(100);
        // Reorder: swap the contents of 60 and 61, keeping each row's hash where it was.
        _dir.Execute("""
            UPDATE journal SET payload = CASE sequence WHEN 60 THEN (SELECT payload FROM journal WHERE sequence = 61)
                                                       ELSE (SELECT payload FROM journal WHERE sequence = 60) END
            WHERE sequence IN (60, 61)
            """);
        var result = StoreVerifier.Verify(_dir.Path);
        Assert.False(result.IsValid);
        Assert.Equal(60UL, result.BrokenAtSequence);
    }

    [Fact]
    public async Task Verify_TimeChanged_ReportsThatSequence()
    {
        await AppendNodeEvents(20);
        _dir.Execute("UPDATE journal SET time_ns = time_ns - 1000000000 WHERE sequence = 7");
        Assert.Equal(7UL, StoreVerifier.Verify(_dir.Path).BrokenAtSequence);
    }

    [Fact]
    public void Verify_NoDatabase_ThrowsFileNotFound()
    {
        Assert.Throws<FileNotFoundException>(() => StoreVerifier.Verify(Path.Combine(_dir.Path, "nothing-here")));
    }

    [Fact]
    public async Task RunRetention_ByAge_DeletesOldPrefixKeepsChainAndSequence()
    {
        var time = new ManualTime(Records.T0.AddDays(10));
        await using (var store = _dir.Open(o => o.RetentionAge = TimeSpan.FromDays(7), time))
        {
            // 50 records ten days old (with their session, audit event and finding), then 50 from the last hour.
            var old = Enumerable.Range(0, 47).Select(i => Records.Exec($"{i}@1", "1@1", i, "/bin/true", ["true"], i)).ToList();
            old.Add(Records.Session("s-old", 48));
            old.Add(Records.Finding("f-old", "unattributed-exec", 49));
            await store.AppendAsync(old);
            var oldAudit = Records.Audit("aud-old", 50);
            await store.AppendAuditAsync([(AuditDedupeKey.From(oldAudit.AuditEvent), oldAudit, Records.RawAuditJson("aud-old"))]);
            double recent = TimeSpan.FromDays(10).TotalSeconds - 3600;
            await store.AppendAsync(Enumerable.Range(0, 49).Select(i => Records.Exec($"r{i}@1", "1@1", i, "/bin/true", ["true"], recent + i)).ToList());
            await store.AppendAsync(Records.Session("s-new", recent + 50));

            var result = await store.RunRetentionAsync();
            Assert.Equal(50, result.DeletedRecords);
            Assert.Equal(51UL, result.FirstRetainedSequence);
            Assert.Equal(50, store.Counters.RetentionDeleted);
            Assert.Equal(["s-new"], store.ListSessions(null, null, null, null, null, 0).Select(s => s.Id));
            Assert.Empty(store.ListFindings(null, null, null, null, 0));
            Assert.Empty(store.WhoTouched("shop", "web-0", null, 0).AuditEvents);

            var verification = StoreVerifier.Verify(_dir.Path);
            Assert.True(verification.IsValid, verification.Problem);
            Assert.Equal((51UL, 100UL, 50L), (verification.FirstSequence, verification.LastSequence, verification.RecordsChecked));

            // Everything ages out: the journal empties, sequences still never go back.
            time.Now = Records.T0.AddDays(30);
            Assert.Equal(50, (await store.RunRetentionAsync()).DeletedRecords);
            Assert.Equal(0, _dir.Scalar("SELECT count(*) FROM journal"));
            var next = await store.AppendAsync(Records.Exec("n@1", "1@1", 1, "/bin/true", ["true"], TimeSpan.FromDays(30).TotalSeconds));
            Assert.Equal(101UL, next.Sequence);
        }
        await using (var reopened = _dir.Open(time: time))
        {
            var next = await reopened.AppendAsync(Records.Exec("m@1", "1@1", 1, "/bin/true", ["true"], TimeSpan.FromDays(30).TotalSeconds));
            Assert.Equal(102UL, next.Sequence);
        }
        var final = StoreVerifier.Verify(_dir.Path);
        Assert.True(final.IsValid, final.Problem);
        Assert.Equal((101UL, 102UL), (final.FirstSequence, final.LastSequence));
    }

    [Fact]
    public async Task RunRetention_AllDeletedThenReopened_SequenceNotReused()
    {
        var time = new ManualTime(Records.T0.AddDays(10));
        await using (var store = _dir.Open(time: time))
        {
            await store.AppendAsync(Enumerable.Range(0, 10).Select(i => Records.Exec($"{i}@1", "1@1", i, "/bin/true", ["true"], i)).ToList());
            Assert.Equal(10, (await store.RunRetentionAsync()).DeletedRecords);
        }
        await using (var store = _dir.Open(time: time))
        {
            Assert.Equal(11UL, (await store.AppendAsync(Records.Session("s", 1))).Sequence);
        }
        Assert.True(StoreVerifier.Verify(_dir.Path).IsValid);
    }

    [Fact]
    public async Task RunRetention_BySize_ShrinksBelowLimitKeepsNewestAndVerifies()
    {
        const long limit = 2L << 20;
        var time = new ManualTime(Records.T0.AddHours(1));
        await using var store = _dir.Open(o => { o.RetentionMaxBytes = limit; o.RetentionChunkSize = 1_000; }, time);
        string padding = new('x', 1_000);
        for (int batch = 0; batch < 10; batch++)
        {
            await store.AppendAsync(Enumerable.Range(batch * 1_000, 1_000)
                .Select(i => Records.Exec($"{i}@1", "1@1", i, "/bin/true", ["true", padding], i * 0.001)).ToList());
        }
        long before = store.StoreSizeBytes;
        Assert.True(before > 3 * limit, $"store is only {before} bytes");

        var result = await store.RunRetentionAsync();
        Assert.True(result.DeletedRecords > 5_000, $"deleted {result.DeletedRecords}");
        long after = store.StoreSizeBytes;
        Assert.True(after <= limit, $"store is {after} bytes after retention (limit {limit}): db {new FileInfo(_dir.DatabasePath).Length}, wal {(File.Exists(_dir.DatabasePath + "-wal") ? new FileInfo(_dir.DatabasePath + "-wal").Length : -1)}, free pages {_dir.Scalar("PRAGMA freelist_count")}, pages {_dir.Scalar("PRAGMA page_count")}, auto_vacuum {_dir.Scalar("PRAGMA auto_vacuum")}, rows {_dir.Scalar("SELECT count(*) FROM journal")}");
        Assert.Equal(10_000UL, store.LastSequence);
        Assert.Equal(10_000, _dir.Scalar("SELECT max(sequence) FROM journal"));
        Assert.Equal((long)result.FirstRetainedSequence, _dir.Scalar("SELECT min(sequence) FROM journal"));

        var verification = StoreVerifier.Verify(_dir.Path);
        Assert.True(verification.IsValid, verification.Problem);
        Assert.Equal(result.FirstRetainedSequence, verification.FirstSequence);
        Assert.Equal(10_001UL, (await store.AppendAsync(Records.Session("s", 1))).Sequence);
    }

    [Fact]
    public async Task Open_RetentionInterval_RunsRetentionInTheBackground()
    {
        var time = new ManualTime(Records.T0.AddDays(10));
        await using var store = _dir.Open(o => o.RetentionInterval = TimeSpan.FromMilliseconds(50), time);
        await store.AppendAsync(Enumerable.Range(0, 10).Select(i => Records.Exec($"{i}@1", "1@1", i, "/bin/true", ["true"], i)).ToList());
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (store.Counters.RetentionDeleted < 10 && DateTime.UtcNow < deadline) await Task.Delay(20);
        Assert.Equal(10, store.Counters.RetentionDeleted);
        Assert.Equal(0, _dir.Scalar("SELECT count(*) FROM journal"));
    }

    [Fact]
    public async Task Verify_AfterRetention_DeletingFirstRetainedRowIsDetected()
    {
        var time = new ManualTime(Records.T0.AddDays(10));
        await using (var store = _dir.Open(time: time))
        {
            await store.AppendAsync(Enumerable.Range(0, 10).Select(i => Records.Exec($"{i}@1", "1@1", i, "/bin/true", ["true"], i)).ToList());
            double recent = TimeSpan.FromDays(10).TotalSeconds - 60;
            await store.AppendAsync(Enumerable.Range(0, 10).Select(i => Records.Exec($"r{i}@1", "1@1", i, "/bin/true", ["true"], recent + i)).ToList());
            await store.RunRetentionAsync();
        }
        _dir.Execute("DELETE FROM journal WHERE sequence = 11");
        var result = StoreVerifier.Verify(_dir.Path);
        Assert.False(result.IsValid);
        Assert.Equal(11UL, result.MissingSequence);
        Assert.Equal(12UL, result.BrokenAtSequence);
    }
}
