using System.Net;
using System.Net.Sockets;
using Ebpf.Events;
using Ebpf.Testing.Runc;

namespace Ebpf.Interop.Tests;

/// <summary>Real kernel, real runc: what a container does shows up as the right records, and only its records.</summary>
[Collection(KernelCollection.Name)]
public sealed class KernelCaptureEventTests(CaptureFixture fixture)
{
    private const int ECONNREFUSED = 111;
    private const int ENOENT = 2;

    [KernelFact]
    public async Task Exec_RuncExecKnownArgv_ReportsArgvCgroupAndRuntimeParentOutsideContainer()
    {
        await using var container = await RuncContainer.StartAsync();
        using var events = fixture.SubscribeCgroup(container.CgroupId);
        var marker = "exec-" + Guid.NewGuid().ToString("N");

        // The sleep keeps `runc exec` (the parent) alive while we look at it.
        var exec = container.ShellAsync($"sleep 1; echo {marker}");
        var ev = await events.WaitForAsync<ExecEvent>(e => e.Argv.Contains($"sleep 1; echo {marker}"));

        Assert.Equal(["/bin/sh", "-c", $"sleep 1; echo {marker}"], ev.Argv);
        Assert.Equal("/bin/sh", ev.Filename);
        Assert.Equal(container.CgroupId, ev.CgroupId);
        Assert.Equal(ev.Tgid, ev.Tid);
        Assert.StartsWith("runc:[2:INIT]", ev.PreviousComm, StringComparison.Ordinal);
        Assert.True(ev.PreviousImageWasRuntime);
        Assert.True(ev.StartBootTimeNs > 0);
        Assert.InRange(ev.Time, DateTimeOffset.UtcNow.AddSeconds(-10), DateTimeOffset.UtcNow.AddSeconds(1));
        // The parent is the host-side runc process: not a member of the container's cgroup.
        Assert.NotEqual(0, ev.ParentTgid);
        Assert.DoesNotContain(ev.ParentTgid, container.ProcessIds());
        var parentCgroup = await File.ReadAllTextAsync($"/proc/{ev.ParentTgid}/cgroup");
        Assert.DoesNotContain(container.Id, parentCgroup, StringComparison.Ordinal);

        var result = await exec;
        Assert.Equal(0, result.ExitCode);
        Assert.Contains(marker, result.StandardOutput, StringComparison.Ordinal);
    }

    [KernelFact]
    public async Task ForkExit_InContainerChildExits3_ReportsForkAndExitWithCode()
    {
        await using var container = await RuncContainer.StartAsync();
        using var events = fixture.SubscribeCgroup(container.CgroupId);
        var marker = "fork-" + Guid.NewGuid().ToString("N");

        var result = await container.ShellAsync($"( exit 3 ); echo {marker} $?");
        Assert.Contains($"{marker} 3", result.StandardOutput, StringComparison.Ordinal);

        var shell = await events.WaitForAsync<ExecEvent>(e => e.Argv.Any(a => a.Contains(marker, StringComparison.Ordinal)));
        var fork = await events.WaitForAsync<ForkEvent>(f => f.ParentTgid == shell.Tgid && !f.IsThread);
        Assert.Equal(shell.Tgid, fork.Tgid);
        Assert.Equal(fork.ChildTgid, fork.ChildPid);
        Assert.Equal(container.CgroupId, fork.ChildCgroupId);
        var exit = await events.WaitForAsync<ExitEvent>(x => x.Tgid == fork.ChildTgid);
        Assert.Equal(3, exit.ExitCode);
        Assert.Null(exit.TermSignal);
        Assert.Equal(fork.ChildStartBootTimeNs, exit.StartBootTimeNs);
        var shellExit = await events.WaitForAsync<ExitEvent>(x => x.Tgid == shell.Tgid);
        Assert.Equal(0, shellExit.ExitCode);
    }

    [KernelFact]
    public async Task Connect_TcpV4V6UnixAndClosedPort_ReportsAddressPortPathAndResult()
    {
        using var listener4 = new TcpListener(IPAddress.Loopback, 0);
        listener4.Start();
        using var listener6 = new TcpListener(IPAddress.IPv6Loopback, 0);
        listener6.Start();
        var port4 = ((IPEndPoint)listener4.LocalEndpoint).Port;
        var port6 = ((IPEndPoint)listener6.LocalEndpoint).Port;
        var closedPort = ClosedPort();
        // Accept and close at once: nc sees EOF and exits.
        using var stopAccepting = new CancellationTokenSource();
        var accepting = Task.WhenAll(AcceptAndCloseAsync(listener4, stopAccepting.Token), AcceptAndCloseAsync(listener6, stopAccepting.Token));

        // busybox `logger` connects (syslog(3)) to /dev/log: a datagram socket the test binds on the host and
        // bind-mounts into the container.
        var socketDir = Directory.CreateTempSubdirectory("ebpf-unix-");
        var socketPath = Path.Combine(socketDir.FullName, "log");
        using var unixSocket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        unixSocket.Bind(new UnixDomainSocketEndPoint(socketPath));
        try
        {
            await using var container = await RuncContainer.StartAsync(new RuncContainerOptions
            {
                BindMounts = { new RuncBindMount(socketPath, "/dev/log") },
            });
            using var events = fixture.SubscribeCgroup(container.CgroupId);

            await container.ShellAsync($"echo hi | nc -w 1 127.0.0.1 {port4}; echo hi | nc -w 1 ::1 {port6}; nc -w 1 127.0.0.1 {closedPort} </dev/null; logger unix-{Guid.NewGuid():N}", TimeSpan.FromSeconds(20));

            var v4 = await events.WaitForAsync<ConnectEvent>(c => c.Family == SocketFamily.Inet && c.Port == port4);
            Assert.Equal(IPAddress.Loopback, v4.Address);
            Assert.Equal(0, v4.Result);
            Assert.Equal(container.CgroupId, v4.CgroupId);
            Assert.True(v4.Fd >= 0);

            var v6 = await events.WaitForAsync<ConnectEvent>(c => c.Family == SocketFamily.Inet6 && c.Port == port6);
            Assert.Equal(IPAddress.IPv6Loopback, v6.Address);
            Assert.Equal(0, v6.Result);

            var refused = await events.WaitForAsync<ConnectEvent>(c => c.Family == SocketFamily.Inet && c.Port == closedPort);
            Assert.Equal(-ECONNREFUSED, refused.Result);

            var unix = await events.WaitForAsync<ConnectEvent>(c => c.Family == SocketFamily.Unix);
            Assert.Equal("/dev/log", unix.UnixPath);
            Assert.Equal(0, unix.Result);
            Assert.Null(unix.Address);
        }
        finally
        {
            await stopAccepting.CancelAsync();
            await accepting;
            unixSocket.Dispose();
            socketDir.Delete(recursive: true);
        }
    }

    [KernelFact]
    public async Task FileOpen_ExistingMissingAndCreatedFile_ReportsPathFlagsAndResult()
    {
        await using var container = await RuncContainer.StartAsync();
        using var events = fixture.SubscribeCgroup(container.CgroupId);
        var missing = "/etc/missing-" + Guid.NewGuid().ToString("N");
        var created = "/tmp/created-" + Guid.NewGuid().ToString("N");

        await container.ShellAsync($"cat /etc/hostname; cat {missing}; echo x > {created}");

        var existing = await events.WaitForAsync<FileOpenEvent>(o => o.Path == "/etc/hostname");
        Assert.True(existing.Result >= 0, $"open result {existing.Result}");
        Assert.Equal(0, existing.Flags & 3); // O_RDONLY
        Assert.Equal(container.CgroupId, existing.CgroupId);

        var notFound = await events.WaitForAsync<FileOpenEvent>(o => o.Path == missing);
        Assert.Equal(-ENOENT, notFound.Result);

        var write = await events.WaitForAsync<FileOpenEvent>(o => o.Path == created);
        Assert.True(write.Result >= 0);
        const int O_WRONLY = 0x1, O_CREAT = 0x40, O_TRUNC = 0x200;
        Assert.Equal(O_WRONLY | O_CREAT | O_TRUNC, write.Flags & (O_WRONLY | O_CREAT | O_TRUNC | 0x2));
    }

    [KernelFact]
    public async Task Filter_HostProcessOutsideContainers_IsNotCaptured()
    {
        await using var container = await RuncContainer.StartAsync();
        var marker = "host-" + Guid.NewGuid().ToString("N");
        using var anywhere = fixture.Subscribe(e => e is ExecEvent x && x.Argv.Any(a => a.Contains(marker, StringComparison.Ordinal)));
        using var inContainer = fixture.SubscribeCgroup(container.CgroupId);

        // Same argv on the host and in the container; only the container's must arrive.
        (await HostProcess.RunAsync("/bin/busybox", ["true", marker])).EnsureSuccess("host true");
        await container.ExecAsync(["/bin/true", marker]);

        var seen = await anywhere.WaitForAsync<ExecEvent>(_ => true);
        Assert.Equal(container.CgroupId, seen.CgroupId);
        await Task.Delay(500);
        Assert.All(anywhere.Seen, e => Assert.Equal(container.CgroupId, e.CgroupId));
        Assert.Single(anywhere.Seen);
    }

    [KernelFact]
    public async Task AddContainerRoot_AtRuntime_CapturesTreeThatWasFilteredOut()
    {
        var rootName = "ebpf-root-" + Guid.NewGuid().ToString("N")[..12];
        var id = RuncContainer.NewContainerId();
        await using var container = await RuncContainer.StartAsync(new RuncContainerOptions { CgroupsPath = $"/{rootName}/pod{Guid.NewGuid()}/{id}" });
        using var events = fixture.SubscribeCgroup(container.CgroupId);
        var rootId = RuncContainer.ReadInode(Path.Combine(RuncContainer.V2Mount, rootName));

        await container.ExecAsync(["/bin/true", "before-root"]);
        await Task.Delay(500);
        Assert.DoesNotContain(events.Seen, e => e is ExecEvent);

        fixture.Capture.AddContainerRoot(rootId, "/" + rootName);
        try
        {
            Assert.Contains(rootId, fixture.Capture.ContainerRoots.Keys);
            await container.ExecAsync(["/bin/true", "after-root"]);
            var ev = await events.WaitForAsync<ExecEvent>(e => e.Argv.Contains("after-root"));
            Assert.Equal(container.CgroupId, ev.CgroupId);
        }
        finally
        {
            Assert.True(fixture.Capture.RemoveContainerRoot(rootId));
        }
    }

    [KernelFact]
    public void Start_AllProgramsAttached_AsDeclaredBySection()
    {
        var attached = fixture.Capture.AttachedPrograms;
        Assert.Contains(attached, p => p.Name == "handle_exec" && p.Section == "raw_tracepoint/sched_process_exec");
        Assert.Contains(attached, p => p.Section == "tracepoint/syscalls/sys_exit_connect");
        Assert.Contains(attached, p => p.Section == "tracepoint/syscalls/sys_exit_openat");
        Assert.True(attached.Count >= 10, $"{attached.Count} programs attached");
        Assert.NotEmpty(fixture.Capture.ContainerRoots);
    }

    private static async Task AcceptAndCloseAsync(TcpListener listener, CancellationToken ct)
    {
        try
        {
            while (true)
            {
                using var client = await listener.AcceptTcpClientAsync(ct);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private static int ClosedPort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return port;
    }
}
