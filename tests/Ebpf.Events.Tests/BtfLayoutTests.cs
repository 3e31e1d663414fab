using System.Text.Json.Nodes;

namespace Ebpf.Events.Tests;

public sealed class BtfLayoutTests
{
    [BpfObjectFact]
    public void Mirrors_CompiledObjectBtf_MatchEveryStructAndEnum()
    {
        Assert.True(File.Exists(RepoPaths.BpfObject), $"{RepoPaths.BpfObject} is missing: run `make bpf`");
        var btf = BtfTypes.FromObjectFile(RepoPaths.BpfObject);

        var diffs = MirrorLayoutComparer.Compare(btf);

        Assert.True(diffs.Count == 0,
            "C# mirrors (src/Ebpf.Events/NativeRecords.cs) differ from bpf/include/events.h as compiled into " +
            $"{RepoPaths.BpfObject}:\n  " + string.Join("\n  ", diffs));
    }

    [BpfObjectFact]
    public void Mirrors_CompiledObjectBtf_CoverTheWholeAnchor()
    {
        var btf = BtfTypes.FromObjectFile(RepoPaths.BpfObject);
        var anchor = btf.Named("STRUCT", MirrorLayoutComparer.AnchorStruct);

        Assert.NotNull(anchor);
        // 7 record structs and 7 enums today; the comparer checks each of them has a mirror.
        Assert.True(anchor["members"]!.AsArray().Count >= 14);
    }

    // The comparer must be able to fail: feed it the real BTF with one field moved, one enum value changed,
    // one struct grown, and check each difference is reported by name.
    [BpfObjectFact]
    public void Compare_BtfWithShiftedFieldChangedEnumAndGrownStruct_ReportsEachDifference()
    {
        var json = JsonNode.Parse(BtfTypes.DumpJson(RepoPaths.BpfObject))!;
        foreach (var type in json["types"]!.AsArray())
        {
            var name = type!["name"]!.GetValue<string>();
            if (name == "exec_event")
            {
                foreach (var m in type["members"]!.AsArray())
                    if (m!["name"]!.GetValue<string>() == "uid")
                        m["bits_offset"] = m["bits_offset"]!.GetValue<long>() + 32;
            }
            else if (name == "fork_event")
            {
                type["size"] = 72L;
            }
            else if (name == "event_kind")
            {
                foreach (var v in type["values"]!.AsArray())
                    if (v!["name"]!.GetValue<string>() == "EVENT_KIND_CONNECT")
                        v["val"] = 40L;
            }
        }

        var diffs = MirrorLayoutComparer.Compare(new BtfTypes(json));

        Assert.Contains(diffs, d => d.StartsWith("struct exec_event.uid: offset C 40", StringComparison.Ordinal));
        Assert.Contains(diffs, d => d.StartsWith("struct fork_event: size C 72", StringComparison.Ordinal));
        Assert.Contains(diffs, d => d.StartsWith("enum event_kind.EVENT_KIND_CONNECT: value C 40", StringComparison.Ordinal));
        Assert.Equal(3, diffs.Count);
    }

    [Fact]
    public void PascalCase_SnakeCaseNames_MirrorFieldNames()
    {
        Assert.Equal("AbiVersion", MirrorLayoutComparer.PascalCase("abi_version"));
        Assert.Equal("PidNsInum", MirrorLayoutComparer.PascalCase("pid_ns_inum"));
        Assert.Equal("Hdr", MirrorLayoutComparer.PascalCase("hdr"));
        Assert.Equal("Pad0", MirrorLayoutComparer.PascalCase("pad0"));
    }
}
