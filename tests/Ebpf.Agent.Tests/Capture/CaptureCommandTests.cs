using System.Text.Json;
using Ebpf.Agent.Capture;
using Ebpf.Events;

namespace Ebpf.Agent.Tests.Capture;

public sealed class CaptureCommandTests
{
    [Fact]
    public void Format_ExecInKubeletCgroup_ContainerIdentityFromPath()
    {
        string id = string.Concat(Enumerable.Repeat("ab", 32));
        var exec = new ExecEvent { Tgid = 42, Tid = 42, CgroupId = 7, Argv = ["sh", "-c", "echo hi"], Filename = "/bin/sh", Time = DateTimeOffset.UnixEpoch };

        using var json = JsonDocument.Parse(CaptureCommand.Format(exec, $"/kubepods/besteffort/pod0a1b2c3d-1111-2222-3333-444455556666/{id}"));

        Assert.Equal("Exec", json.RootElement.GetProperty("kind").GetString());
        Assert.Equal("0a1b2c3d-1111-2222-3333-444455556666", json.RootElement.GetProperty("podUid").GetString());
        Assert.Equal(id, json.RootElement.GetProperty("containerId").GetString());
        Assert.Equal(["sh", "-c", "echo hi"], json.RootElement.GetProperty("argv").EnumerateArray().Select(a => a.GetString()));
    }

    [Fact]
    public void Format_HostCgroup_NoContainerFields()
    {
        var exit = new ExitEvent { Tgid = 1, Tid = 1, CgroupId = 1, WaitStatus = 3 << 8, Time = DateTimeOffset.UnixEpoch };

        using var json = JsonDocument.Parse(CaptureCommand.Format(exit, "/system.slice/sshd.service"));

        Assert.False(json.RootElement.TryGetProperty("containerId", out _));
        Assert.Equal("/system.slice/sshd.service", json.RootElement.GetProperty("cgroup").GetString());
    }
}
