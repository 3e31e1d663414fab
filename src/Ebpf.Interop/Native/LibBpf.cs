using System.Runtime.InteropServices;

namespace Ebpf.Interop.Native;

/// <summary>
/// libbpf 1.x entry points (bpf/libbpf.h, bpf/bpf.h). Error convention of libbpf 1.x: pointer-returning calls
/// return NULL and set errno; int-returning calls return a negative errno and also set errno.
/// </summary>
internal static unsafe partial class LibBpf
{
    private const string Library = "libbpf.so.1";

    /// <summary>ring_buffer_sample_fn: return 0 to continue, non-zero to stop the current poll.</summary>
    internal const int BPF_MAP_TYPE_RINGBUF = 27;
    internal const ulong BPF_ANY = 0;

    [StructLayout(LayoutKind.Sequential)]
    internal struct BpfObjectOpenOpts
    {
        public nuint Size;
        public byte* ObjectName;
        public byte RelaxedMaps;
    }

    /// <summary>NULL + errno when the buffer is not a valid BPF ELF object.</summary>
    [LibraryImport(Library, EntryPoint = "bpf_object__open_mem", SetLastError = true)]
    internal static partial IntPtr bpf_object__open_mem(void* objBuf, nuint objBufSize, BpfObjectOpenOpts* opts);

    /// <summary>Negative errno when the verifier rejects a program or a map cannot be created.</summary>
    [LibraryImport(Library, EntryPoint = "bpf_object__load", SetLastError = true)]
    internal static partial int bpf_object__load(IntPtr obj);

    [LibraryImport(Library, EntryPoint = "bpf_object__close")]
    internal static partial void bpf_object__close(IntPtr obj);

    /// <summary>NULL when no program has that name.</summary>
    [LibraryImport(Library, EntryPoint = "bpf_object__find_program_by_name", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial IntPtr bpf_object__find_program_by_name(IntPtr obj, string name);

    /// <summary>NULL after the last program.</summary>
    [LibraryImport(Library, EntryPoint = "bpf_object__next_program")]
    internal static partial IntPtr bpf_object__next_program(IntPtr obj, IntPtr prev);

    [LibraryImport(Library, EntryPoint = "bpf_program__name")]
    internal static partial byte* bpf_program__name(IntPtr prog);

    [LibraryImport(Library, EntryPoint = "bpf_program__section_name")]
    internal static partial byte* bpf_program__section_name(IntPtr prog);

    /// <summary>NULL + errno (e.g. ENOENT when the tracepoint does not exist or tracefs is missing).</summary>
    [LibraryImport(Library, EntryPoint = "bpf_program__attach", SetLastError = true)]
    internal static partial IntPtr bpf_program__attach(IntPtr prog);

    [LibraryImport(Library, EntryPoint = "bpf_link__destroy")]
    internal static partial int bpf_link__destroy(IntPtr link);

    /// <summary>NULL when no map has that name (internal maps are found by ".rodata", ".bss" ...).</summary>
    [LibraryImport(Library, EntryPoint = "bpf_object__find_map_by_name", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial IntPtr bpf_object__find_map_by_name(IntPtr obj, string name);

    /// <summary>Negative errno before the object is loaded.</summary>
    [LibraryImport(Library, EntryPoint = "bpf_map__fd")]
    internal static partial int bpf_map__fd(IntPtr map);

    /// <summary>-EBUSY once the object is loaded.</summary>
    [LibraryImport(Library, EntryPoint = "bpf_map__set_max_entries", SetLastError = true)]
    internal static partial int bpf_map__set_max_entries(IntPtr map, uint maxEntries);

    [LibraryImport(Library, EntryPoint = "bpf_map__max_entries")]
    internal static partial uint bpf_map__max_entries(IntPtr map);

    /// <summary>Pointer to the map's initial data (for .rodata/.data/.bss), NULL for other maps.</summary>
    [LibraryImport(Library, EntryPoint = "bpf_map__initial_value")]
    internal static partial void* bpf_map__initial_value(IntPtr map, nuint* size);

    /// <summary>Negative errno (E2BIG when a hash map is full, ENOENT ...).</summary>
    [LibraryImport(Library, EntryPoint = "bpf_map_update_elem", SetLastError = true)]
    internal static partial int bpf_map_update_elem(int fd, void* key, void* value, ulong flags);

    /// <summary>-ENOENT when the key is absent.</summary>
    [LibraryImport(Library, EntryPoint = "bpf_map_lookup_elem", SetLastError = true)]
    internal static partial int bpf_map_lookup_elem(int fd, void* key, void* value);

    [LibraryImport(Library, EntryPoint = "bpf_map_delete_elem", SetLastError = true)]
    internal static partial int bpf_map_delete_elem(int fd, void* key);

    /// <summary>NULL + errno when the map is not a ring buffer or mmap fails.</summary>
    [LibraryImport(Library, EntryPoint = "ring_buffer__new", SetLastError = true)]
    internal static partial IntPtr ring_buffer__new(int mapFd, delegate* unmanaged<IntPtr, IntPtr, nuint, int> sampleCallback, IntPtr ctx, void* opts);

    /// <summary>Number of records consumed, or negative errno (-EINTR is benign).</summary>
    [LibraryImport(Library, EntryPoint = "ring_buffer__poll", SetLastError = true)]
    internal static partial int ring_buffer__poll(IntPtr rb, int timeoutMs);

    /// <summary>Consumes whatever is available without waiting; count or negative errno.</summary>
    [LibraryImport(Library, EntryPoint = "ring_buffer__consume", SetLastError = true)]
    internal static partial int ring_buffer__consume(IntPtr rb);

    [LibraryImport(Library, EntryPoint = "ring_buffer__free")]
    internal static partial void ring_buffer__free(IntPtr rb);

    /// <summary>
    /// Legacy error extraction: with libbpf 1.x it returns -errno for NULL, 0 otherwise. We read errno through
    /// SetLastError instead (Marshal.GetLastPInvokeError), because the runtime may clobber errno between the failing
    /// call and a second P/Invoke; kept for diagnostics.
    /// </summary>
    [LibraryImport(Library, EntryPoint = "libbpf_get_error")]
    internal static partial nint libbpf_get_error(IntPtr ptr);

    /// <summary>Returns the previous print function.</summary>
    [LibraryImport(Library, EntryPoint = "libbpf_set_print")]
    internal static partial IntPtr libbpf_set_print(delegate* unmanaged<int, byte*, IntPtr, int> fn);

    /// <summary>Negative errno when /sys/devices/system/cpu/possible cannot be parsed.</summary>
    [LibraryImport(Library, EntryPoint = "libbpf_num_possible_cpus")]
    internal static partial int libbpf_num_possible_cpus();

    /// <summary>1 supported, 0 unsupported, negative errno when probing failed.</summary>
    [LibraryImport(Library, EntryPoint = "libbpf_probe_bpf_map_type")]
    internal static partial int libbpf_probe_bpf_map_type(int mapType, void* opts);

    /// <summary>Fills buf with the message of a libbpf or system error code.</summary>
    [LibraryImport(Library, EntryPoint = "libbpf_strerror")]
    internal static partial int libbpf_strerror(int err, byte* buf, nuint size);

    [LibraryImport(Library, EntryPoint = "bpf_map__value_size")]
    internal static partial uint bpf_map__value_size(IntPtr map);

    [LibraryImport(Library, EntryPoint = "bpf_map__key_size")]
    internal static partial uint bpf_map__key_size(IntPtr map);

    [LibraryImport(Library, EntryPoint = "bpf_map__type")]
    internal static partial int bpf_map__type(IntPtr map);

    /// <summary>The object's BTF, NULL when the object carries none.</summary>
    [LibraryImport(Library, EntryPoint = "bpf_object__btf")]
    internal static partial IntPtr bpf_object__btf(IntPtr obj);

    /// <summary>Type id, or a negative errno (-ENOENT) when no type has that name and kind.</summary>
    [LibraryImport(Library, EntryPoint = "btf__find_by_name_kind", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int btf__find_by_name_kind(IntPtr btf, string name, uint kind);

    /// <summary>NULL for an invalid id.</summary>
    [LibraryImport(Library, EntryPoint = "btf__type_by_id")]
    internal static partial BtfType* btf__type_by_id(IntPtr btf, uint id);

    [LibraryImport(Library, EntryPoint = "btf__name_by_offset")]
    internal static partial byte* btf__name_by_offset(IntPtr btf, uint offset);

    internal const uint BTF_KIND_DATASEC = 15;

    /// <summary>struct btf_type (linux/btf.h): name_off, info (vlen in bits 0-15, kind in 24-28), size/type.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct BtfType
    {
        public uint NameOffset;
        public uint Info;
        public uint SizeOrType;
    }

    /// <summary>struct btf_var_secinfo: follows a DATASEC btf_type, one per variable.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct BtfVarSecInfo
    {
        public uint Type;
        public uint Offset;
        public uint Size;
    }
}
