using System.Text.Json;
using System.Text.Json.Serialization;

namespace Ebpf.Kubernetes.Api;

// The subset of the core/v1 wire model we read (k8s.io/api/core/v1/types.go). Unknown fields are ignored;
// everything is nullable because the API omits empty fields.

public sealed class ObjectMeta
{
    public string? Name { get; set; }
    public string? Namespace { get; set; }
    public string? Uid { get; set; }
    public string? ResourceVersion { get; set; }
    public Dictionary<string, string>? Labels { get; set; }
    /// <summary>Set once deletion was requested: the pod is terminating.</summary>
    public string? DeletionTimestamp { get; set; }
    public Dictionary<string, string>? Annotations { get; set; }
    public List<OwnerReference>? OwnerReferences { get; set; }
}

public sealed class OwnerReference
{
    public string? Kind { get; set; }
    public string? Name { get; set; }
    public string? Uid { get; set; }
    public bool? Controller { get; set; }
}

public sealed class ListMeta
{
    public string? ResourceVersion { get; set; }
    public string? Continue { get; set; }
}

public sealed class ExecAction
{
    public List<string>? Command { get; set; }
}

public sealed class Probe
{
    public ExecAction? Exec { get; set; }
}

public sealed class LifecycleHandler
{
    public ExecAction? Exec { get; set; }
}

public sealed class Lifecycle
{
    public LifecycleHandler? PostStart { get; set; }
    public LifecycleHandler? PreStop { get; set; }
}

public sealed class Container
{
    public string? Name { get; set; }
    public string? Image { get; set; }
    public List<string>? Command { get; set; }
    public List<string>? Args { get; set; }
    public Probe? LivenessProbe { get; set; }
    public Probe? ReadinessProbe { get; set; }
    public Probe? StartupProbe { get; set; }
    public Lifecycle? Lifecycle { get; set; }
    public List<ContainerPortSpec>? Ports { get; set; }
    /// <summary>Ephemeral containers only.</summary>
    public string? TargetContainerName { get; set; }
}

public sealed class ContainerPortSpec
{
    public string? Name { get; set; }
    public int? ContainerPort { get; set; }
}

public sealed class PodSpec
{
    public string? NodeName { get; set; }
    public string? ServiceAccountName { get; set; }
    public bool? HostNetwork { get; set; }
    public List<Container>? Containers { get; set; }
    public List<Container>? InitContainers { get; set; }
    public List<Container>? EphemeralContainers { get; set; }
}

public sealed class PodIP
{
    public string? Ip { get; set; }
}

public sealed class ContainerState
{
    public JsonElement? Waiting { get; set; }
    public JsonElement? Running { get; set; }
    public JsonElement? Terminated { get; set; }
}

public sealed class ContainerStatus
{
    public string? Name { get; set; }
    public string? ContainerID { get; set; }
    public ContainerState? State { get; set; }
}

public sealed class PodStatus
{
    public string? Phase { get; set; }
    public string? PodIP { get; set; }
    public List<PodIP>? PodIPs { get; set; }
    public List<ContainerStatus>? ContainerStatuses { get; set; }
    public List<ContainerStatus>? InitContainerStatuses { get; set; }
    public List<ContainerStatus>? EphemeralContainerStatuses { get; set; }
}

public sealed class Pod
{
    public string? Kind { get; set; }
    public string? ApiVersion { get; set; }
    public ObjectMeta? Metadata { get; set; }
    public PodSpec? Spec { get; set; }
    public PodStatus? Status { get; set; }
}

/// <summary>PodList with items kept raw: one malformed pod must not cost the others.</summary>
public sealed class RawPodList
{
    public string? Kind { get; set; }
    public ListMeta? Metadata { get; set; }
    public List<JsonElement>? Items { get; set; }
}

/// <summary>metav1.Status: the body of API errors and of watch ERROR events.</summary>
public sealed class Status
{
    public string? Kind { get; set; }
    [JsonPropertyName("status")]
    public string? Outcome { get; set; }
    public string? Message { get; set; }
    public string? Reason { get; set; }
    public int? Code { get; set; }
}

/// <summary>One line of a watch stream: {"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": ...}.</summary>
public sealed class RawWatchEvent
{
    public string? Type { get; set; }
    public JsonElement Object { get; set; }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(Pod))]
[JsonSerializable(typeof(RawPodList))]
[JsonSerializable(typeof(Status))]
[JsonSerializable(typeof(RawWatchEvent))]
internal sealed partial class KubeJsonContext : JsonSerializerContext;
