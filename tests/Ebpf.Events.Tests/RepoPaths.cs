using Ebpf.Testing;

namespace Ebpf.Events.Tests;

/// <summary>
/// A test that needs the compiled BPF object. Outside CI it is skipped (with the command to run) when the object
/// has not been built; with CI=true it always runs, so a missing object fails loudly.
/// </summary>
public sealed class BpfObjectFactAttribute : FactAttribute
{
    public BpfObjectFactAttribute()
    {
        if (!RepoPaths.InCi && !File.Exists(RepoPaths.BpfObject))
            Skip = $"{RepoPaths.BpfObject} not built: run `make bpf` (CI=true makes this a failure)";
    }
}
