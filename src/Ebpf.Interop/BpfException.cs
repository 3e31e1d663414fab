using System.Runtime.InteropServices;

namespace Ebpf.Interop;

/// <summary>
/// A libbpf or kernel call failed. <see cref="Errno"/> is the positive errno; <see cref="LibbpfLog"/> holds the
/// last libbpf log lines seen before the failure (verifier output, attach errors), when any were captured.
/// </summary>
public sealed class BpfException : Exception
{
    public BpfException(string operation, int errno, string? libbpfLog = null)
        : base(Format(operation, errno, libbpfLog))
    {
        Operation = operation;
        Errno = errno;
        LibbpfLog = libbpfLog;
    }

    public string Operation { get; }
    public int Errno { get; }
    public string? LibbpfLog { get; }

    private static string Format(string operation, int errno, string? log)
    {
        var message = $"{operation} failed: errno {errno} ({Marshal.GetPInvokeErrorMessage(errno)})";
        return string.IsNullOrWhiteSpace(log) ? message : message + Environment.NewLine + "libbpf: " + log.TrimEnd();
    }
}
