using System.Runtime.InteropServices;
using Ebpf.Interop.Native;
using Microsoft.Extensions.Logging;

namespace Ebpf.Interop;

/// <summary>A program of a BPF object: its function name and the SEC() it was declared in.</summary>
public sealed record BpfProgramInfo(string Name, string Section);

/// <summary>
/// An opened (and later loaded) BPF ELF object. Tunables (const volatile globals) and map sizes are set between
/// <see cref="Open(ReadOnlySpan{byte}, string)"/> and <see cref="Load"/>; programs are attached after.
/// Disposing destroys the links it created and then closes the object.
/// </summary>
public sealed unsafe class BpfObject : IDisposable
{
    /// <summary>Logical name of the object compiled by `make bpf` and embedded into this assembly.</summary>
    public const string EmbeddedObjectName = "agent.bpf.o";

    private readonly BpfObjectHandle _handle;
    private readonly List<BpfLinkHandle> _links = [];
    private readonly List<BpfProgramInfo> _attached = [];
    private bool _loaded;
    private bool _loadAttempted;

    private BpfObject(BpfObjectHandle handle) => _handle = handle;

    /// <summary>
    /// Sends libbpf's own log (warnings as Warning, info as Debug, debug as Trace) to <paramref name="logger"/>.
    /// libbpf has one process-wide print callback, so the last logger set wins.
    /// </summary>
    public static void ForwardLibbpfLog(ILogger logger) => LibbpfLogForwarder.Install(logger);

    /// <summary>Opens an object from an ELF image; throws <see cref="BpfException"/> when libbpf cannot parse it.</summary>
    public static BpfObject Open(ReadOnlySpan<byte> elf, string objectName)
    {
        LibbpfLogForwarder.Install(null);
        LibbpfLogForwarder.ClearRecent();
        return new BpfObject(BpfObjectHandle.Open(elf, objectName));
    }

    /// <summary>Opens the object embedded into Ebpf.Interop at build time.</summary>
    public static BpfObject OpenEmbedded() => Open(ReadEmbeddedObject(), "agent");

    /// <summary>The ELF bytes of the embedded object.</summary>
    public static byte[] ReadEmbeddedObject()
    {
        using var stream = typeof(BpfObject).Assembly.GetManifestResourceStream(EmbeddedObjectName)
            ?? throw new InvalidOperationException($"Resource {EmbeddedObjectName} is not embedded in {typeof(BpfObject).Assembly.GetName().Name}; build with `make bpf` first.");
        var bytes = new byte[stream.Length];
        stream.ReadExactly(bytes);
        return bytes;
    }

    public bool IsLoaded => _loaded;

    /// <summary>All programs of the object, in ELF order.</summary>
    public IReadOnlyList<BpfProgramInfo> Programs
    {
        get
        {
            var list = new List<BpfProgramInfo>();
            Use(obj =>
            {
                for (var prog = LibBpf.bpf_object__next_program(obj, IntPtr.Zero); prog != IntPtr.Zero; prog = LibBpf.bpf_object__next_program(obj, prog))
                    list.Add(new BpfProgramInfo(Str(LibBpf.bpf_program__name(prog)), Str(LibBpf.bpf_program__section_name(prog))));
            });
            return list;
        }
    }

    /// <summary>Programs attached by <see cref="AttachAll"/> or <see cref="Attach"/>.</summary>
    public IReadOnlyList<BpfProgramInfo> AttachedPrograms => _attached.ToArray();

    /// <summary>
    /// Writes a global variable (a <c>const volatile</c> tunable in .rodata, or one in .data/.bss) before load.
    /// The variable is found by name through the object's BTF, so C and C# never agree on offsets by hand.
    /// </summary>
    public void SetGlobal(string name, ReadOnlySpan<byte> value)
    {
        EnsureNotLoaded("set a global");
        using var lease = Lease();
        var obj = lease.Pointer;
        {
            var btf = LibBpf.bpf_object__btf(obj);
            if (btf == IntPtr.Zero)
                throw new InvalidOperationException("The BPF object carries no BTF; globals cannot be located.");
            foreach (var section in (string[])[".rodata", ".data", ".bss"])
            {
                var id = LibBpf.btf__find_by_name_kind(btf, section, LibBpf.BTF_KIND_DATASEC);
                if (id <= 0)
                    continue;
                var type = LibBpf.btf__type_by_id(btf, (uint)id);
                var vlen = (int)(type->Info & 0xffff);
                var vars = (LibBpf.BtfVarSecInfo*)(type + 1);
                for (var i = 0; i < vlen; i++)
                {
                    var varType = LibBpf.btf__type_by_id(btf, vars[i].Type);
                    if (varType is null || Str(LibBpf.btf__name_by_offset(btf, varType->NameOffset)) != name)
                        continue;
                    if (value.Length != vars[i].Size)
                        throw new ArgumentException($"Global '{name}' is {vars[i].Size} bytes; got {value.Length}.", nameof(value));
                    var map = LibBpf.bpf_object__find_map_by_name(obj, section);
                    if (map == IntPtr.Zero)
                        throw new InvalidOperationException($"Map for section {section} not found.");
                    nuint size;
                    var data = (byte*)LibBpf.bpf_map__initial_value(map, &size);
                    if (data is null || vars[i].Offset + vars[i].Size > size)
                        throw new InvalidOperationException($"Initial value of {section} is unavailable or too small for '{name}'.");
                    value.CopyTo(new Span<byte>(data + vars[i].Offset, value.Length));
                    return;
                }
            }
            throw new KeyNotFoundException($"The BPF object has no global variable '{name}'.");
        }
    }

    /// <summary>Writes an unmanaged value into a global variable; see <see cref="SetGlobal(string, ReadOnlySpan{byte})"/>.</summary>
    public void SetGlobal<T>(string name, T value) where T : unmanaged =>
        SetGlobal(name, new ReadOnlySpan<byte>(&value, sizeof(T)));

    /// <summary>True when the object has a global variable with that name.</summary>
    public bool HasGlobal(string name)
    {
        var found = false;
        Use(obj =>
        {
            var btf = LibBpf.bpf_object__btf(obj);
            if (btf == IntPtr.Zero)
                return;
            foreach (var section in (string[])[".rodata", ".data", ".bss"])
            {
                var id = LibBpf.btf__find_by_name_kind(btf, section, LibBpf.BTF_KIND_DATASEC);
                if (id <= 0)
                    continue;
                var type = LibBpf.btf__type_by_id(btf, (uint)id);
                var vars = (LibBpf.BtfVarSecInfo*)(type + 1);
                for (var i = 0; i < (int)(type->Info & 0xffff); i++)
                {
                    var varType = LibBpf.btf__type_by_id(btf, vars[i].Type);
                    if (varType is not null && Str(LibBpf.btf__name_by_offset(btf, varType->NameOffset)) == name)
                        found = true;
                }
            }
        });
        return found;
    }

    /// <summary>Sets a map's max_entries (for a ring buffer: its size in bytes, a power of two multiple of the page size).</summary>
    public void SetMaxEntries(string mapName, uint maxEntries)
    {
        EnsureNotLoaded("resize a map");
        Use(obj =>
        {
            var map = FindMap(obj, mapName);
            var rc = LibBpf.bpf_map__set_max_entries(map, maxEntries);
            if (rc < 0)
                throw new BpfException($"bpf_map__set_max_entries({mapName}, {maxEntries})", -rc, LibbpfLogForwarder.TakeRecent());
        });
    }

    /// <summary>Creates the maps and loads the programs into the kernel (the verifier runs here).</summary>
    public void Load()
    {
        EnsureNotLoaded("load");
        // libbpf refuses a second bpf_object__load even after a failed one: the object must be reopened.
        _loadAttempted = true;
        LibbpfLogForwarder.ClearRecent();
        Use(obj =>
        {
            var rc = LibBpf.bpf_object__load(obj);
            if (rc < 0)
                throw new BpfException("bpf_object__load", -rc, LibbpfLogForwarder.TakeRecent());
        });
        _loaded = true;
    }

    /// <summary>A map of the loaded object. The map borrows this object: do not use it after disposal.</summary>
    public BpfMap GetMap(string name)
    {
        BpfMap? result = null;
        Use(obj =>
        {
            var map = FindMap(obj, name);
            var fd = LibBpf.bpf_map__fd(map);
            if (fd < 0)
                throw new InvalidOperationException($"Map '{name}' has no fd: load the object first.");
            result = new BpfMap(this, name, fd, LibBpf.bpf_map__type(map), LibBpf.bpf_map__key_size(map), LibBpf.bpf_map__value_size(map), LibBpf.bpf_map__max_entries(map));
        });
        return result!;
    }

    /// <summary>True when the object declares a map with that name.</summary>
    public bool HasMap(string name)
    {
        var found = false;
        Use(obj => found = LibBpf.bpf_object__find_map_by_name(obj, name) != IntPtr.Zero);
        return found;
    }

    /// <summary>Attaches one program as its SEC() declares (tracepoint, raw tracepoint ...).</summary>
    public BpfProgramInfo Attach(string programName)
    {
        EnsureLoaded("attach");
        BpfProgramInfo? info = null;
        Use(obj =>
        {
            var prog = LibBpf.bpf_object__find_program_by_name(obj, programName);
            if (prog == IntPtr.Zero)
                throw new KeyNotFoundException($"The BPF object has no program '{programName}'.");
            info = AttachProgram(prog);
        });
        return info!;
    }

    /// <summary>Attaches every program of the object; on failure the links made so far stay owned by this object.</summary>
    public IReadOnlyList<BpfProgramInfo> AttachAll()
    {
        EnsureLoaded("attach");
        Use(obj =>
        {
            for (var prog = LibBpf.bpf_object__next_program(obj, IntPtr.Zero); prog != IntPtr.Zero; prog = LibBpf.bpf_object__next_program(obj, prog))
                AttachProgram(prog);
        });
        return AttachedPrograms;
    }

    internal BpfObjectHandle Handle => _handle;

    private BpfProgramInfo AttachProgram(IntPtr prog)
    {
        var info = new BpfProgramInfo(Str(LibBpf.bpf_program__name(prog)), Str(LibBpf.bpf_program__section_name(prog)));
        LibbpfLogForwarder.ClearRecent();
        var link = BpfLinkHandle.Attach(_handle, prog, info.Name);
        lock (_links)
        {
            _links.Add(link);
            _attached.Add(info);
        }
        return info;
    }

    private static IntPtr FindMap(IntPtr obj, string name)
    {
        var map = LibBpf.bpf_object__find_map_by_name(obj, name);
        return map != IntPtr.Zero ? map : throw new KeyNotFoundException($"The BPF object has no map '{name}'.");
    }

    private void Use(Action<IntPtr> action)
    {
        using var lease = Lease();
        action(lease.Pointer);
    }

    private HandleLease Lease() => new(_handle);

    /// <summary>Keeps the object handle referenced (not closed underneath us) while a raw pointer is in use.</summary>
    private readonly struct HandleLease : IDisposable
    {
        private readonly SafeHandle _handle;

        public HandleLease(SafeHandle handle)
        {
            var added = false;
            handle.DangerousAddRef(ref added);
            _handle = handle;
            Pointer = handle.DangerousGetHandle();
        }

        public IntPtr Pointer { get; }

        public void Dispose() => _handle.DangerousRelease();
    }

    private void EnsureNotLoaded(string what)
    {
        if (_loadAttempted)
            throw new InvalidOperationException($"Cannot {what} after the BPF object is loaded (or a load was attempted).");
    }

    private void EnsureLoaded(string what)
    {
        if (!_loaded)
            throw new InvalidOperationException($"Cannot {what} before the BPF object is loaded.");
    }

    internal static string Str(byte* s) => s is null ? "" : Marshal.PtrToStringUTF8((IntPtr)s) ?? "";

    public void Dispose()
    {
        lock (_links)
        {
            foreach (var link in _links)
                link.Dispose();
            _links.Clear();
        }
        _handle.Dispose();
    }
}
