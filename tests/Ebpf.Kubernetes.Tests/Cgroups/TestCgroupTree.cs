using Ebpf.Interop;
using Ebpf.Kubernetes.Cgroups;

namespace Ebpf.Kubernetes.Tests.Cgroups;

/// <summary>A uniquely named subtree of the real cgroup v2 hierarchy, removed (deepest first) on dispose.</summary>
internal sealed class TestCgroupTree : IDisposable
{
    private readonly List<string> _created = [];

    public TestCgroupTree()
    {
        Mount = CgroupV2.FindMount() ?? throw new InvalidOperationException("no cgroup v2 mount");
        RootRelative = "/ebpf-identity-test-" + Guid.NewGuid().ToString("N")[..12];
        Create(RootRelative);
    }

    public string Mount { get; }
    public string RootRelative { get; }

    /// <summary>Creates a directory (and missing parents) below the test root; returns the path relative to the v2 root.</summary>
    public string Create(string relativeToV2Root)
    {
        var parts = relativeToV2Root.Trim('/').Split('/');
        var current = "";
        foreach (var part in parts)
        {
            current += "/" + part;
            if (Directory.Exists(Mount + current)) continue;
            Directory.CreateDirectory(Mount + current);
            _created.Add(current);
        }
        return relativeToV2Root;
    }

    public string Below(string suffix) => Create(RootRelative + suffix);

    public void Remove(string relative)
    {
        Directory.Delete(Mount + relative);
        _created.Remove(relative);
    }

    public void MoveProcess(int pid, string relative) => File.WriteAllText(Mount + relative + "/cgroup.procs", pid.ToString(System.Globalization.CultureInfo.InvariantCulture));

    public void Dispose()
    {
        // cgroup directories hold only virtual files: rmdir each, deepest first (recursive delete would try the files).
        foreach (var dir in _created.OrderByDescending(d => d.Length))
        {
            try
            {
                var procs = Mount + dir + "/cgroup.procs";
                if (File.Exists(procs))
                    foreach (var pid in File.ReadAllLines(procs).Where(l => l.Length > 0))
                        File.WriteAllText(Mount + "/cgroup.procs", pid);
                Directory.Delete(Mount + dir);
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
    }
}
