using System.Text.Json.Nodes;

namespace Ebpf.Testing.KubeApi;

/// <summary>
/// Pod objects shaped as a real API server (v1.30, containerd) returns them from GET /api/v1/pods: a Deployment
/// pod with an exec liveness probe, an httpGet readiness probe, a preStop exec hook, an init container, full
/// status with containerStatuses (containerID "containerd://&lt;64 hex&gt;"). managedFields are left out, as
/// kubectl and informers with a field manager strip them.
/// </summary>
public static class KubePodTemplate
{
    private const string Template = """
    {
      "kind": "Pod",
      "apiVersion": "v1",
      "metadata": {
        "name": "web-7c5ddbdf54-x2x9q",
        "generateName": "web-7c5ddbdf54-",
        "namespace": "default",
        "uid": "8a6c3e2f-5b1d-4c2e-9f3a-1d2e3f4a5b6c",
        "resourceVersion": "1",
        "creationTimestamp": "2026-11-22T09:58:11Z",
        "labels": { "app": "web", "pod-template-hash": "7c5ddbdf54" },
        "annotations": { "kubectl.kubernetes.io/restartedAt": "2026-11-22T09:58:10Z" },
        "ownerReferences": [
          { "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7c5ddbdf54", "uid": "0b6f1c1e-8a57-4d0f-b3c1-6c7f8d9e0a1b", "controller": true, "blockOwnerDeletion": true }
        ]
      },
      "spec": {
        "volumes": [
          { "name": "kube-api-access-5xk2p", "projected": { "sources": [ { "serviceAccountToken": { "expirationSeconds": 3607, "path": "token" } }, { "configMap": { "name": "kube-root-ca.crt", "items": [ { "key": "ca.crt", "path": "ca.crt" } ] } } ], "defaultMode": 420 } }
        ],
        "initContainers": [
          {
            "name": "init-config",
            "image": "busybox:1.36",
            "command": [ "sh", "-c", "echo ready > /work/ready" ],
            "resources": {},
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "imagePullPolicy": "IfNotPresent"
          }
        ],
        "containers": [
          {
            "name": "web",
            "image": "nginx:1.27",
            "command": [ "nginx" ],
            "args": [ "-g", "daemon off;" ],
            "ports": [ { "containerPort": 80, "protocol": "TCP" } ],
            "resources": { "limits": { "memory": "128Mi" }, "requests": { "cpu": "50m", "memory": "64Mi" } },
            "volumeMounts": [ { "name": "kube-api-access-5xk2p", "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount" } ],
            "livenessProbe": { "exec": { "command": [ "cat", "/tmp/healthy" ] }, "initialDelaySeconds": 5, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3 },
            "readinessProbe": { "httpGet": { "path": "/", "port": 80, "scheme": "HTTP" }, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3 },
            "lifecycle": { "preStop": { "exec": { "command": [ "nginx", "-s", "quit" ] } } },
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "imagePullPolicy": "IfNotPresent"
          }
        ],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default",
        "serviceAccount": "default",
        "nodeName": "node-a",
        "securityContext": {},
        "schedulerName": "default-scheduler",
        "tolerations": [
          { "key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300 },
          { "key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300 }
        ],
        "priority": 0,
        "enableServiceLinks": true,
        "preemptionPolicy": "PreemptLowerPriority"
      },
      "status": {
        "phase": "Running",
        "conditions": [
          { "type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-22T09:58:13Z" },
          { "type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-22T09:58:14Z" },
          { "type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-22T09:58:16Z" },
          { "type": "ContainersReady", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-22T09:58:16Z" },
          { "type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-22T09:58:11Z" }
        ],
        "hostIP": "172.18.0.2",
        "hostIPs": [ { "ip": "172.18.0.2" } ],
        "podIP": "10.244.1.17",
        "podIPs": [ { "ip": "10.244.1.17" } ],
        "startTime": "2026-11-22T09:58:11Z",
        "initContainerStatuses": [
          {
            "name": "init-config",
            "state": { "terminated": { "exitCode": 0, "reason": "Completed", "startedAt": "2026-11-22T09:58:13Z", "finishedAt": "2026-11-22T09:58:13Z", "containerID": "containerd://INITID" } },
            "lastState": {},
            "ready": true,
            "restartCount": 0,
            "image": "docker.io/library/busybox:1.36",
            "imageID": "docker.io/library/busybox@sha256:9ae97d36d26566ff84e8893c64a6dc4fe8ca6d1144bf5b87b2b85a32def253c7",
            "containerID": "containerd://INITID",
            "started": false
          }
        ],
        "containerStatuses": [
          {
            "name": "web",
            "state": { "running": { "startedAt": "2026-11-22T09:58:15Z" } },
            "lastState": {},
            "ready": true,
            "restartCount": 0,
            "image": "docker.io/library/nginx:1.27",
            "imageID": "docker.io/library/nginx@sha256:124b44bfc9ccd1f3cedf4b592d4d1e8bddb78b51ec2ed5056c52d3692baebc19",
            "containerID": "containerd://WEBID",
            "started": true
          }
        ],
        "qosClass": "Burstable"
      }
    }
    """;

    /// <summary>
    /// A pod from the template. <paramref name="containerId"/> and <paramref name="initContainerId"/> are the
    /// 64-hex runtime ids (random when null); pass <c>containerId: ""</c> for a pod whose container has not started
    /// (no containerID in status yet, state waiting).
    /// </summary>
    public static JsonObject Create(string @namespace, string name, string nodeName, string? uid = null, string? containerId = null,
        string? initContainerId = null, IReadOnlyDictionary<string, string>? labels = null)
    {
        var pod = JsonNode.Parse(Template)!.AsObject();
        var metadata = pod["metadata"]!.AsObject();
        metadata["name"] = name;
        metadata["namespace"] = @namespace;
        metadata["uid"] = uid ?? Guid.NewGuid().ToString();
        if (labels is not null)
        {
            var labelObject = new JsonObject();
            foreach (var (k, v) in labels) labelObject[k] = v;
            metadata["labels"] = labelObject;
        }
        pod["spec"]!["nodeName"] = nodeName;
        containerId ??= NewContainerId();
        initContainerId ??= NewContainerId();
        var init = pod["status"]!["initContainerStatuses"]![0]!;
        init["containerID"] = "containerd://" + initContainerId;
        init["state"]!["terminated"]!["containerID"] = "containerd://" + initContainerId;
        var web = pod["status"]!["containerStatuses"]![0]!.AsObject();
        if (containerId.Length == 0)
        {
            web.Remove("containerID");
            web["state"] = new JsonObject { ["waiting"] = new JsonObject { ["reason"] = "ContainerCreating" } };
            web["ready"] = false;
            web["started"] = false;
        }
        else
        {
            web["containerID"] = "containerd://" + containerId;
        }
        return pod;
    }

    /// <summary>
    /// An ebpf-agent DaemonSet pod on <paramref name="nodeName"/>: namespace ebpf-system, label
    /// app.kubernetes.io/name=ebpf-agent (deploy/), as `kubectl exectrace` looks them up.
    /// </summary>
    public static JsonObject CreateAgent(string nodeName, string? name = null, string phase = "Running")
    {
        var pod = Create("ebpf-system", name ?? "ebpf-agent-" + Guid.NewGuid().ToString("N")[..5], nodeName,
            labels: new Dictionary<string, string> { ["app.kubernetes.io/name"] = "ebpf-agent", ["app.kubernetes.io/component"] = "agent" });
        pod["status"]!["phase"] = phase;
        return pod;
    }

    /// <summary>
    /// An agent pod as the DaemonSet (deploy/base/daemonset.yaml) creates it, reachable at <paramref name="podIp"/>
    /// with its webhook on <paramref name="webhookPort"/> (the container port named "webhook"), in <paramref name="namespace"/>.
    /// </summary>
    public static JsonObject CreateAgent(string nodeName, string podIp, int webhookPort, string @namespace = "ebpf-system", string? name = null, string phase = "Running")
    {
        var pod = CreateAgent(nodeName, name, phase);
        pod["metadata"]!["namespace"] = @namespace;
        var container = pod["spec"]!["containers"]![0]!.AsObject();
        container["name"] = "agent";
        container["image"] = "ghcr.io/ebpf/ebpf-agent:latest";
        container["ports"] = new JsonArray(
            new JsonObject { ["name"] = "grpc", ["containerPort"] = 50051, ["protocol"] = "TCP" },
            new JsonObject { ["name"] = "webhook", ["containerPort"] = webhookPort, ["protocol"] = "TCP" },
            new JsonObject { ["name"] = "metrics", ["containerPort"] = 9090, ["protocol"] = "TCP" });
        pod["status"]!["podIP"] = podIp;
        pod["status"]!["podIPs"] = new JsonArray(new JsonObject { ["ip"] = podIp });
        return pod;
    }

    public static string NewContainerId() => Convert.ToHexStringLower(Guid.NewGuid().ToByteArray()) + Convert.ToHexStringLower(Guid.NewGuid().ToByteArray());

    /// <summary>Sets status.containerStatuses[name].containerID (and state running): the container started.</summary>
    public static void SetContainerStarted(JsonObject pod, string containerName, string containerId)
    {
        foreach (var status in pod["status"]!["containerStatuses"]!.AsArray())
        {
            if ((string?)status!["name"] != containerName) continue;
            status["containerID"] = "containerd://" + containerId;
            status["state"] = new JsonObject { ["running"] = new JsonObject { ["startedAt"] = "2026-11-22T09:58:15Z" } };
            status["ready"] = true;
            status["started"] = true;
        }
    }
}
