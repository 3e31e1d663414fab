using Ebpf.Core.Identity;

namespace Ebpf.Core.Tests.Identity;

public class KubeletCgroupPathTests
{
    private const string Uid = "8a6c3e2f-5b1d-4c2e-9f3a-1d2e3f4a5b6c";
    private const string UidUnderscored = "8a6c3e2f_5b1d_4c2e_9f3a_1d2e3f4a5b6c";
    private const string StaticUid = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
    private const string Id = "4c01db0b339c8c2f1a7c3e6a1f5e9d2b7a3c5e8f0a1b2c3d4e5f60718293a4b5";

    public static TheoryData<string, QosClass, string, ContainerRuntime> Containers => new()
    {
        // cgroupfs driver
        { $"/kubepods/pod{Uid}/{Id}", QosClass.Guaranteed, Uid, ContainerRuntime.Unknown },
        { $"/kubepods/burstable/pod{Uid}/{Id}", QosClass.Burstable, Uid, ContainerRuntime.Unknown },
        { $"/kubepods/besteffort/pod{Uid}/{Id}", QosClass.BestEffort, Uid, ContainerRuntime.Unknown },
        { $"/kubepods/besteffort/pod{Uid}/crio-{Id}", QosClass.BestEffort, Uid, ContainerRuntime.CriO },
        // systemd driver
        { $"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UidUnderscored}.slice/cri-containerd-{Id}.scope", QosClass.Burstable, Uid, ContainerRuntime.Containerd },
        { $"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UidUnderscored}.slice/cri-containerd-{Id}.scope", QosClass.BestEffort, Uid, ContainerRuntime.Containerd },
        { $"/kubepods.slice/kubepods-pod{UidUnderscored}.slice/cri-containerd-{Id}.scope", QosClass.Guaranteed, Uid, ContainerRuntime.Containerd },
        { $"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UidUnderscored}.slice/crio-{Id}.scope", QosClass.Burstable, Uid, ContainerRuntime.CriO },
        { $"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UidUnderscored}.slice/docker-{Id}.scope", QosClass.Burstable, Uid, ContainerRuntime.Docker },
        // crun's extra sub-cgroup, and cgroups a container makes inside its own: the container's
        { $"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UidUnderscored}.slice/crio-{Id}.scope/container", QosClass.Burstable, Uid, ContainerRuntime.CriO },
        { $"/kubepods/burstable/pod{Uid}/{Id}/init.scope", QosClass.Burstable, Uid, ContainerRuntime.Unknown },
        // static pods: the UID is the 32-hex config hash
        { $"/kubepods/burstable/pod{StaticUid}/{Id}", QosClass.Burstable, StaticUid, ContainerRuntime.Unknown },
        { $"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{StaticUid}.slice/cri-containerd-{Id}.scope", QosClass.Burstable, StaticUid, ContainerRuntime.Containerd },
        // prefixes: kind and nested kubelets
        { $"/kubelet/kubepods/besteffort/pod{Uid}/{Id}", QosClass.BestEffort, Uid, ContainerRuntime.Unknown },
        { $"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UidUnderscored}.slice/cri-containerd-{Id}.scope", QosClass.BestEffort, Uid, ContainerRuntime.Containerd },
        { $"/system.slice/docker-0123.scope/kubepods/pod{Uid}/{Id}", QosClass.Guaranteed, Uid, ContainerRuntime.Unknown },
        // containerd SystemdCgroup=true with a cgroupfs kubelet: a literal "slice:prefix:id" directory
        { $"/kubepods-besteffort-pod{UidUnderscored}.slice:cri-containerd:{Id}", QosClass.BestEffort, Uid, ContainerRuntime.Containerd },
        { $"/kubepods/burstable/kubepods-burstable-pod{UidUnderscored}.slice:cri-containerd:{Id}", QosClass.Burstable, Uid, ContainerRuntime.Containerd },
        { $"/kubepods-pod{UidUnderscored}.slice:crio:{Id}", QosClass.Guaranteed, Uid, ContainerRuntime.CriO },
    };

    [Theory]
    [MemberData(nameof(Containers))]
    public void TryParse_ContainerPaths_ReturnQosPodAndContainer(string path, QosClass qos, string podUid, ContainerRuntime runtime)
    {
        Assert.True(KubeletCgroupPath.TryParse(path, out var container));
        Assert.Equal(new ContainerCgroup(podUid, Id, qos, runtime), container);
        Assert.Equal(KubeletCgroupKind.Container, KubeletCgroupPath.Parse(path, out _));
    }

    public static TheoryData<string, QosClass, string> Pods => new()
    {
        { $"/kubepods/pod{Uid}", QosClass.Guaranteed, Uid },
        { $"/kubepods/burstable/pod{Uid}/", QosClass.Burstable, Uid },
        { $"/kubepods/besteffort/pod{StaticUid}", QosClass.BestEffort, StaticUid },
        { $"/kubepods.slice/kubepods-pod{UidUnderscored}.slice", QosClass.Guaranteed, Uid },
        { $"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UidUnderscored}.slice", QosClass.BestEffort, Uid },
        { $"/kubelet/kubepods/burstable/pod{Uid}", QosClass.Burstable, Uid },
    };

    [Theory]
    [MemberData(nameof(Pods))]
    public void Parse_PodLevelPaths_ReturnPodWithoutContainer(string path, QosClass qos, string podUid)
    {
        Assert.Equal(KubeletCgroupKind.Pod, KubeletCgroupPath.Parse(path, out var pod));
        Assert.Equal(new ContainerCgroup(podUid, "", qos, ContainerRuntime.Unknown), pod);
        Assert.False(KubeletCgroupPath.TryParse(path, out _));
    }

    [Theory]
    [InlineData("")]
    [InlineData("/")]
    [InlineData("/system.slice/containerd.service")]
    [InlineData("/user.slice/user-0.slice/session-1.scope")]
    [InlineData("/kubepods")]
    [InlineData("/kubepods/burstable")]
    [InlineData("/kubepods.slice/kubepods-burstable.slice")]
    // cri-o's conmon is not a container
    [InlineData($"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UidUnderscored}.slice/crio-conmon-{Id}.scope")]
    [InlineData($"/kubepods/burstable/pod{Uid}/crio-conmon-{Id}")]
    // not under kubepods / wrong QoS names
    [InlineData($"/pods/burstable/pod{Uid}/{Id}")]
    [InlineData($"/kubepods/guaranteed/pod{Uid}/{Id}")]
    [InlineData($"/kubepods/burstable/extra/pod{Uid}/{Id}")]
    // malformed uids and ids
    [InlineData($"/kubepods/burstable/pod8a6c3e2f-5b1d-4c2e-9f3a-1d2e3f4a5b6/{Id}")]
    [InlineData($"/kubepods/burstable/pod8A6C3E2F-5B1D-4C2E-9F3A-1D2E3F4A5B6C/{Id}")]
    [InlineData($"/kubepods/burstable/pod8a6c3e2f-5b1d-4c2e-9f3a-1d2e3f4a5b6cx/{Id}")]
    [InlineData($"/kubepods/burstable/pod{UidUnderscored}/{Id}")]
    [InlineData($"/kubepods/burstable/pod{Uid}/4c01db0b339c")]
    [InlineData($"/kubepods/burstable/pod{Uid}/{Id}0")]
    [InlineData($"/kubepods/burstable/pod{Uid}/zz01db0b339c8c2f1a7c3e6a1f5e9d2b7a3c5e8f0a1b2c3d4e5f60718293a4b5")]
    [InlineData($"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UidUnderscored}.slice/runc-{Id}.scope")]
    [InlineData($"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UidUnderscored}.slice/cri-containerd-.scope")]
    [InlineData($"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{Uid}.slice/cri-containerd-{Id}.scope")]
    [InlineData($"/kubepods-besteffort-pod{UidUnderscored}.slice:cri-containerd:")]
    [InlineData($"/kubepods-besteffort-pod{UidUnderscored}.slice:runc:{Id}")]
    [InlineData($"/kubepods-besteffort-pod{UidUnderscored}.slice:")]
    [InlineData("//////")]
    [InlineData("pod/kubepods/pod/")]
    [InlineData("/kubepods/pod")]
    [InlineData("/kubepods.slice/-pod.slice")]
    public void Parse_OtherPaths_ReturnNone(string path)
    {
        Assert.Equal(KubeletCgroupKind.None, KubeletCgroupPath.Parse(path, out var result));
        Assert.Null(result);
        Assert.False(KubeletCgroupPath.TryParse(path, out _));
    }

    [Fact]
    public void Parse_RandomGarbage_NeverThrows()
    {
        var random = new Random(12345);
        const string alphabet = "/-_.:abcdefkubepodsliceor0123456789";
        for (int i = 0; i < 20_000; i++)
        {
            var chars = new char[random.Next(0, 200)];
            for (int j = 0; j < chars.Length; j++) chars[j] = alphabet[random.Next(alphabet.Length)];
            KubeletCgroupPath.Parse(new string(chars), out _);
        }
        // Mutations of a valid path: every prefix parses without throwing, and only full container paths are containers.
        string valid = $"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UidUnderscored}.slice/cri-containerd-{Id}.scope";
        for (int n = 0; n < valid.Length; n++)
            Assert.NotEqual(KubeletCgroupKind.Container, KubeletCgroupPath.Parse(valid[..n], out _));
    }
}
