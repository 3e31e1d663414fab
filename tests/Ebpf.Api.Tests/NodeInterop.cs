using System.Diagnostics;

namespace Ebpf.Api.Tests;

/// <summary>
/// Runs tests/Ebpf.Api.Tests/node/*.js with the system <c>node</c>; installs the pinned packages with
/// <c>npm ci</c> (from package-lock.json) the first time, so a fresh CI machine needs only node and npm.
/// </summary>
internal static class NodeInterop
{
    private static readonly SemaphoreSlim InstallLock = new(1, 1);

    public static string RepositoryRoot { get; } = FindRepositoryRoot();

    public static string NodeDirectory => Path.Combine(RepositoryRoot, "tests", "Ebpf.Api.Tests", "node");

    public static string ProtosDirectory => Path.Combine(RepositoryRoot, "src", "Ebpf.Api", "Protos");

    public static async Task EnsureInstalledAsync()
    {
        await InstallLock.WaitAsync();
        try
        {
            if (Directory.Exists(Path.Combine(NodeDirectory, "node_modules", "@grpc", "grpc-js")) &&
                Directory.Exists(Path.Combine(NodeDirectory, "node_modules", "@grpc", "proto-loader")))
            {
                return;
            }

            var (code, stdout, stderr) = await RunAsync("npm", ["ci", "--no-audit", "--no-fund"], TimeSpan.FromMinutes(5));
            Assert.True(code == 0, $"npm ci failed in {NodeDirectory} (exit {code}):\n{stdout}\n{stderr}");
        }
        finally
        {
            InstallLock.Release();
        }
    }

    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string fileName, IEnumerable<string> arguments, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = NodeDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new InvalidOperationException($"'{fileName}' is required for the gRPC interop tests (make deps installs nodejs): {ex.Message}", ex);
        }

        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using var cts = new CancellationTokenSource(timeout);
            try
            {
                await process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException($"{fileName} {string.Join(' ', arguments)} did not finish in {timeout}: {await stderr}");
            }

            return (process.ExitCode, await stdout, await stderr);
        }
    }

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Ebpf.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"Ebpf.sln not found above {AppContext.BaseDirectory}.");
    }
}
