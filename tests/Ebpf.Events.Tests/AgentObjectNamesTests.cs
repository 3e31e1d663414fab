using System.Text.Json.Nodes;

namespace Ebpf.Events.Tests;

public sealed class AgentObjectNamesTests
{
    private static readonly Lazy<JsonArray> Types = new(() =>
        JsonNode.Parse(BtfTypes.DumpJson(RepoPaths.BpfObject))!["types"]!.AsArray());

    private static HashSet<string> VarsIn(string datasec)
    {
        var byId = Types.Value.ToDictionary(t => t!["id"]!.GetValue<long>(), t => t!.AsObject());
        var sec = Types.Value.Single(t => t!["kind"]!.GetValue<string>() == "DATASEC" && t["name"]!.GetValue<string>() == datasec)!;
        return sec["vars"]!.AsArray().Select(v => byId[v!["type_id"]!.GetValue<long>()]["name"]!.GetValue<string>()).ToHashSet();
    }

    private static long RodataSize(string name)
    {
        var byId = Types.Value.ToDictionary(t => t!["id"]!.GetValue<long>(), t => t!.AsObject());
        var sec = Types.Value.Single(t => t!["kind"]!.GetValue<string>() == "DATASEC" && t["name"]!.GetValue<string>() == ".rodata")!;
        return sec["vars"]!.AsArray().Single(v => byId[v!["type_id"]!.GetValue<long>()]["name"]!.GetValue<string>() == name)!["size"]!.GetValue<long>();
    }

    [BpfObjectFact]
    public void Maps_CompiledObject_DefinesEveryNamedMap()
    {
        var maps = VarsIn(".maps");

        Assert.Contains(AgentObjectNames.Maps.Events, maps);
        Assert.Contains(AgentObjectNames.Maps.DropCounters, maps);
        Assert.Contains(AgentObjectNames.Maps.ContainerRoots, maps);
    }

    [BpfObjectFact]
    public void Globals_CompiledObject_DefinesEveryGlobalWithItsSize()
    {
        Assert.Equal(4, RodataSize(AgentObjectNames.Globals.FilterMode));
        Assert.Equal(8, RodataSize(AgentObjectNames.Globals.WakeupThresholdBytes));
        Assert.Equal(4, RodataSize(AgentObjectNames.Globals.IgnoreTgid));
        Assert.Equal(4, RodataSize(AgentObjectNames.Globals.IgnoreFailedOpens));
        Assert.Equal(4, RodataSize(AgentObjectNames.Globals.FilePrefixCount));
        Assert.Equal(AgentObjectNames.Globals.FilePrefixSlots * AgentObjectNames.Globals.FilePrefixCapacity,
            RodataSize(AgentObjectNames.Globals.FilePrefixes));
    }

    [BpfObjectFact]
    public void Programs_CompiledObject_ExactlyTheNamedPrograms()
    {
        var functions = Types.Value
            .Where(t => t!["kind"]!.GetValue<string>() == "FUNC" && t["linkage"]?.GetValue<string>() == "global")
            .Select(t => t!["name"]!.GetValue<string>())
            .ToHashSet();

        Assert.Equal(AgentObjectNames.Programs.Order(), functions.Order());
    }
}
