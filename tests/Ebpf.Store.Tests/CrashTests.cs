using System.Diagnostics;
using System.Globalization;
using Ebpf.Api.V1;

namespace Ebpf.Store.Tests;

public sealed class CrashTests : IDisposable
{
    private readonly TempStoreDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Open_AfterWriterKilledWithSigkillMidWrite_NoCorruptionAndEveryAcknowledgedRecordPresent()
    {
        string writerDll = CrashWriterPath();
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(writerDll);
        start.ArgumentList.Add(_dir.Path);

        var acknowledged = new Dictionary<ulong, string>();
        using (var writer = Process.Start(start)!)
        {
            try
            {
                var stderr = writer.StandardError.ReadToEndAsync();
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
                // Let it get well into its stride (several thousand durable appends) so the kill lands mid-batch.
                while (acknowledged.Count < 3_000)
                {
                    string? line = await writer.StandardOutput.ReadLineAsync(timeout.Token);
                    if (line is null) Assert.Fail($"the writer exited early: {await stderr}");
                    Parse(line, acknowledged);
                }
                writer.Kill(); // SIGKILL on Unix: no finalizers, no flush, no dispose
                await writer.WaitForExitAsync(timeout.Token);
                // Acks already in the pipe were written before the kill, so they were durable too; a torn last line is not an ack.
                string rest = await writer.StandardOutput.ReadToEndAsync(timeout.Token);
                foreach (var line in rest.Split('\n')) Parse(line, acknowledged);
                Assert.NotEqual(0, writer.ExitCode);
            }
            finally
            {
                if (!writer.HasExited) writer.Kill();
            }
        }

        var verification = StoreVerifier.Verify(_dir.Path);
        Assert.Equal("ok", verification.IntegrityCheck);
        Assert.True(verification.IsValid, verification.Problem);

        await using var store = _dir.Open();
        var stored = new Dictionary<ulong, Record>();
        await foreach (var record in store.ReplayAsync(0)) stored[record.Sequence] = record;
        Assert.True(stored.Count >= acknowledged.Count);
        foreach (var (sequence, key) in acknowledged)
        {
            Assert.True(stored.TryGetValue(sequence, out var record), $"acknowledged record {sequence} ({key}) is missing");
            string actual = record.BodyCase == Record.BodyOneofCase.AuditEvent ? "audit-" + record.AuditEvent.AuditId : record.NodeEvent.ProcessKey;
            Assert.Equal(key, actual);
        }
        // The reopened store carries on after the highest sequence the dead process committed.
        var next = await store.AppendAsync(Records.Session("after-crash", 1));
        Assert.True(next.Sequence > stored.Keys.Max());
    }

    private static void Parse(string line, Dictionary<ulong, string> acknowledged)
    {
        var parts = line.Split(' ');
        if (parts is ["ack", var sequence, var key, "."])
            acknowledged[ulong.Parse(sequence, CultureInfo.InvariantCulture)] = key;
    }

    private static string CrashWriterPath()
    {
        // tests/Ebpf.Store.Tests/bin/<Configuration>/<tfm>/ -> tests/Ebpf.Store.CrashWriter/bin/<Configuration>/<tfm>/
        var output = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        string tfm = output.Name;
        string configuration = output.Parent!.Name;
        string tests = output.Parent!.Parent!.Parent!.Parent!.FullName;
        string path = Path.Combine(tests, "Ebpf.Store.CrashWriter", "bin", configuration, tfm, "Ebpf.Store.CrashWriter.dll");
        Assert.True(File.Exists(path), $"crash writer not built at {path} (it is a build dependency of this test project)");
        return path;
    }
}
