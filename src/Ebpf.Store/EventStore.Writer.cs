using Ebpf.Api.V1;
using Google.Protobuf;
using Microsoft.Data.Sqlite;

namespace Ebpf.Store;

public sealed partial class EventStore
{
    private async Task RunWriterAsync()
    {
        var reader = _queue.Reader;
        var batch = new List<WriteItem>();
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            batch.Clear();
            int records = 0;
            bool durableWaiter = Drain(batch, ref records);
            // Fire-and-forget records only: give the batch a moment to fill, one fsync for many records.
            if (!durableWaiter && records < _options.MaxBatchSize && _options.MaxBatchDelay > TimeSpan.Zero && records > 0)
            {
                await Task.Delay(_options.MaxBatchDelay, _time).ConfigureAwait(false);
                Drain(batch, ref records);
            }
            try
            {
                Commit(batch, records);
                foreach (var item in batch)
                    if (item.Kind == WriteKind.Retention) CompleteRetention(item);
            }
            catch (Exception ex)
            {
                // The writer must outlive any one bad batch; Commit already failed its waiters.
                StoreLog.BatchFailed(_logger, records, ex);
            }
        }
    }

    private bool Drain(List<WriteItem> batch, ref int records)
    {
        bool durableWaiter = false;
        while (records < _options.MaxBatchSize && _queue.Reader.TryRead(out var item))
        {
            batch.Add(item);
            records += item.RecordCount;
            durableWaiter |= item.Completion is not null;
        }
        return durableWaiter;
    }

    private void Commit(List<WriteItem> batch, int records)
    {
        byte[] previousHash = _lastHash;
        ulong previousSequence = _lastJournaledSequence;
        ulong highestAssigned = 0;
        long journaled = 0, duplicates = 0;
        var auditResults = new Dictionary<int, bool[]>();
        if (records > 0)
        {
            using var tx = _writeConnection.BeginTransaction();
            _commands.Enlist(tx);
            try
            {
                for (int i = 0; i < batch.Count; i++)
                {
                    var item = batch[i];
                    switch (item.Kind)
                    {
                        case WriteKind.Record:
                            Write((Record)item.Payload!, null, default);
                            break;
                        case WriteKind.Records:
                            foreach (var record in (IReadOnlyList<Record>)item.Payload!) Write(record, null, default);
                            break;
                        case WriteKind.Audit:
                            var entries = (IReadOnlyList<(AuditDedupeKey Key, Record Record, ReadOnlyMemory<byte> RawJson)>)item.Payload!;
                            var duplicate = new bool[entries.Count];
                            for (int e = 0; e < entries.Count; e++)
                                duplicate[e] = !Write(entries[e].Record, entries[e].Key, entries[e].RawJson);
                            auditResults[i] = duplicate;
                            break;
                    }
                }
                if (highestAssigned > 0)
                {
                    _commands.SetLastSequence.Set("$seq", (long)highestAssigned);
                    _commands.SetLastSequence.ExecuteNonQuery();
                }
                tx.Commit();
            }
            catch (Exception ex)
            {
                _commands.Enlist(null);
                Interlocked.Add(ref _writeFailures, records);
                foreach (var item in batch) Fail(item, ex);
                throw;
            }
            _commands.Enlist(null);
        }

        _lastHash = previousHash;
        _lastJournaledSequence = previousSequence;
        Interlocked.Exchange(ref _lastCommittedSequence, (long)previousSequence);
        Interlocked.Add(ref _appended, journaled);
        Interlocked.Add(ref _auditDuplicates, duplicates);

        for (int i = 0; i < batch.Count; i++)
        {
            var item = batch[i];
            switch (item.Completion)
            {
                case TaskCompletionSource done:
                    done.TrySetResult();
                    break;
                case TaskCompletionSource<AuditAppendResult> audit:
                    var duplicate = auditResults[i];
                    var entries = (IReadOnlyList<(AuditDedupeKey, Record Record, ReadOnlyMemory<byte>)>)item.Payload!;
                    int dupCount = 0;
                    for (int e = 0; e < duplicate.Length; e++)
                    {
                        if (!duplicate[e]) continue;
                        dupCount++;
                        entries[e].Record.Sequence = 0;
                    }
                    audit.TrySetResult(new AuditAppendResult(duplicate.Length - dupCount, dupCount, duplicate));
                    break;
            }
        }

        // Returns false when the record is an audit duplicate and was not journaled.
        bool Write(Record record, AuditDedupeKey? key, ReadOnlyMemory<byte> rawJson)
        {
            ulong sequence = record.Sequence;
            highestAssigned = Math.Max(highestAssigned, sequence);
            var index = RecordIndex.Of(record);
            long timeNs = TimeConversion.ToUnixNanos(record.Time);
            AuditDedupeKey? auditKey = null;

            if (index.Kind == RecordKind.AuditEvent)
            {
                var audit = record.AuditEvent;
                auditKey = key ?? AuditDedupeKey.From(audit);
                var insert = _commands.InsertAudit;
                insert.Set("$seq", (long)sequence);
                insert.Set("$auditId", auditKey.Value.AuditId);
                insert.Set("$stage", auditKey.Value.Stage);
                insert.Set("$stageNs", auditKey.Value.StageTimestampNanos);
                insert.Set("$ns", index.Namespace);
                insert.Set("$pod", index.Pod);
                insert.Set("$user", index.User);
                insert.Set("$time", audit.StageTimestamp is null ? timeNs : TimeConversion.ToUnixNanos(audit.StageTimestamp));
                insert.Set("$raw", rawJson.IsEmpty ? null : rawJson.ToArray());
                if (insert.ExecuteNonQuery() == 0)
                {
                    duplicates++;
                    return false;
                }
            }

            byte[] payload = record.ToByteArray();
            byte[] hash = _hasher.Compute(previousHash, sequence, (int)index.Kind, timeNs, payload);
            var journal = _commands.InsertJournal;
            journal.Set("$seq", (long)sequence);
            journal.Set("$kind", (int)index.Kind);
            journal.Set("$time", timeNs);
            journal.Set("$ns", index.Namespace);
            journal.Set("$pod", index.Pod);
            journal.Set("$user", index.User);
            journal.Set("$session", index.SessionId);
            journal.Set("$process", index.ProcessKey);
            journal.Set("$auditId", auditKey?.AuditId);
            journal.Set("$stage", auditKey?.Stage);
            journal.Set("$stageNs", auditKey?.StageTimestampNanos);
            journal.Set("$payload", payload);
            journal.Set("$prev", (long)previousSequence);
            journal.Set("$hash", hash);
            journal.ExecuteNonQuery();
            previousHash = hash;
            previousSequence = sequence;
            journaled++;

            switch (index.Kind)
            {
                case RecordKind.Session:
                    WriteSession(record.Session, sequence, index, timeNs);
                    break;
                case RecordKind.NodeEvent when index.SessionId is not null && index.ProcessKey is not null:
                    WriteSessionProcess(index.SessionId, index.ProcessKey, sequence);
                    break;
                case RecordKind.Attribution when index.SessionId is not null:
                    foreach (var processKey in record.Attribution.ProcessKeys)
                        if (!string.IsNullOrEmpty(processKey)) WriteSessionProcess(index.SessionId, processKey, sequence);
                    break;
                case RecordKind.Finding:
                    var finding = record.Finding;
                    var insertFinding = _commands.InsertFinding;
                    insertFinding.Set("$seq", (long)sequence);
                    insertFinding.Set("$id", finding.Id);
                    insertFinding.Set("$kind", finding.Kind);
                    insertFinding.Set("$ns", index.Namespace);
                    insertFinding.Set("$pod", index.Pod);
                    insertFinding.Set("$user", index.User);
                    insertFinding.Set("$session", index.SessionId);
                    insertFinding.Set("$time", finding.Time is null ? timeNs : TimeConversion.ToUnixNanos(finding.Time));
                    insertFinding.ExecuteNonQuery();
                    break;
            }
            return true;
        }
    }

    private void WriteSession(Session session, ulong sequence, RecordIndex index, long recordTimeNs)
    {
        if (index.SessionId is null) return;
        long start = TimeConversion.ToUnixNanos(session.NodeStart ?? session.RequestReceived);
        if (start == 0) start = recordTimeNs;
        long end = TimeConversion.ToUnixNanos(session.NodeEnd ?? session.ResponseComplete);
        var upsert = _commands.UpsertSession;
        upsert.Set("$id", index.SessionId);
        upsert.Set("$seq", (long)sequence);
        upsert.Set("$user", index.User);
        upsert.Set("$ns", index.Namespace);
        upsert.Set("$pod", index.Pod);
        upsert.Set("$start", start);
        upsert.Set("$end", end);
        upsert.Set("$confidence", (int)session.Confidence);
        upsert.ExecuteNonQuery();
        if (index.ProcessKey is not null) WriteSessionProcess(index.SessionId, index.ProcessKey, sequence);
    }

    private void WriteSessionProcess(string sessionId, string processKey, ulong sequence)
    {
        var upsert = _commands.UpsertSessionProcess;
        upsert.Set("$session", sessionId);
        upsert.Set("$process", processKey);
        upsert.Set("$seq", (long)sequence);
        upsert.ExecuteNonQuery();
    }

    private static void Fail(WriteItem item, Exception ex)
    {
        switch (item.Completion)
        {
            case TaskCompletionSource done: done.TrySetException(ex); break;
            case TaskCompletionSource<AuditAppendResult> audit: audit.TrySetException(ex); break;
            case TaskCompletionSource<RetentionResult> retention: retention.TrySetException(ex); break;
        }
    }

    private void CompleteRetention(WriteItem item)
    {
        var done = item.Completion as TaskCompletionSource<RetentionResult>;
        try
        {
            var result = ApplyRetention();
            done?.TrySetResult(result);
        }
        catch (Exception ex)
        {
            StoreLog.RetentionFailed(_logger, ex);
            done?.TrySetException(ex);
        }
    }
}
