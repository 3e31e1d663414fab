using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Ebpf.Testing.Runc;

/// <summary>Options of <see cref="RuncContainer.StartAsync"/>.</summary>
public sealed class RuncContainerOptions
{
    /// <summary>
    /// The container's cgroupsPath as runc receives it. Defaults to a kubelet cgroupfs-driver shape:
    /// <c>/kubepods/besteffort/pod&lt;uuid&gt;/&lt;container id&gt;</c> (see <see cref="RuncContainer.KubeletCgroupfsPath"/>).
    /// Any absolute path works, e.g. a systemd-driver shape <c>/kubepods.slice/.../cri-containerd-&lt;id&gt;.scope</c>.
    /// </summary>
    public string? CgroupsPath { get; set; }

    /// <summary>The container's init process. Defaults to <c>sleep 3600</c>: a container that idles until deleted.</summary>
    public IReadOnlyList<string> Args { get; set; } = ["sleep", "3600"];

    /// <summary>
    /// Share the host's network namespace (like a hostNetwork pod). Defaults to true: tests then connect from the
    /// container to listeners the test opened on the host's 127.0.0.1/::1, and no tooling (ip, CNI) is needed to
    /// bring up lo in a fresh namespace. False gives the container its own namespace with only a down lo.
    /// </summary>
    public bool HostNetwork { get; set; } = true;

    /// <summary>Host files or directories bind-mounted into the container (read-write). Defaults to none.</summary>
    public IList<RuncBindMount> BindMounts { get; set; } = [];
}

/// <summary>A host path made visible at a path inside the container.</summary>
public sealed record RuncBindMount(string HostPath, string ContainerPath);

/// <summary>A <c>runc exec</c> that finished.</summary>
public sealed record RuncExecResult(int ExitCode, string StandardOutput, string StandardError);

/// <summary>
/// A real runc container over a busybox-static rootfs, in a cgroup shaped like kubelet's. Every container gets a
/// unique 64-hex id (the shape CRI runtimes use for runc ids and cgroup leaves). Disposal always runs
/// <c>runc delete -f</c> and removes the cgroup directories the container left behind in the v2 and v1 hierarchies.
/// Tests must filter kernel events on <see cref="CgroupId"/>: the machine is shared.
/// </summary>
public sealed class RuncContainer : IAsyncDisposable
{
    private const string CgroupRoot = "/sys/fs/cgroup";
    private const string OwnerFile = "owner.pid";
    private static readonly string BundlesRoot = Path.Combine(Path.GetTempPath(), "ebpf-runc");
    private static int _swept;
    private static readonly SemaphoreSlim RootfsGate = new(1, 1);
    private static string? _rootfs;

    private readonly List<string> _createdCgroupDirs;
    private int _disposed;

    private RuncContainer(string id, string bundle, string cgroupsPath, List<string> createdCgroupDirs)
    {
        Id = id;
        BundleDirectory = bundle;
        CgroupsPath = cgroupsPath;
        _createdCgroupDirs = createdCgroupDirs;
    }

    /// <summary>The runc container id (64 hex characters).</summary>
    public string Id { get; }

    public string BundleDirectory { get; }

    /// <summary>cgroupsPath given to runc.</summary>
    public string CgroupsPath { get; }

    /// <summary>Host pid of the container's init process.</summary>
    public int InitPid { get; private set; }

    /// <summary>The container's directory in the cgroup v2 hierarchy.</summary>
    public string V2CgroupDirectory => V2Mount + CgroupsPath;

    /// <summary>cgroup v2 id of the container (inode of <see cref="V2CgroupDirectory"/>), as BPF's bpf_get_current_cgroup_id reports it.</summary>
    public ulong CgroupId { get; private set; }

    /// <summary>The v2 mount: /sys/fs/cgroup/unified on a hybrid host, /sys/fs/cgroup on a pure v2 host.</summary>
    public static string V2Mount => File.Exists("/sys/fs/cgroup/unified/cgroup.controllers") ? "/sys/fs/cgroup/unified" : CgroupRoot;

    /// <summary>Why containers cannot run here, or null when they can (root, runc, busybox-static).</summary>
    public static string? UnavailableReason()
    {
        if (!OperatingSystem.IsLinux())
            return "runc containers need Linux";
        var uid = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("Uid:", StringComparison.Ordinal))?.Split('\t', StringSplitOptions.RemoveEmptyEntries).ElementAtOrDefault(2);
        if (uid != "0")
            return "runc containers need root";
        if (FindExecutable("runc") is null)
            return "runc is not installed (apt-get install runc)";
        if (!File.Exists("/bin/busybox"))
            return "busybox-static is not installed (/bin/busybox)";
        return null;
    }

    /// <summary>A kubelet cgroupfs-driver path: /kubepods/&lt;qos&gt;/pod&lt;uuid&gt;/&lt;containerId&gt; (burstable/besteffort; "" for guaranteed).</summary>
    public static string KubeletCgroupfsPath(string containerId, string qosClass = "besteffort")
    {
        var pod = "pod" + Guid.NewGuid().ToString("D");
        return string.IsNullOrEmpty(qosClass) ? $"/kubepods/{pod}/{containerId}" : $"/kubepods/{qosClass}/{pod}/{containerId}";
    }

    /// <summary>A new 64-hex container id.</summary>
    public static string NewContainerId() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));

    /// <summary>Creates and starts a detached container (<c>runc run -d</c>).</summary>
    public static async Task<RuncContainer> StartAsync(RuncContainerOptions? options = null, CancellationToken ct = default)
    {
        options ??= new RuncContainerOptions();
        var reason = UnavailableReason();
        if (reason is not null)
            throw new InvalidOperationException(reason);
        var rootfs = await EnsureRootfsAsync(ct).ConfigureAwait(false);
        var id = NewContainerId();
        var cgroupsPath = options.CgroupsPath ?? KubeletCgroupfsPath(id);
        if (!cgroupsPath.StartsWith('/'))
            throw new ArgumentException("cgroupsPath must be absolute.", nameof(options));
        await SweepAbandonedAsync().ConfigureAwait(false);
        var bundle = Path.Combine(BundlesRoot, id);
        Directory.CreateDirectory(bundle);
        await File.WriteAllTextAsync(Path.Combine(bundle, OwnerFile), Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture), ct).ConfigureAwait(false);
        var container = new RuncContainer(id, bundle, cgroupsPath, MissingCgroupDirs(cgroupsPath));
        try
        {
            await WriteConfigAsync(bundle, rootfs, cgroupsPath, options, ct).ConfigureAwait(false);
            // runc run -d hands its stdio to the container's init, which keeps them open: send them to files so
            // nothing waits for EOF on a pipe the container holds.
            var run = await HostProcess.RunAsync("/bin/sh",
                ["-c", "exec runc run -d --bundle \"$1\" \"$2\" </dev/null >\"$1/init.out\" 2>\"$1/init.err\"", "sh", bundle, id],
                TimeSpan.FromSeconds(30), ct).ConfigureAwait(false);
            if (run.ExitCode != 0)
                throw new InvalidOperationException($"runc run failed ({run.ExitCode}): {SafeRead(Path.Combine(bundle, "init.err"))}");
            var state = await container.GetStateAsync(ct).ConfigureAwait(false);
            container.InitPid = state.RootElement.GetProperty("pid").GetInt32();
            container.CgroupId = ReadInode(container.V2CgroupDirectory);
            return container;
        }
        catch
        {
            await container.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary><c>runc exec</c> of an argv in the container, waiting for it to finish.</summary>
    public async Task<RuncExecResult> ExecAsync(IReadOnlyList<string> argv, TimeSpan? timeout = null, CancellationToken ct = default)
    {
        var result = await HostProcess.RunAsync("runc", ["exec", Id, .. argv], timeout ?? TimeSpan.FromSeconds(60), ct).ConfigureAwait(false);
        return new RuncExecResult(result.ExitCode, result.StandardOutput, result.StandardError);
    }

    /// <summary>Runs a busybox sh script in the container.</summary>
    public Task<RuncExecResult> ShellAsync(string script, TimeSpan? timeout = null, CancellationToken ct = default) =>
        ExecAsync(["/bin/sh", "-c", script], timeout, ct);

    /// <summary><c>runc state</c> as JSON (id, pid, status, bundle ...).</summary>
    public async Task<JsonDocument> GetStateAsync(CancellationToken ct = default)
    {
        var result = (await HostProcess.RunAsync("runc", ["state", Id], TimeSpan.FromSeconds(15), ct).ConfigureAwait(false)).EnsureSuccess("runc state");
        return JsonDocument.Parse(result.StandardOutput);
    }

    /// <summary>Host pids of the processes in the container's v2 cgroup.</summary>
    public IReadOnlyList<int> ProcessIds() =>
        File.Exists(Path.Combine(V2CgroupDirectory, "cgroup.procs"))
            ? File.ReadAllLines(Path.Combine(V2CgroupDirectory, "cgroup.procs")).Where(l => l.Length > 0).Select(int.Parse).ToArray()
            : [];

    /// <summary>The inode number of a path (a cgroup v2 directory's inode is its cgroup id).</summary>
    public static ulong ReadInode(string path)
    {
        var psi = new ProcessStartInfo("stat", ["-c", "%i", path]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return p.ExitCode == 0 ? ulong.Parse(output.Trim()) : throw new InvalidOperationException($"stat {path} failed: {p.StandardError.ReadToEnd()}");
    }

    /// <summary>Deletes the container (<c>runc delete -f</c>), its cgroup directories and its bundle. Never throws.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        try
        {
            await HostProcess.RunAsync("runc", ["delete", "-f", Id], TimeSpan.FromSeconds(30)).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Keep going: the cgroup and bundle cleanup below must still run.
        }
        // runc delete removes the leaf but leaves the parents it created (pod<uuid>, ...); remove those we created,
        // deepest first. rmdir fails on a non-empty directory, so nothing another test uses can go.
        for (var attempt = 0; attempt < 20; attempt++)
        {
            var remaining = 0;
            foreach (var dir in _createdCgroupDirs.OrderByDescending(d => d.Length))
            {
                if (!Directory.Exists(dir))
                    continue;
                try
                {
                    Directory.Delete(dir);
                }
                catch (IOException)
                {
                    remaining++;
                }
                catch (UnauthorizedAccessException)
                {
                    remaining++;
                }
            }
            if (remaining == 0)
                break;
            await Task.Delay(100).ConfigureAwait(false);
        }
        try
        {
            Directory.Delete(BundleDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>
    /// Once per process: deletes containers left behind by test processes that died before disposing them (their
    /// bundle's owner pid is gone), with their leaf and pod cgroup directories.
    /// </summary>
    private static async Task SweepAbandonedAsync()
    {
        if (Interlocked.Exchange(ref _swept, 1) != 0 || !Directory.Exists(BundlesRoot))
            return;
        foreach (var bundle in Directory.EnumerateDirectories(BundlesRoot))
        {
            var ownerPath = Path.Combine(bundle, OwnerFile);
            if (!File.Exists(ownerPath) || !int.TryParse(File.ReadAllText(ownerPath), out var owner) || Directory.Exists($"/proc/{owner}"))
                continue;
            try
            {
                var id = Path.GetFileName(bundle);
                await HostProcess.RunAsync("runc", ["delete", "-f", id], TimeSpan.FromSeconds(30)).ConfigureAwait(false);
                var config = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(bundle, "config.json")).ConfigureAwait(false));
                var cgroupsPath = (string?)config?["linux"]?["cgroupsPath"];
                if (!string.IsNullOrEmpty(cgroupsPath) && cgroupsPath.Count(c => c == '/') >= 3)
                {
                    foreach (var hierarchy in Hierarchies())
                    {
                        var leaf = hierarchy + cgroupsPath;
                        foreach (var dir in (string[])[leaf, Path.GetDirectoryName(leaf)!])
                        {
                            try { Directory.Delete(dir); } catch (IOException) { } catch (UnauthorizedAccessException) { }
                        }
                    }
                }
                Directory.Delete(bundle, recursive: true);
            }
            catch (Exception)
            {
                // Best effort: an abandoned container must not fail an unrelated test.
            }
        }
    }

    private static List<string> MissingCgroupDirs(string cgroupsPath)
    {
        var parts = cgroupsPath.Split('/', StringSplitOptions.RemoveEmptyEntries);
        var result = new List<string>();
        foreach (var hierarchy in Hierarchies())
        {
            var dir = hierarchy;
            foreach (var part in parts)
            {
                dir = Path.Combine(dir, part);
                if (!Directory.Exists(dir))
                    result.Add(dir);
            }
        }
        return result;
    }

    // Every mounted hierarchy under /sys/fs/cgroup: the v2 tree and each v1 controller (runc's cgroupfs manager
    // creates the path in all of them). Symlinks such as cpu -> cpu,cpuacct are skipped to count each once.
    private static IEnumerable<string> Hierarchies()
    {
        if (File.Exists(Path.Combine(CgroupRoot, "cgroup.controllers")))
        {
            yield return CgroupRoot;
            yield break;
        }
        foreach (var dir in Directory.EnumerateDirectories(CgroupRoot))
        {
            var info = new DirectoryInfo(dir);
            if (info.LinkTarget is null)
                yield return dir;
        }
    }

    private static async Task<string> EnsureRootfsAsync(CancellationToken ct)
    {
        await RootfsGate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_rootfs is not null && File.Exists(Path.Combine(_rootfs, "bin", "busybox")))
                return _rootfs;
            var rootfs = Path.Combine(Path.GetTempPath(), "ebpf-runc", "rootfs-" + Environment.ProcessId + "-" + Guid.NewGuid().ToString("N")[..8]);
            foreach (var d in (string[])["bin", "etc", "tmp", "proc", "sys", "dev", "root", "data"])
                Directory.CreateDirectory(Path.Combine(rootfs, d));
            File.Copy("/bin/busybox", Path.Combine(rootfs, "bin", "busybox"));
            var list = (await HostProcess.RunAsync("/bin/busybox", ["--list"], ct: ct).ConfigureAwait(false)).EnsureSuccess("busybox --list");
            foreach (var applet in list.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (applet != "busybox" && !File.Exists(Path.Combine(rootfs, "bin", applet)))
                    File.CreateSymbolicLink(Path.Combine(rootfs, "bin", applet), "busybox");
            }
            await File.WriteAllTextAsync(Path.Combine(rootfs, "etc", "hostname"), "ebpf-test\n", ct).ConfigureAwait(false);
            await File.WriteAllTextAsync(Path.Combine(rootfs, "etc", "passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n", ct).ConfigureAwait(false);
            await File.WriteAllTextAsync(Path.Combine(rootfs, "etc", "group"), "root:x:0:\nnogroup:x:65534:\n", ct).ConfigureAwait(false);
            await File.WriteAllTextAsync(Path.Combine(rootfs, "etc", "hosts"), "127.0.0.1 localhost\n::1 localhost\n", ct).ConfigureAwait(false);
            _rootfs = rootfs;
            AppDomain.CurrentDomain.ProcessExit += (_, _) =>
            {
                try { Directory.Delete(rootfs, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            };
            return rootfs;
        }
        finally
        {
            RootfsGate.Release();
        }
    }

    private static async Task WriteConfigAsync(string bundle, string rootfs, string cgroupsPath, RuncContainerOptions options, CancellationToken ct)
    {
        // Start from runc's own default spec so every field runc expects is there, then edit.
        (await HostProcess.RunAsync("runc", ["spec", "--bundle", bundle], TimeSpan.FromSeconds(15), ct).ConfigureAwait(false)).EnsureSuccess("runc spec");
        var path = Path.Combine(bundle, "config.json");
        var config = JsonNode.Parse(await File.ReadAllTextAsync(path, ct).ConfigureAwait(false))!.AsObject();
        var process = config["process"]!.AsObject();
        process["terminal"] = false;
        process["args"] = new JsonArray(options.Args.Select(a => (JsonNode)JsonValue.Create(a)!).ToArray());
        process["cwd"] = "/";
        // The rootfs is shared by all containers of the test run: mount it read-only and give each a private /tmp.
        config["root"] = new JsonObject { ["path"] = rootfs, ["readonly"] = true };
        config["mounts"]!.AsArray().Add(new JsonObject
        {
            ["destination"] = "/tmp",
            ["type"] = "tmpfs",
            ["source"] = "tmpfs",
            ["options"] = new JsonArray("nosuid", "nodev", "mode=1777", "size=64m"),
        });
        foreach (var bind in options.BindMounts)
        {
            config["mounts"]!.AsArray().Add(new JsonObject
            {
                ["destination"] = bind.ContainerPath,
                ["type"] = "bind",
                ["source"] = bind.HostPath,
                ["options"] = new JsonArray("rbind", "rw"),
            });
        }
        var linux = config["linux"]!.AsObject();
        linux["cgroupsPath"] = cgroupsPath;
        if (options.HostNetwork)
        {
            var namespaces = linux["namespaces"]!.AsArray();
            foreach (var ns in namespaces.Where(n => (string?)n!["type"] == "network").ToArray())
                namespaces.Remove(ns);
        }
        await File.WriteAllTextAsync(path, config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }), ct).ConfigureAwait(false);
    }

    private static string SafeRead(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (IOException)
        {
            return "";
        }
    }

    private static string? FindExecutable(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin").Split(':')
            .Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);
}
