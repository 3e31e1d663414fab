using System.CommandLine;
using Ebpf.Agent.Commands;

// ebpf-agent: the node agent. `run` is the DaemonSet's command; the others are tools for operators.
var root = new RootCommand("ebpf-agent: joins Kubernetes audit events (who) with eBPF kernel events (what happened) on this node")
{
    RunCommand.Create(),
    CaptureCommandLine.Create(),
    VerifyCommand.Create(),
    AuditImportCommand.Create(),
};
return await root.Parse(args).InvokeAsync();
