using System.Threading.Channels;
using Ebpf.Api.V1;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Ebpf.Store;

/// <summary>
/// The agent's journal of records on SQLite, and the lookups behind <c>kubectl exectrace</c>.
/// <para>
/// The store is the source of stream sequence numbers: every append assigns the next sequence to the record
/// (<c>Record.sequence</c>) before it returns. Sequences are monotonic and never reused, also after retention; they may
/// have gaps (an audit duplicate or a failed batch consumes its number). A record handed to an append belongs to the
/// store until it is committed: do not change it afterwards.
/// </para>
/// <para>
/// One background writer owns the write connection and commits batches in transactions; lookups use their own pooled
/// read-only connections, which WAL mode lets run beside the writer.
/// </para>
/// </summary>
public sealed partial class EventStore : IAsyncDisposable
{
    private readonly EventStoreOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly string _readConnectionString;
    private readonly SqliteConnection _writeConnection;
    private readonly WriteCommands _commands;
    private readonly RecordHash _hasher = new();
    private readonly Channel<WriteItem> _queue;
    private readonly Lock _enqueueLock = new();
    private readonly Task _writerTask;
    private readonly ITimer? _retentionTimer;

    private ulong _nextSequence;   // guarded by _enqueueLock
    private bool _closed;          // guarded by _enqueueLock

    // Writer state: only the writer task touches these after Open.
    private byte[] _lastHash;
    private ulong _lastJournaledSequence;

    private long _lastCommittedSequence;
    private long _appended, _dropped, _auditDuplicates, _writeFailures, _malformedRows, _retentionDeleted;

    private EventStore(EventStoreOptions options, TimeProvider time, ILogger logger)
    {
        _options = options;
        _time = time;
        _logger = logger;
        Directory.CreateDirectory(options.DataDirectory);
        string path = options.DatabasePath;
        _readConnectionString = new SqliteConnectionStringBuilder
        {
            DataSource = path, Mode = SqliteOpenMode.ReadOnly, Pooling = true,
        }.ToString();
        _writeConnection = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = path, Mode = SqliteOpenMode.ReadWriteCreate, Pooling = false,
        }.ToString());
        try
        {
            _writeConnection.Open();
            bool empty = StoreSchema.CheckVersion(_writeConnection, path);
            if (empty) StoreSchema.PrepareEmpty(_writeConnection);
            // WAL: lookups read while the writer commits. synchronous=FULL: in WAL mode NORMAL survives a process
            // crash but may lose the last commits on power loss (https://www.sqlite.org/pragma.html#pragma_synchronous);
            // audit records are acknowledged to the API server once AppendAuditAsync returns, so a commit must reach
            // the disk. Batching makes that one WAL fsync per batch, not per record.
            string mode = ExecuteText(_writeConnection, "PRAGMA journal_mode=WAL");
            if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
                throw new InvalidOperationException($"the store at '{path}' could not switch to WAL mode (got '{mode}')");
            StoreSchema.Execute(_writeConnection, "PRAGMA synchronous=FULL");
            // The process_key index takes keys in no useful order; a 64 MiB page cache (default 2 MiB) keeps its
            // hot pages in memory so inserts do not turn into reads as the journal grows.
            StoreSchema.Execute(_writeConnection, "PRAGMA cache_size=-65536");
            if (empty) StoreSchema.Create(_writeConnection);
            StoreSchema.Execute(_writeConnection, "PRAGMA foreign_keys=OFF");
            (_lastHash, _lastJournaledSequence, ulong lastAssigned) = ReadChainHead(_writeConnection);
            _nextSequence = lastAssigned + 1;
            _lastCommittedSequence = (long)_lastJournaledSequence;
            _commands = new WriteCommands(_writeConnection);
        }
        catch
        {
            _writeConnection.Dispose();
            throw;
        }

        // Bounded so memory is too; Append drops (and counts) when full rather than blocking the capture thread.
        _queue = Channel.CreateBounded<WriteItem>(new BoundedChannelOptions(options.QueueCapacity)
        {
            SingleReader = true,                  // the writer task
            SingleWriter = false,                 // capture, audit and correlation threads append
            FullMode = BoundedChannelFullMode.Wait, // TryWrite fails when full; async appends wait for room
            AllowSynchronousContinuations = false, // never run the writer on an appending thread
        });
        StoreLog.Opened(_logger, path, StoreSchema.CurrentVersion, _lastJournaledSequence);
        _writerTask = Task.Run(RunWriterAsync);
        if (options.RetentionInterval > TimeSpan.Zero)
            _retentionTimer = _time.CreateTimer(_ => RequestRetention(), null, options.RetentionInterval, options.RetentionInterval);
    }

    /// <summary>
    /// Opens (creating if needed) the store under <see cref="EventStoreOptions.DataDirectory"/>.
    /// Throws <see cref="StoreSchemaException"/> when the database was written by a newer schema.
    /// </summary>
    public static EventStore Open(EventStoreOptions options, TimeProvider? timeProvider = null, ILogger<EventStore>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        return new EventStore(options, timeProvider ?? TimeProvider.System, (ILogger?)logger ?? NullLogger.Instance);
    }

    public EventStoreOptions Options => _options;

    /// <summary>Highest sequence committed to the journal (0 when empty).</summary>
    public ulong LastSequence => (ulong)Interlocked.Read(ref _lastCommittedSequence);

    /// <summary>Bytes the store occupies on disk: the database file plus its write-ahead log.</summary>
    public long StoreSizeBytes => FileLength(_options.DatabasePath) + FileLength(_options.DatabasePath + "-wal");

    public EventStoreCounters Counters => new(
        Interlocked.Read(ref _appended), Interlocked.Read(ref _dropped), Interlocked.Read(ref _auditDuplicates),
        Interlocked.Read(ref _writeFailures), Interlocked.Read(ref _malformedRows), Interlocked.Read(ref _retentionDeleted),
        _queue.Reader.Count);

    /// <summary>
    /// Queues a record for the background writer without ever blocking. On success the record's <c>sequence</c> is set
    /// (and its <c>time</c>, if it had none) and it is returned; when the queue is full or the store is closing the
    /// record is dropped, counted in <see cref="EventStoreCounters.Dropped"/>, and returned with sequence 0.
    /// Not durable on return: use <see cref="AppendAsync(Record, CancellationToken)"/> or <see cref="FlushAsync"/> for that.
    /// </summary>
    public Record Append(Record record)
    {
        Validate(record);
        record.Time ??= Timestamp.FromDateTimeOffset(_time.GetUtcNow());
        lock (_enqueueLock)
        {
            if (!_closed)
            {
                record.Sequence = _nextSequence;
                if (_queue.Writer.TryWrite(new WriteItem(WriteKind.Record, record, null)))
                {
                    _nextSequence++;
                    return record;
                }
                record.Sequence = 0;
            }
        }
        long dropped = Interlocked.Increment(ref _dropped);
        if ((dropped & (dropped - 1)) == 0) StoreLog.QueueFull(_logger, dropped);
        return record;
    }

    /// <summary>Appends a record and completes once it is committed durably; waits for queue room instead of dropping.</summary>
    public async Task<Record> AppendAsync(Record record, CancellationToken cancellationToken = default)
    {
        Validate(record);
        record.Time ??= Timestamp.FromDateTimeOffset(_time.GetUtcNow());
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await EnqueueAsync(new WriteItem(WriteKind.Record, record, done), cancellationToken).ConfigureAwait(false);
        await done.Task.ConfigureAwait(false);
        return record;
    }

    /// <summary>Appends records (consecutive sequences, one transaction) and completes once they are committed durably.</summary>
    public async Task<IReadOnlyList<Record>> AppendAsync(IReadOnlyList<Record> records, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(records);
        if (records.Count == 0) return records;
        var now = Timestamp.FromDateTimeOffset(_time.GetUtcNow());
        foreach (var record in records)
        {
            Validate(record);
            record.Time ??= now;
        }
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await EnqueueAsync(new WriteItem(WriteKind.Records, records, done), cancellationToken).ConfigureAwait(false);
        await done.Task.ConfigureAwait(false);
        return records;
    }

    /// <summary>
    /// Appends reduced audit events with their raw JSON, storing each (auditID, stage, stageTimestamp) once. Completes
    /// only after the batch is committed durably, so the audit webhook may answer 200 when it returns. Duplicates are
    /// not journaled and keep sequence 0.
    /// </summary>
    public async Task<AuditAppendResult> AppendAuditAsync(
        IReadOnlyList<(AuditDedupeKey Key, Record Record, ReadOnlyMemory<byte> RawJson)> entries,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(entries);
        if (entries.Count == 0) return new AuditAppendResult(0, 0, []);
        var now = Timestamp.FromDateTimeOffset(_time.GetUtcNow());
        foreach (var entry in entries)
        {
            Validate(entry.Record);
            if (entry.Record.BodyCase != Record.BodyOneofCase.AuditEvent)
                throw new ArgumentException("AppendAuditAsync takes records whose body is an AuditEvent.", nameof(entries));
            if (string.IsNullOrEmpty(entry.Key.AuditId))
                throw new ArgumentException("an audit dedupe key needs an audit id.", nameof(entries));
            entry.Record.Time ??= now;
        }
        var done = new TaskCompletionSource<AuditAppendResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        await EnqueueAsync(new WriteItem(WriteKind.Audit, entries, done), cancellationToken).ConfigureAwait(false);
        return await done.Task.ConfigureAwait(false);
    }

    /// <summary>Completes when everything queued before the call is committed durably.</summary>
    public async Task FlushAsync(CancellationToken cancellationToken = default)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await EnqueueAsync(new WriteItem(WriteKind.Flush, null, done), cancellationToken).ConfigureAwait(false);
        await done.Task.ConfigureAwait(false);
    }

    /// <summary>Runs retention now (it also runs every <see cref="EventStoreOptions.RetentionInterval"/>).</summary>
    public async Task<RetentionResult> RunRetentionAsync(CancellationToken cancellationToken = default)
    {
        var done = new TaskCompletionSource<RetentionResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        await EnqueueAsync(new WriteItem(WriteKind.Retention, null, done), cancellationToken).ConfigureAwait(false);
        return await done.Task.ConfigureAwait(false);
    }

    /// <summary>Stops accepting appends, commits everything queued, and closes the database.</summary>
    public async ValueTask DisposeAsync()
    {
        lock (_enqueueLock)
        {
            if (_closed) return;
            _closed = true;
            _queue.Writer.TryComplete();
        }
        if (_retentionTimer is not null) await _retentionTimer.DisposeAsync().ConfigureAwait(false);
        await _writerTask.ConfigureAwait(false);
        _commands.Dispose();
        _hasher.Dispose();
        _writeConnection.Dispose();
        using (var reader = new SqliteConnection(_readConnectionString)) SqliteConnection.ClearPool(reader);
    }

    private static void Validate(Record record)
    {
        ArgumentNullException.ThrowIfNull(record);
        if (Ebpf.Api.RecordKinds.Of(record) == RecordKind.Unspecified)
            throw new ArgumentException($"the store journals node events, audit events, sessions, attribution updates and findings, not '{record.BodyCase}'.", nameof(record));
    }

    private void RequestRetention()
    {
        lock (_enqueueLock)
        {
            // A full queue means the writer is busy with records; retention waits for the next tick.
            if (!_closed) _queue.Writer.TryWrite(new WriteItem(WriteKind.Retention, null, null));
        }
    }

    private async ValueTask EnqueueAsync(WriteItem item, CancellationToken cancellationToken)
    {
        while (true)
        {
            lock (_enqueueLock)
            {
                ObjectDisposedException.ThrowIf(_closed, this);
                ulong next = item.Number(_nextSequence);
                if (_queue.Writer.TryWrite(item))
                {
                    _nextSequence = next;
                    return;
                }
                item.Number(0);
            }
            bool open = await _queue.Writer.WaitToWriteAsync(cancellationToken).ConfigureAwait(false);
            ObjectDisposedException.ThrowIf(!open, this);
        }
    }

    internal SqliteConnection OpenReadConnection()
    {
        var connection = new SqliteConnection(_readConnectionString);
        connection.Open();
        return connection;
    }

    private static (byte[] LastHash, ulong LastJournaled, ulong LastAssigned) ReadChainHead(SqliteConnection connection)
    {
        byte[] lastHash = RecordHash.Genesis;
        ulong lastJournaled = 0;
        using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT sequence, hash FROM journal ORDER BY sequence DESC LIMIT 1";
            using var reader = command.ExecuteReader();
            if (reader.Read())
            {
                lastJournaled = (ulong)reader.GetInt64(0);
                lastHash = (byte[])reader.GetValue(1);
            }
        }
        var anchor = StoreMeta.ReadAnchor(connection);
        if (lastJournaled == 0 && anchor is not null)
        {
            lastHash = anchor.Value.PreviousHash;
            lastJournaled = anchor.Value.PreviousSequence;
        }
        ulong lastAssigned = Math.Max(lastJournaled, StoreMeta.ReadUInt64(connection, StoreMeta.LastSequenceKey));
        if (anchor is not null) lastAssigned = Math.Max(lastAssigned, anchor.Value.PreviousSequence);
        return (lastHash, lastJournaled, lastAssigned);
    }

    private static string ExecuteText(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return Convert.ToString(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture) ?? "";
    }

    private static long FileLength(string path)
    {
        try { return new FileInfo(path).Length; }
        catch (FileNotFoundException) { return 0; }
    }

    internal void CountMalformed(long sequence, string table)
    {
        Interlocked.Increment(ref _malformedRows);
        StoreLog.MalformedRow(_logger, sequence, table);
    }

    private enum WriteKind { Record, Records, Audit, Flush, Retention }

    /// <summary>One queued unit: a record, a batch of records, an audit batch, or a marker; with its completion if any.</summary>
    private readonly struct WriteItem(WriteKind kind, object? payload, object? completion)
    {
        public WriteKind Kind { get; } = kind;
        public object? Payload { get; } = payload;
        public object? Completion { get; } = completion;

        public int RecordCount => Kind switch
        {
            WriteKind.Record => 1,
            WriteKind.Records => ((IReadOnlyList<Record>)Payload!).Count,
            WriteKind.Audit => ((IReadOnlyList<(AuditDedupeKey, Record, ReadOnlyMemory<byte>)>)Payload!).Count,
            _ => 0,
        };

        /// <summary>Gives the records consecutive sequences from <paramref name="first"/> (0 resets them); returns the next free one.</summary>
        public ulong Number(ulong first)
        {
            ulong next = first;
            switch (Kind)
            {
                case WriteKind.Record:
                    ((Record)Payload!).Sequence = next;
                    next = first == 0 ? 0 : next + 1;
                    break;
                case WriteKind.Records:
                    foreach (var record in (IReadOnlyList<Record>)Payload!)
                    {
                        record.Sequence = next;
                        if (first != 0) next++;
                    }
                    break;
                case WriteKind.Audit:
                    foreach (var entry in (IReadOnlyList<(AuditDedupeKey, Record Record, ReadOnlyMemory<byte>)>)Payload!)
                    {
                        entry.Record.Sequence = next;
                        if (first != 0) next++;
                    }
                    break;
            }
            return next;
        }
    }
}
