namespace Ebpf.Kubernetes.Tests;

/// <summary>
/// A fact that needs root (cgroup directories under /sys/fs/cgroup). Skipped with the reason when not root,
/// except under CI=true, where it runs and fails loudly.
/// </summary>
public sealed class RootFactAttribute : FactAttribute
{
    public RootFactAttribute()
    {
        if (!Environment.IsPrivilegedProcess && Environment.GetEnvironmentVariable("CI") != "true")
            Skip = "needs root to create cgroup directories (set CI=true to fail instead of skipping)";
    }
}

internal static class Wait
{
    public static async Task UntilAsync(Func<bool> condition, string what, int timeoutMs = 15_000)
    {
        var deadline = DateTime.UtcNow.AddMilliseconds(timeoutMs);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("timed out waiting for: " + what);
            await Task.Delay(20);
        }
    }
}
