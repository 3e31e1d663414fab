using System.CommandLine;
using Ebpf.Store;

namespace Ebpf.Agent.Commands;

/// <summary>`ebpf-agent verify`: walks the store's hash chain and says whether anything was edited or deleted.</summary>
public static class VerifyCommand
{
    public static Command Create()
    {
        var dataDir = new Option<string>("--data-dir") { Description = "The agent's data directory (holds ebpf-store.db)", Required = true };
        var command = new Command("verify", "Check the store's integrity and hash chain: any edited, reordered or deleted record is reported by sequence")
        {
            dataDir,
        };
        command.SetAction((parse, ct) => Task.FromResult(Run(parse.GetValue(dataDir)!, parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, ct)));
        return command;
    }

    public static int Run(string dataDirectory, TextWriter output, TextWriter error, CancellationToken ct)
    {
        if (!Directory.Exists(dataDirectory))
        {
            error.WriteLine($"verify: data directory '{dataDirectory}' does not exist");
            return 2;
        }
        StoreVerification result;
        try
        {
            result = StoreVerifier.Verify(dataDirectory, cancellationToken: ct);
        }
        catch (Exception e) when (e is StoreSchemaException or IOException or Microsoft.Data.Sqlite.SqliteException)
        {
            error.WriteLine($"verify: {e.Message}");
            return 2;
        }
        output.WriteLine($"integrity check: {result.IntegrityCheck}");
        output.WriteLine($"records checked: {result.RecordsChecked} (sequences {result.FirstSequence}..{result.LastSequence})");
        if (result.IsValid)
        {
            output.WriteLine("hash chain: intact");
            return 0;
        }
        output.WriteLine($"hash chain: BROKEN: {result.Problem}");
        if (result.BrokenAtSequence is ulong broken)
            output.WriteLine($"  first record that does not verify: sequence {broken}");
        if (result.MissingSequence is ulong missing)
            output.WriteLine($"  deleted record: sequence {missing}");
        return 1;
    }
}
