using System.Diagnostics;
using Ebpf.Testing;
using Xunit.Abstractions;

namespace Ebpf.Agent.Tests.Demo;

/// <summary>
/// Runs `make demo`'s script — the real agent with BPF, two runc pods, audit events POSTed to the webhook — and
/// reads what the real `kubectl` binary prints when it runs our plugin from PATH. Root, runc and kubectl needed:
/// skipped otherwise, except with CI=true, where it must run.
/// </summary>
[Collection(Ebpf.Agent.Tests.EndToEnd.EndToEndCollection.Name)]
public sealed class DemoEndToEndTests(ITestOutputHelper log)
{
    [DemoFact]
    public async Task Demo_TwoUsersAndAnUnauditedExec_KubectlExectraceShowsWhoAndWhat()
    {
        var start = new ProcessStartInfo("bash", [Path.Combine(RepoPaths.Root, "deploy", "demo", "demo.sh")])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["COLUMNS"] = "250";
        using var demo = Process.Start(start)!;
        var stdout = demo.StandardOutput.ReadToEndAsync();
        var stderr = demo.StandardError.ReadToEndAsync();
        using (var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4)))
        {
            try
            {
                await demo.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                demo.Kill(entireProcessTree: true);
                throw;
            }
        }
        string output = await stdout + await stderr;
        // Printed with the test's result when it fails: the assertions below only say which line was missing.
        log.WriteLine(output);
        Assert.True(demo.ExitCode == 0, output);

        // kubectl exectrace sessions: both users' execs attributed with certainty, the third exec called out.
        var lines = output.Split('\n');
        Assert.Contains(lines, l => l.Contains("certain", StringComparison.Ordinal) && l.Contains("alice@example.com", StringComparison.Ordinal) && l.Contains("shop/web-1", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("certain", StringComparison.Ordinal) && l.Contains("bob@example.com", StringComparison.Ordinal) && l.Contains("payments/api-1", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("UNATTRIBUTED", StringComparison.Ordinal) && l.Contains("payments/api-1", StringComparison.Ordinal) && l.Contains("id; cat /etc/passwd", StringComparison.Ordinal));

        // kubectl exectrace show: who, from where, and the process tree with the connect and the file.
        Assert.Contains("who:     alice@example.com (groups: developers, system:authenticated)", output, StringComparison.Ordinal);
        Assert.Contains("from:    203.0.113.7 via kubectl/", output, StringComparison.Ordinal);
        Assert.Contains("sh -c \"cat /etc/hostname; wget -q -O- http://127.0.0.1:18181/\"", output, StringComparison.Ordinal);
        Assert.Contains(lines, l => l.Contains("cat /etc/hostname  [pid", StringComparison.Ordinal) && l.Contains("exit 0]", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("open /etc/hostname (r) → fd", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("connect 127.0.0.1:18181 → ok", StringComparison.Ordinal));
        Assert.Contains("who:     <no audit event: unknown user>", output, StringComparison.Ordinal);

        // The agent's /metrics: events by kind, sessions by confidence, audit events appended.
        Assert.Contains(lines, l => l.StartsWith("  ebpf_capture_events_total{kind=\"exec\"}", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("  ebpf_sessions{confidence=\"certain\"} 2", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("  ebpf_capture_drops_total{kind=\"exec\",stage=\"kernel\"} ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("  ebpf_audit_webhook_total{counter=\"appended\"} 4", StringComparison.Ordinal));

        // kubectl exectrace findings: the exec that went around the API server.
        Assert.Contains(lines, l => l.Contains("HIGH", StringComparison.Ordinal) && l.Contains("unattributed-exec", StringComparison.Ordinal));
    }
}

public sealed class DemoFactAttribute : FactAttribute
{
    public DemoFactAttribute()
    {
        if (RepoPaths.InCi)
            return;
        if (!string.Equals(Environment.UserName, "root", StringComparison.Ordinal))
            Skip = "needs root (BPF, runc); CI=true makes this a failure";
        else if (!File.Exists("/usr/sbin/runc") && !File.Exists("/usr/bin/runc"))
            Skip = "needs runc (make deps); CI=true makes this a failure";
        else if (!File.Exists("/usr/bin/kubectl"))
            Skip = "needs kubectl (make deps); CI=true makes this a failure";
    }
}
