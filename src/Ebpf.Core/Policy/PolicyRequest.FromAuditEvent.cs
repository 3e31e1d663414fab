using Ebpf.Core.Audit;

namespace Ebpf.Core.Policy;

public readonly partial record struct PolicyRequest
{
    /// <summary>
    /// The attributes the API server evaluated its policy with when it produced <paramref name="auditEvent"/>.
    /// </summary>
    /// <remarks>
    /// The user is <c>user</c>, never <c>impersonatedUser</c>: in the handler chain
    /// (k8s.io/apiserver/pkg/server/config.go DefaultBuildHandlerChain) WithAudit runs before WithImpersonation,
    /// so the policy sees the authenticated identity. <c>objectRef</c> is only set for resource requests
    /// (k8s.io/apiserver/pkg/endpoints/filters/audit.go), so its presence is IsResourceRequest. The path is
    /// the request URI without its query, as authorizer.Attributes.GetPath returns it.
    /// </remarks>
    public static PolicyRequest FromAuditEvent(AuditEvent auditEvent)
    {
        var objectRef = auditEvent.ObjectRef;
        var uri = auditEvent.RequestUri ?? "";
        var query = uri.IndexOf('?', StringComparison.Ordinal);
        return new PolicyRequest
        {
            User = auditEvent.User?.Username,
            Groups = auditEvent.User?.Groups,
            Verb = auditEvent.Verb ?? "",
            IsResourceRequest = objectRef is not null,
            ApiGroup = objectRef?.ApiGroup ?? "",
            ApiVersion = objectRef?.ApiVersion ?? "",
            Resource = objectRef?.Resource ?? "",
            Subresource = objectRef?.Subresource ?? "",
            Namespace = objectRef?.Namespace ?? "",
            Name = objectRef?.Name ?? "",
            Path = query < 0 ? uri : uri[..query],
        };
    }
}
