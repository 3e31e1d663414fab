using System.CommandLine;
using Ebpf.Agent.Services;
using Ebpf.Api.Streaming;
using Ebpf.Kubernetes.Audit;
using Ebpf.Store;

namespace Ebpf.Agent.Commands;

/// <summary>`ebpf-agent audit import`: loads an audit log (plain, .gz or stdin) into the store, deduplicated.</summary>
public static class AuditImportCommand
{
    public static Command Create()
    {
        var file = new Argument<string>("file") { Description = "JSON-lines audit log, optionally gzip-compressed; - for standard input" };
        var dataDir = new Option<string>("--data-dir") { Description = "The agent's data directory", Required = true };
        var import = new Command("import", "Import an audit log into the store (duplicates of stored events are skipped)") { file, dataDir };
        import.SetAction(async (parse, ct) =>
        {
            var output = parse.InvocationConfiguration.Output;
            await using var store = EventStore.Open(new EventStoreOptions { DataDirectory = parse.GetValue(dataDir)!, RetentionInterval = TimeSpan.Zero });
            var importer = new AuditImporter(new StoreAuditSink(store, new RecordHub(), pipeline: null));
            string path = parse.GetValue(file)!;
            if (path != "-" && !File.Exists(path))
            {
                await parse.InvocationConfiguration.Error.WriteLineAsync($"audit import: file '{path}' does not exist");
                return 2;
            }
            var result = await importer.ImportFileAsync(path, ct);
            await output.WriteLineAsync($"lines: {result.Lines}, stored: {result.Appended}, duplicates: {result.Duplicates}, rejected: {result.Rejected}");
            foreach (var rejection in result.FirstRejections)
                await output.WriteLineAsync($"  rejected: {rejection}");
            return result.Rejected > 0 ? 1 : 0;
        });
        return new Command("audit", "Audit-event tools") { import };
    }
}
