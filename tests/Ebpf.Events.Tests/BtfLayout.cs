using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json.Nodes;

namespace Ebpf.Events.Tests;

/// <summary>The struct and enum types of a BPF object's BTF, as `bpftool btf dump file X format raw -j` prints them.</summary>
internal sealed class BtfTypes
{
    private readonly Dictionary<long, JsonObject> _byId = [];

    public BtfTypes(JsonNode root)
    {
        foreach (var node in root["types"]!.AsArray())
        {
            var type = node!.AsObject();
            _byId[type["id"]!.GetValue<long>()] = type;
        }
    }

    public static BtfTypes FromObjectFile(string objectPath) => new(JsonNode.Parse(DumpJson(objectPath))!);

    public static string DumpJson(string objectPath)
    {
        var psi = new ProcessStartInfo(FindBpftool(), ["btf", "dump", "file", objectPath, "format", "raw", "-j"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start bpftool");
        var stderr = process.StandardError.ReadToEndAsync();
        var json = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"bpftool btf dump failed ({process.ExitCode}): {stderr.Result}");
        return json;
    }

    internal static string FindBpftool()
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Append("/usr/sbin").Append("/usr/local/sbin"))
        {
            var candidate = Path.Combine(dir, "bpftool");
            if (dir.Length > 0 && File.Exists(candidate))
                return candidate;
        }
        throw new InvalidOperationException("bpftool not found (make deps installs it)");
    }

    public JsonObject? Named(string kind, string name) =>
        _byId.Values.FirstOrDefault(t => t["kind"]!.GetValue<string>() == kind && t["name"]!.GetValue<string>() == name);

    /// <summary>Size in bytes of a type, through typedefs and qualifiers.</summary>
    public long SizeOf(long typeId)
    {
        var t = _byId[typeId];
        return t["kind"]!.GetValue<string>() switch
        {
            "TYPEDEF" or "CONST" or "VOLATILE" or "RESTRICT" or "TYPE_TAG" => SizeOf(t["type_id"]!.GetValue<long>()),
            "ARRAY" => t["nr_elems"]!.GetValue<long>() * SizeOf(t["type_id"]!.GetValue<long>()),
            "PTR" => 8,
            _ => t["size"]!.GetValue<long>(),
        };
    }

    /// <summary>The struct or enum behind a type id, through typedefs and qualifiers.</summary>
    public JsonObject Resolve(long typeId)
    {
        var t = _byId[typeId];
        return t["kind"]!.GetValue<string>() is "TYPEDEF" or "CONST" or "VOLATILE" or "RESTRICT" or "TYPE_TAG"
            ? Resolve(t["type_id"]!.GetValue<long>())
            : t;
    }
}

/// <summary>
/// The "alignchecker": compares the C# mirrors (types with <see cref="NativeTypeAttribute"/>, and <see cref="EventKind"/>)
/// with the BTF of the compiled object. Returns one line per difference; empty means identical.
/// </summary>
internal static class MirrorLayoutComparer
{
    /// <summary>The struct whose members name every ABI type (bpf/agent.bpf.c): anything in it needs a mirror.</summary>
    public const string AnchorStruct = "abi_types";

    public static IReadOnlyDictionary<string, (Type Type, string Prefix)> Mirrors()
    {
        var mirrors = typeof(NodeEventDecoder).Assembly.GetTypes()
            .Select(t => (Type: t, Attr: t.GetCustomAttribute<NativeTypeAttribute>()))
            .Where(x => x.Attr is not null)
            .ToDictionary(x => x.Attr!.Name, x => (x.Type, x.Attr!.EnumeratorPrefix));
        // EventKind lives in the lead's NodeEvents.cs contract; it mirrors enum event_kind.
        mirrors["event_kind"] = (typeof(EventKind), "EVENT_KIND_");
        return mirrors;
    }

    public static List<string> Compare(BtfTypes btf)
    {
        var diffs = new List<string>();
        var mirrors = Mirrors();

        var anchor = btf.Named("STRUCT", AnchorStruct);
        if (anchor is null)
        {
            diffs.Add($"BTF has no struct {AnchorStruct}: the object was built without the ABI anchor (bpf/agent.bpf.c)");
            return diffs;
        }
        var nativeNames = new HashSet<string>();
        foreach (var member in anchor["members"]!.AsArray())
        {
            var type = btf.Resolve(member!["type_id"]!.GetValue<long>());
            var name = type["name"]!.GetValue<string>();
            nativeNames.Add(name);
            if (!mirrors.ContainsKey(name))
                diffs.Add($"{type["kind"]} {name}: no C# mirror (add one with [NativeType(\"{name}\")])");
        }
        foreach (var name in mirrors.Keys.Where(n => !nativeNames.Contains(n)))
            diffs.Add($"{name}: C# mirror {mirrors[name].Type.Name} has no C type in {AnchorStruct}");

        foreach (var (name, (type, prefix)) in mirrors.Where(m => nativeNames.Contains(m.Key)))
        {
            if (type.IsEnum)
                CompareEnum(btf.Named("ENUM", name), name, type, prefix, diffs);
            else
                CompareStruct(btf, btf.Named("STRUCT", name), name, type, diffs);
        }
        return diffs;
    }

    private static void CompareStruct(BtfTypes btf, JsonObject? native, string name, Type mirror, List<string> diffs)
    {
        if (native is null)
        {
            diffs.Add($"struct {name}: not in BTF");
            return;
        }
        var nativeSize = native["size"]!.GetValue<long>();
        var mirrorSize = ManagedSize(mirror);
        if (nativeSize != mirrorSize)
            diffs.Add($"struct {name}: size C {nativeSize} != C# {mirror.Name} {mirrorSize}");

        var fields = mirror.GetFields(BindingFlags.Public | BindingFlags.Instance).ToDictionary(f => f.Name);
        var seen = new HashSet<string>();
        foreach (var member in native["members"]!.AsArray())
        {
            var cName = member!["name"]!.GetValue<string>();
            var csName = PascalCase(cName);
            seen.Add(csName);
            if (!fields.TryGetValue(csName, out var field))
            {
                diffs.Add($"struct {name}.{cName}: no field {mirror.Name}.{csName}");
                continue;
            }
            var bits = member["bits_offset"]!.GetValue<long>();
            var offset = field.GetCustomAttribute<FieldOffsetAttribute>()?.Value;
            if (offset is null)
                diffs.Add($"struct {name}.{cName}: {mirror.Name}.{csName} has no [FieldOffset]");
            else if (bits % 8 != 0 || bits / 8 != offset)
                diffs.Add($"struct {name}.{cName}: offset C {bits / 8.0} != C# {offset}");
            var nativeFieldSize = btf.SizeOf(member["type_id"]!.GetValue<long>());
            var mirrorFieldSize = ManagedSize(field.FieldType);
            if (nativeFieldSize != mirrorFieldSize)
                diffs.Add($"struct {name}.{cName}: size C {nativeFieldSize} != C# {field.FieldType.Name} {mirrorFieldSize}");
        }
        foreach (var extra in fields.Keys.Where(f => !seen.Contains(f)))
            diffs.Add($"struct {name}: C# field {mirror.Name}.{extra} has no C member");
    }

    private static void CompareEnum(JsonObject? native, string name, Type mirror, string prefix, List<string> diffs)
    {
        if (native is null)
        {
            diffs.Add($"enum {name}: not in BTF");
            return;
        }
        var members = Enum.GetNames(mirror).ToDictionary(n => n, n => Convert.ToInt64(Enum.Parse(mirror, n), CultureInfo.InvariantCulture));
        var seen = new HashSet<string>();
        foreach (var value in native["values"]!.AsArray())
        {
            var cName = value!["name"]!.GetValue<string>();
            var cValue = value["val"]!.GetValue<long>();
            var stripped = cName.StartsWith(prefix, StringComparison.Ordinal) ? cName[prefix.Length..] : cName;
            if (name == "event_kind" && stripped == "MAX")
            {
                // One past the last kind: sizes drop_counters, so every managed kind must fit below it.
                var max = members.Values.Max();
                if (cValue != max + 1)
                    diffs.Add($"enum {name}.{cName}: {cValue} != last C# {mirror.Name} value + 1 ({max + 1})");
                continue;
            }
            var csName = PascalCase(stripped.ToLowerInvariant());
            seen.Add(csName);
            if (!members.TryGetValue(csName, out var csValue))
                diffs.Add($"enum {name}.{cName} = {cValue}: no member {mirror.Name}.{csName}");
            else if (csValue != cValue)
                diffs.Add($"enum {name}.{cName}: value C {cValue} != C# {mirror.Name}.{csName} {csValue}");
        }
        foreach (var extra in members.Where(m => !seen.Contains(m.Key) && !(m.Key == "None" && m.Value == 0)))
            diffs.Add($"enum {name}: C# member {mirror.Name}.{extra.Key} = {extra.Value} has no C enumerator");
    }

    private static long ManagedSize(Type t) =>
        (int)typeof(Unsafe).GetMethod(nameof(Unsafe.SizeOf))!.MakeGenericMethod(t).Invoke(null, null)!;

    /// <summary>abi_version -> AbiVersion, pid_ns_inum -> PidNsInum.</summary>
    public static string PascalCase(string snake)
    {
        var sb = new StringBuilder(snake.Length);
        foreach (var part in snake.Split('_', StringSplitOptions.RemoveEmptyEntries))
            sb.Append(char.ToUpperInvariant(part[0])).Append(part.AsSpan(1));
        return sb.ToString();
    }
}
