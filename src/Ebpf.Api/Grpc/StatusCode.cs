namespace Ebpf.Api.Grpc;

/// <summary>gRPC status codes (https://github.com/grpc/grpc/blob/master/doc/statuscodes.md); values are the wire values.</summary>
public enum StatusCode
{
    OK = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

/// <summary>
/// A gRPC status as an exception. Handlers throw it to end a call with <see cref="StatusCode"/> and <see cref="Detail"/>;
/// the client throws it when a call ends with a non-OK status.
/// </summary>
public sealed class GrpcStatusException : Exception
{
    public GrpcStatusException(StatusCode statusCode, string detail)
        : base($"Status(StatusCode=\"{statusCode}\", Detail=\"{detail}\")")
    {
        StatusCode = statusCode;
        Detail = detail;
    }

    public GrpcStatusException(StatusCode statusCode, string detail, Exception innerException)
        : base($"Status(StatusCode=\"{statusCode}\", Detail=\"{detail}\")", innerException)
    {
        StatusCode = statusCode;
        Detail = detail;
    }

    public StatusCode StatusCode { get; }

    /// <summary>The status message sent as <c>grpc-message</c>; safe to show to the caller.</summary>
    public string Detail { get; }
}
