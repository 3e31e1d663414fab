using System.IO.Compression;
using System.Text;
using Ebpf.Kubernetes.Audit;

namespace Ebpf.Kubernetes.Tests.Audit;

public sealed class AuditImporterTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("audit-import-").FullName;

    [Fact]
    public async Task ImportFile_PlainLog_AppendsEveryLine()
    {
        var sink = new InMemoryAuditSink();

        var result = await new AuditImporter(sink, maxBatchEvents: 10).ImportFileAsync(AuditFixtures.Path_("liggitt-audit2rbac/testdata/demo.log"), default);

        Assert.Equal(new { Lines = 37L, Appended = 37L, Rejected = 0L }, new { result.Lines, result.Appended, result.Rejected });
        Assert.Equal(37, sink.Stored.Count);
    }

    [Fact]
    public async Task ImportFile_GzipBackup_DetectedByMagic()
    {
        var path = Path.Combine(_dir, "audit-2026-11-22T10-00-00.000.log.gz");
        await using (var gz = new GZipStream(File.Create(path), CompressionLevel.Fastest))
        {
            await gz.WriteAsync(await File.ReadAllBytesAsync(AuditFixtures.Path_("liggitt-audit2rbac/testdata/demo.log")));
        }

        var sink = new InMemoryAuditSink();
        var result = await new AuditImporter(sink).ImportFileAsync(path, default);

        Assert.Equal(37, result.Appended);
        Assert.Equal(0, result.Rejected);
    }

    [Fact]
    public async Task ImportStream_TruncatedGzip_KeepsDecodedEventsAndReportsCorruption()
    {
        var buffer = new MemoryStream();
        await using (var gz = new GZipStream(buffer, CompressionLevel.Fastest, leaveOpen: true))
        {
            await gz.WriteAsync(await File.ReadAllBytesAsync(AuditFixtures.Path_("liggitt-audit2rbac/testdata/demo.log")));
        }

        var truncated = buffer.ToArray()[..(int)(buffer.Length * 2 / 3)];
        var sink = new InMemoryAuditSink();
        var result = await new AuditImporter(sink).ImportStreamAsync(new MemoryStream(truncated), "cut.gz", default);

        Assert.InRange(result.Appended, 1, 36);
        Assert.True(result.Rejected >= 1);
        Assert.Contains(result.FirstRejections, r => r.Rejection!.Contains("corrupt compressed data", StringComparison.Ordinal) || r.Rejection.Contains("invalid JSON", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ImportStream_MixedFixturesAndCloudExports_RejectsOnlyNonEvents()
    {
        var content = new StringBuilder();
        foreach (var file in AuditFixtures.EventFiles())
        {
            content.Append(File.ReadAllText(file).TrimEnd('\n')).Append('\n');
        }

        var sink = new InMemoryAuditSink();
        var result = await new AuditImporter(sink).ImportStreamAsync(new MemoryStream(Encoding.UTF8.GetBytes(content.ToString())), "all", default);

        Assert.Equal(95, result.Appended + result.Duplicates);
        Assert.Equal(1, result.Rejected);
        Assert.Contains("kind", result.FirstRejections.Single().Rejection, StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}

public sealed class AuditWebhookOptionsTests
{
    [Fact]
    public void ReadBearerTokenFile_SecretWithTrailingNewlines_TrimsAndSkipsBlank()
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, "tok-1\n\n  tok-2  \n");

            Assert.Equal(["tok-1", "tok-2"], AuditWebhookOptions.ReadBearerTokenFile(path));
            File.WriteAllText(path, "\n");
            Assert.Throws<ArgumentException>(() => AuditWebhookOptions.ReadBearerTokenFile(path));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
