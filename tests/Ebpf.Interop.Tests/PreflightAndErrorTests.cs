using Ebpf.Events;

namespace Ebpf.Interop.Tests;

public sealed class PreflightAndErrorTests
{
    [Fact]
    public void MissingCapabilities_RootCapEff_ReportsNone()
    {
        Assert.Empty(KernelPreflight.MissingCapabilities("Name:\tx\nCapEff:\t000001ffffffffff\n"));
    }

    [Fact]
    public void MissingCapabilities_OnlyCapBpf_NamesCapPerfmon()
    {
        var capBpfOnly = (1UL << 39).ToString("x16");
        Assert.Equal(["CAP_PERFMON"], KernelPreflight.MissingCapabilities($"CapEff:\t{capBpfOnly}\n"));
    }

    [Fact]
    public void MissingCapabilities_Unprivileged_NamesBoth()
    {
        Assert.Equal(["CAP_BPF", "CAP_PERFMON"], KernelPreflight.MissingCapabilities("CapEff:\t0000000000000000\n"));
    }

    [Fact]
    public void MissingCapabilities_SysAdminOnly_IsEnough()
    {
        Assert.Empty(KernelPreflight.MissingCapabilities($"CapEff:\t{(1UL << 21):x16}\n"));
    }

    [Fact]
    public void MissingCapabilities_NoCapEffLine_SaysUnreadable()
    {
        Assert.Contains("unreadable", Assert.Single(KernelPreflight.MissingCapabilities("Name:\tx\n")), StringComparison.Ordinal);
    }

    [KernelFact]
    public void Run_ThisHost_ReportsNoProblemsAndTracefsIsMounted()
    {
        var problems = KernelPreflight.Run();
        Assert.True(problems.Count == 0, string.Join("; ", problems.Select(p => p.Message)));
        Assert.True(Directory.Exists("/sys/kernel/tracing/events/syscalls"));
    }

    public static TheoryData<Action<KernelCaptureOptions>, string> BadOptions => new()
    {
        { o => o.RingBufferBytes = 3 * 4096, nameof(KernelCaptureOptions.RingBufferBytes) },
        { o => o.RingBufferBytes = 1024, nameof(KernelCaptureOptions.RingBufferBytes) },
        { o => o.WakeupThresholdBytes = o.RingBufferBytes, nameof(KernelCaptureOptions.WakeupThresholdBytes) },
        { o => o.PollTimeoutMs = 0, nameof(KernelCaptureOptions.PollTimeoutMs) },
        { o => o.ChannelCapacity = 0, nameof(KernelCaptureOptions.ChannelCapacity) },
        { o => o.FilterMode = (CaptureFilterMode)7, nameof(KernelCaptureOptions.FilterMode) },
        { o => o.FilePathPrefixes = ["/a", "/b", "/c", "/d", "/e"], nameof(KernelCaptureOptions.FilePathPrefixes) },
        { o => o.FilePathPrefixes = ["/" + new string('x', 63)], nameof(KernelCaptureOptions.FilePathPrefixes) },
        { o => o.FilePathPrefixes = [""], nameof(KernelCaptureOptions.FilePathPrefixes) },
    };

    [Theory]
    [MemberData(nameof(BadOptions))]
    public void Start_BadOption_ThrowsArgumentExceptionNamingIt(Action<KernelCaptureOptions> configure, string optionName)
    {
        var options = new KernelCaptureOptions();
        configure(options);
        var ex = Assert.Throws<ArgumentException>(() => KernelCapture.Start(options));
        Assert.Contains(optionName, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_Defaults_AreValid()
    {
        var options = new KernelCaptureOptions();
        options.Validate();
        Assert.Equal(8 * 1024 * 1024, options.RingBufferBytes);
        Assert.Equal(CaptureFilterMode.Containers, options.FilterMode);
    }

    [Fact]
    public void Open_GarbageElf_ThrowsBpfExceptionWithErrno()
    {
        var ex = Assert.Throws<BpfException>(() => BpfObject.Open("not an ELF file at all"u8, "garbage"));
        Assert.Equal("bpf_object__open_mem", ex.Operation);
        Assert.True(ex.Errno > 0);
        Assert.Contains("errno", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SetGlobal_UnknownNameOrWrongSize_ThrowsClearly()
    {
        using var obj = BpfObject.OpenEmbedded();
        Assert.Contains("no_such_global", Assert.Throws<KeyNotFoundException>(() => obj.SetGlobal("no_such_global", 1u)).Message, StringComparison.Ordinal);
        Assert.Contains("4 bytes", Assert.Throws<ArgumentException>(() => obj.SetGlobal("filter_mode", 1UL)).Message, StringComparison.Ordinal);
        Assert.True(obj.HasGlobal(KernelCapture.AbiNames.WakeupThresholdBytes));
        Assert.True(obj.HasMap(KernelCapture.AbiNames.EventsMap));
        Assert.Throws<KeyNotFoundException>(() => obj.SetMaxEntries("no_such_map", 1));
    }

    [Fact]
    public void OpenEmbedded_Programs_CoverEveryHookFamily()
    {
        using var obj = BpfObject.OpenEmbedded();
        var sections = obj.Programs.Select(p => p.Section).ToArray();
        Assert.Contains("raw_tracepoint/sched_process_exec", sections);
        Assert.Contains("raw_tracepoint/sched_process_fork", sections);
        Assert.Contains("raw_tracepoint/sched_process_exit", sections);
        Assert.Contains("tracepoint/syscalls/sys_exit_connect", sections);
        Assert.Contains("tracepoint/syscalls/sys_exit_openat", sections);
        Assert.Contains("raw_tracepoint/cgroup_mkdir", sections);
        Assert.Throws<InvalidOperationException>(() => obj.AttachAll());
    }

    [KernelFact]
    public void Load_HashMapWithZeroEntries_ThrowsBpfExceptionWithLibbpfMessage()
    {
        using var obj = BpfObject.OpenEmbedded();
        obj.SetMaxEntries(KernelCapture.AbiNames.ContainerRootsMap, 0);
        var ex = Assert.Throws<BpfException>(obj.Load);
        Assert.Equal("bpf_object__load", ex.Operation);
        Assert.Equal(22, ex.Errno); // EINVAL from BPF_MAP_CREATE: a hash map needs max_entries > 0
        Assert.False(string.IsNullOrEmpty(ex.LibbpfLog));
        Assert.Contains("libbpf:", ex.Message, StringComparison.Ordinal);
        Assert.Contains("container_roots", ex.LibbpfLog, StringComparison.Ordinal);
        Assert.Throws<InvalidOperationException>(() => obj.SetGlobal("filter_mode", 0u));
    }

    [KernelFact]
    public async Task Snapshot_HostExecUnderFilterAll_CountsEventsByKindWithoutDecodeErrors()
    {
        using var capture = KernelCapture.Start(new KernelCaptureOptions { FilterMode = CaptureFilterMode.All, RingBufferBytes = 1 << 20 });
        (await Ebpf.Testing.Runc.HostProcess.RunAsync("/bin/busybox", ["true"])).EnsureSuccess("busybox true");
        var deadline = DateTime.UtcNow.AddSeconds(5);
        var snapshot = capture.Snapshot();
        while (snapshot.EventsByKind.GetValueOrDefault(EventKind.Exec) == 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
            snapshot = capture.Snapshot();
        }
        Assert.True(snapshot.EventsByKind.GetValueOrDefault(EventKind.Exec) > 0, "our own busybox exec is counted");
        Assert.True(snapshot.EventsByKind.GetValueOrDefault(EventKind.Exit) > 0);
        Assert.True(snapshot.DecodeErrors == 0, string.Join(", ", snapshot.DecodeErrorsByReason.Select(p => $"{p.Key}={p.Value}")));
    }

    [KernelFact]
    public async Task Dispose_WhileReading_StopsCleanlyAndCompletesChannel()
    {
        var capture = KernelCapture.Start(new KernelCaptureOptions { FilterMode = CaptureFilterMode.All });
        await Task.Delay(200);
        capture.Dispose();
        var drain = Task.Run(async () =>
        {
            await foreach (var _ in capture.Events.ReadAllAsync())
            {
            }
        });
        await drain.WaitAsync(TimeSpan.FromSeconds(5));
        capture.Dispose(); // idempotent
    }
}

public sealed class LibbpfLogTests
{
    [KernelFact]
    public void ForwardLibbpfLog_FailedLoad_LoggerGetsFormattedLibbpfWarning()
    {
        var logger = new ListLogger();
        BpfObject.ForwardLibbpfLog(logger);
        using var obj = BpfObject.OpenEmbedded();
        obj.SetMaxEntries(KernelCapture.AbiNames.ContainerRootsMap, 0);
        Assert.Throws<BpfException>(obj.Load);
        // The map name reaches us through a %s argument: vsnprintf consumed libbpf's va_list.
        Assert.Contains(logger.Lines, l => l.Level == Microsoft.Extensions.Logging.LogLevel.Warning && l.Message.Contains("container_roots", StringComparison.Ordinal) && !l.Message.Contains('%'));
    }

    private sealed class ListLogger : Microsoft.Extensions.Logging.ILogger
    {
        private readonly System.Collections.Concurrent.ConcurrentQueue<(Microsoft.Extensions.Logging.LogLevel Level, string Message)> _lines = new();
        public IEnumerable<(Microsoft.Extensions.Logging.LogLevel Level, string Message)> Lines => _lines;
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;
        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            _lines.Enqueue((logLevel, formatter(state, exception)));
    }
}
