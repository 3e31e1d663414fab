// Placeholder entry point: the host is wired in src/Ebpf.Agent as the subsystems land.
Console.Error.WriteLine("ebpf-agent: not wired yet");
return 1;
