using System.Globalization;
using System.Text;
using Ebpf.Api.V1;
using Ebpf.Store;
using Google.Protobuf.WellKnownTypes;

// Usage: Ebpf.Store.CrashWriter <data-dir>
// Appends forever from several writers (durable appends, fire-and-forget appends, audit batches) and prints
// "ack <sequence> <process-key> ." on stdout once an append is durable. The test kills it with SIGKILL mid-write and
// checks that every acknowledged record survived.
if (args.Length != 1)
{
    Console.Error.WriteLine("usage: Ebpf.Store.CrashWriter <data-dir>");
    return 2;
}

var store = EventStore.Open(new EventStoreOptions { DataDirectory = args[0], RetentionInterval = TimeSpan.Zero, MaxBatchDelay = TimeSpan.FromMilliseconds(2) });
var output = new StreamWriter(Console.OpenStandardOutput(), new UTF8Encoding(false)) { AutoFlush = false };
var outputLock = new Lock();

void Ack(ulong sequence, string key)
{
    lock (outputLock)
    {
        output.Write(string.Create(CultureInfo.InvariantCulture, $"ack {sequence} {key} .\n"));
        output.Flush();
    }
}

static Record NodeRecord(string key) => new()
{
    Time = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow),
    NodeEvent = new NodeEvent
    {
        Pid = 1, ProcessKey = key,
        Exec = new ExecDetails { Filename = "/bin/crash", Argv = { "crash", key } },
    },
};

var writers = Enumerable.Range(0, 4).Select(writer => Task.Run(async () =>
{
    for (long n = 0; ; n++)
    {
        string key = string.Create(CultureInfo.InvariantCulture, $"w{writer}-{n}");
        store.Append(NodeRecord(key + "-ff"));
        if (writer == 0 && n % 10 == 0)
        {
            var audit = new Record
            {
                AuditEvent = new AuditEvent
                {
                    AuditId = key, Stage = "ResponseComplete", Namespace = "crash", Name = "pod", Resource = "pods",
                    StageTimestamp = Timestamp.FromDateTimeOffset(DateTimeOffset.UtcNow),
                },
            };
            var result = await store.AppendAuditAsync([(AuditDedupeKey.From(audit.AuditEvent), audit, "{}"u8.ToArray())]);
            if (result.Appended == 1) Ack(audit.Sequence, "audit-" + key);
            continue;
        }
        var record = await store.AppendAsync(NodeRecord(key));
        Ack(record.Sequence, key);
    }
})).ToArray();

await Task.WhenAll(writers);
return 0;
