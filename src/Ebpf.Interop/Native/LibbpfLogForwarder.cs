using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;

namespace Ebpf.Interop.Native;

/// <summary>
/// Routes libbpf's log (libbpf_set_print) to an <see cref="ILogger"/> and keeps the last lines so a failing call
/// can put them into its exception. libbpf hands us a format string and a va_list; on x86_64 (System V) a va_list
/// parameter decays to a pointer, which vsnprintf accepts as is. Elsewhere we log the unformatted format string.
/// The callback never throws: an exception cannot cross back into native code.
/// </summary>
internal static unsafe class LibbpfLogForwarder
{
    private const int RecentCapacity = 32;
    private static readonly Lock Gate = new();
    private static readonly Queue<string> Recent = new();
    private static ILogger? _logger;
    private static int _installed;

    internal static void Install(ILogger? logger)
    {
        if (logger is not null)
            Volatile.Write(ref _logger, logger);
        if (Interlocked.Exchange(ref _installed, 1) == 0)
            LibBpf.libbpf_set_print(&Print);
    }

    /// <summary>The lines logged since the last call (warnings and errors), joined; null when none.</summary>
    internal static string? TakeRecent()
    {
        lock (Gate)
        {
            if (Recent.Count == 0)
                return null;
            var text = string.Join(Environment.NewLine, Recent);
            Recent.Clear();
            return text;
        }
    }

    internal static void ClearRecent()
    {
        lock (Gate)
            Recent.Clear();
    }

    [UnmanagedCallersOnly]
    private static int Print(int level, byte* format, IntPtr args)
    {
        try
        {
            string line;
            if (RuntimeInformation.ProcessArchitecture == Architecture.X64)
            {
                const int size = 2048;
                var buffer = stackalloc byte[size];
                var written = LibC.vsnprintf(buffer, size, format, args);
                line = written < 0 ? Marshal.PtrToStringUTF8((IntPtr)format) ?? "" : Marshal.PtrToStringUTF8((IntPtr)buffer) ?? "";
            }
            else
            {
                line = Marshal.PtrToStringUTF8((IntPtr)format) ?? "";
            }
            line = line.TrimEnd('\n');
            // libbpf levels: 0 warn, 1 info, 2 debug.
            if (level <= 1)
            {
                lock (Gate)
                {
                    if (Recent.Count == RecentCapacity)
                        Recent.Dequeue();
                    Recent.Enqueue(line);
                }
            }
            var logger = Volatile.Read(ref _logger);
            if (logger is not null)
            {
                var logLevel = level switch { 0 => LogLevel.Warning, 1 => LogLevel.Debug, _ => LogLevel.Trace };
                if (logger.IsEnabled(logLevel))
                    InteropLog.Libbpf(logger, logLevel, line);
            }
        }
        catch
        {
            // Swallowed on purpose: throwing here would unwind through libbpf's C frames.
        }
        return 0;
    }
}
