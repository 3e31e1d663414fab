using System.CommandLine;
using Ebpf.Agent.Capture;
using Ebpf.Agent.Configuration;
using Ebpf.Agent.Hosting;

namespace Ebpf.Agent.Commands;

/// <summary>`ebpf-agent capture`: raw kernel events as JSON lines, the first thing a newcomer runs.</summary>
public static class CaptureCommandLine
{
    public static Command Create()
    {
        var filter = new Option<string>("--filter") { Description = "containers (kubepods cgroups, the default), nonroot or all", DefaultValueFactory = _ => "containers" };
        filter.AcceptOnlyFromAmong("containers", "nonroot", "all");
        var command = new Command("capture", "Print live kernel events (exec, fork, exit, connect, open, cgroup) as JSON lines until interrupted") { filter };
        command.SetAction((parse, ct) =>
            CaptureCommand.RunAsync(AgentHost.ToCaptureOptions(new CaptureConfig { Filter = parse.GetValue(filter)! }), parse.InvocationConfiguration.Output, ct));
        return command;
    }
}
