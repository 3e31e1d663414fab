using System.Net;

namespace Ebpf.Kubernetes.Api;

/// <summary>The API server answered with an error (or something that is not the API).</summary>
public sealed class KubeApiException : Exception
{
    public KubeApiException(string message) : base(message) { }
    public KubeApiException(string message, Exception inner) : base(message, inner) { }

    public KubeApiException(HttpStatusCode statusCode, Status? status, string message) : base(message)
    {
        StatusCode = statusCode;
        ApiStatus = status;
    }

    public HttpStatusCode? StatusCode { get; }
    public Status? ApiStatus { get; }
    /// <summary>410 Gone: the resourceVersion is too old; the caller must list again.</summary>
    public bool IsGone => StatusCode == HttpStatusCode.Gone || ApiStatus?.Code == 410;
}
