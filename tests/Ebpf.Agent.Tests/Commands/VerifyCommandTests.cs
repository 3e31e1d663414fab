using Ebpf.Agent.Commands;
using Ebpf.Api.V1;
using Ebpf.Store;
using Microsoft.Data.Sqlite;

namespace Ebpf.Agent.Tests.Commands;

public sealed class VerifyCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ebpf-verify-").FullName;

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }

    private async Task WriteRecordsAsync(int count)
    {
        await using var store = EventStore.Open(new EventStoreOptions { DataDirectory = _dir, RetentionInterval = TimeSpan.Zero });
        for (int i = 0; i < count; i++)
            await store.AppendAsync(new Ebpf.Api.V1.Record { Finding = new Finding { Id = $"f{i}", Kind = "test", Summary = $"finding {i}" } });
    }

    [Fact]
    public async Task Run_IntactStore_ExitZero()
    {
        await WriteRecordsAsync(20);
        var output = new StringWriter();

        int code = VerifyCommand.Run(_dir, output, TextWriter.Null, CancellationToken.None);

        Assert.Equal(0, code);
        Assert.Contains("records checked: 20", output.ToString(), StringComparison.Ordinal);
        Assert.Contains("hash chain: intact", output.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Run_DeletedRecord_ExitOneAndNamesTheSequence()
    {
        await WriteRecordsAsync(20);
        SqliteConnection.ClearAllPools();
        using (var connection = new SqliteConnection($"Data Source={Path.Combine(_dir, "ebpf-store.db")}"))
        {
            connection.Open();
            using var delete = connection.CreateCommand();
            delete.CommandText = "DELETE FROM journal WHERE sequence = 7";
            Assert.Equal(1, delete.ExecuteNonQuery());
        }
        var output = new StringWriter();

        int code = VerifyCommand.Run(_dir, output, TextWriter.Null, CancellationToken.None);

        Assert.Equal(1, code);
        Assert.Contains("BROKEN", output.ToString(), StringComparison.Ordinal);
        Assert.Contains("deleted record: sequence 7", output.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Run_MissingDirectory_ExitTwoWithReason()
    {
        var error = new StringWriter();

        int code = VerifyCommand.Run(Path.Combine(_dir, "nope"), TextWriter.Null, error, CancellationToken.None);

        Assert.Equal(2, code);
        Assert.Contains("does not exist", error.ToString(), StringComparison.Ordinal);
    }
}
