using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Ebpf.Events;
using Ebpf.Interop;

namespace Ebpf.Agent.Capture;

/// <summary>
/// <c>ebpf-agent capture</c>: runs the kernel capture and prints every event as one JSON object per line until
/// cancelled, then one final line with the loss counters (<c>"kind":"counters"</c>). Exit code 0 on a clean stop,
/// 1 when the capture cannot start (the reason goes to standard error as a JSON line too).
/// </summary>
public static class CaptureCommand
{
    public static async Task<int> RunAsync(KernelCaptureOptions options, TextWriter output, CancellationToken ct)
    {
        KernelCapture capture;
        try
        {
            capture = KernelCapture.Start(options);
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or BpfException)
        {
            await output.WriteLineAsync(Json(w =>
            {
                w.WriteString("kind", "error");
                w.WriteString("message", ex.Message);
            })).ConfigureAwait(false);
            return 1;
        }

        // cgroup id → path → (pod UID, container id): the same resolution the agent does, without an API server.
        var cgroups = new Ebpf.Kubernetes.Cgroups.CgroupHierarchy();
        cgroups.Scan();
        using (capture)
        {
            try
            {
                await foreach (var ev in capture.Events.ReadAllAsync(ct).ConfigureAwait(false))
                {
                    if (ev is CgroupEvent cgroupEvent)
                        cgroups.Apply(cgroupEvent);
                    await output.WriteLineAsync(Format(ev, cgroups.TryResolve(ev.CgroupId, out string path) ? path : null)).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
            }
            catch (ChannelClosedException)
            {
            }
            await output.WriteLineAsync(FormatCounters(capture.Snapshot())).ConfigureAwait(false);
            await output.FlushAsync(CancellationToken.None).ConfigureAwait(false);
        }
        return 0;
    }

    /// <summary>One event as a single-line JSON object: common header fields, then the kind's own.</summary>
    public static string Format(NodeEvent ev, string? cgroupPath = null) => Json(w =>
    {
        w.WriteString("kind", ev.Kind.ToString());
        w.WriteString("time", ev.Time);
        w.WriteNumber("bootNs", ev.BootTimeNs);
        w.WriteNumber("pid", ev.Tgid);
        w.WriteNumber("tid", ev.Tid);
        w.WriteNumber("cgroupId", ev.CgroupId);
        if (cgroupPath is not null)
        {
            w.WriteString("cgroup", cgroupPath);
            if (Ebpf.Core.Identity.KubeletCgroupPath.TryParse(cgroupPath, out var container))
            {
                w.WriteString("podUid", container.PodUid);
                if (container.ContainerId.Length > 0)
                    w.WriteString("containerId", container.ContainerId);
            }
        }
        switch (ev)
        {
            case ExecEvent x:
                w.WriteNumber("ppid", x.ParentTgid);
                w.WriteNumber("uid", x.Uid);
                w.WriteNumber("gid", x.Gid);
                w.WriteNumber("loginUid", x.LoginUid);
                w.WriteNumber("startBootNs", x.StartBootTimeNs);
                w.WriteString("filename", x.Filename);
                w.WriteStartArray("argv");
                foreach (var a in x.Argv)
                    w.WriteStringValue(a);
                w.WriteEndArray();
                w.WriteBoolean("argvTruncated", x.ArgvTruncated);
                w.WriteString("comm", x.Comm);
                w.WriteString("previousComm", x.PreviousComm);
                w.WriteBoolean("previousImageWasRuntime", x.PreviousImageWasRuntime);
                w.WriteNumber("pidNs", x.PidNamespaceInode);
                w.WriteNumber("mntNs", x.MountNamespaceInode);
                break;
            case ForkEvent f:
                w.WriteNumber("parentPid", f.ParentTgid);
                w.WriteNumber("childPid", f.ChildTgid);
                w.WriteNumber("childTid", f.ChildPid);
                w.WriteBoolean("thread", f.IsThread);
                w.WriteNumber("childCgroupId", f.ChildCgroupId);
                break;
            case ExitEvent x:
                w.WriteNumber("waitStatus", x.WaitStatus);
                if (x.ExitCode is { } code)
                    w.WriteNumber("exitCode", code);
                if (x.TermSignal is { } signal)
                    w.WriteNumber("signal", signal);
                w.WriteNumber("startBootNs", x.StartBootTimeNs);
                break;
            case ConnectEvent c:
                w.WriteString("family", c.Family.ToString());
                if (c.Address is not null)
                {
                    w.WriteString("address", c.Address.ToString());
                    w.WriteNumber("port", c.Port);
                }
                if (c.UnixPath.Length > 0)
                    w.WriteString("path", c.UnixPath);
                w.WriteNumber("fd", c.Fd);
                w.WriteNumber("result", c.Result);
                break;
            case FileOpenEvent o:
                w.WriteString("path", o.Path);
                w.WriteNumber("dirFd", o.DirFd);
                w.WriteNumber("flags", o.Flags);
                w.WriteNumber("mode", o.Mode);
                w.WriteNumber("result", o.Result);
                break;
            case CgroupEvent g:
                w.WriteNumber("targetCgroupId", g.TargetCgroupId);
                w.WriteNumber("level", g.Level);
                w.WriteString("path", g.Path);
                break;
        }
    });

    /// <summary>The loss counters as a single-line JSON object with <c>"kind":"counters"</c>.</summary>
    public static string FormatCounters(CaptureCounters counters) => Json(w =>
    {
        w.WriteString("kind", "counters");
        WriteMap(w, "events", counters.EventsByKind);
        WriteMap(w, "kernelDrops", counters.KernelDropsByKind);
        WriteMap(w, "handoffDrops", counters.HandoffDropsByKind);
        w.WriteStartObject("decodeErrors");
        foreach (var (reason, n) in counters.DecodeErrorsByReason)
            w.WriteNumber(reason, n);
        w.WriteEndObject();
    });

    private static void WriteMap(Utf8JsonWriter w, string name, IReadOnlyDictionary<EventKind, ulong> map)
    {
        w.WriteStartObject(name);
        foreach (var (kind, n) in map.OrderBy(p => p.Key))
            w.WriteNumber(kind.ToString(), n);
        w.WriteEndObject();
    }

    private static string Json(Action<Utf8JsonWriter> write)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            write(writer);
            writer.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
