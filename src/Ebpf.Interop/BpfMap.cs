using Ebpf.Interop.Native;

namespace Ebpf.Interop;

/// <summary>
/// A map of a loaded <see cref="BpfObject"/>, addressed by fd. The fd belongs to the object: a BpfMap is only valid
/// while its object is not disposed.
/// </summary>
public sealed unsafe class BpfMap
{
    private const int BPF_MAP_TYPE_PERCPU_HASH = 5;
    private const int BPF_MAP_TYPE_PERCPU_ARRAY = 6;
    private const int BPF_MAP_TYPE_LRU_PERCPU_HASH = 10;

    private readonly BpfObject _owner;

    internal BpfMap(BpfObject owner, string name, int fd, int type, uint keySize, uint valueSize, uint maxEntries)
    {
        _owner = owner;
        Name = name;
        Fd = fd;
        Type = type;
        KeySize = keySize;
        ValueSize = valueSize;
        MaxEntries = maxEntries;
    }

    public string Name { get; }
    public int Fd { get; }
    /// <summary>enum bpf_map_type value.</summary>
    public int Type { get; }
    public uint KeySize { get; }
    public uint ValueSize { get; }
    public uint MaxEntries { get; }

    public bool IsPerCpu => Type is BPF_MAP_TYPE_PERCPU_ARRAY or BPF_MAP_TYPE_PERCPU_HASH or BPF_MAP_TYPE_LRU_PERCPU_HASH;

    /// <summary>Inserts or replaces an element (BPF_ANY). Throws <see cref="BpfException"/> with the errno (E2BIG when full).</summary>
    public void Update<TKey, TValue>(TKey key, TValue value) where TKey : unmanaged where TValue : unmanaged
    {
        CheckSizes(sizeof(TKey), sizeof(TValue), perCpu: false);
        var rc = LibBpf.bpf_map_update_elem(Fd, &key, &value, LibBpf.BPF_ANY);
        if (rc < 0)
            throw new BpfException($"bpf_map_update_elem({Name})", -rc);
    }

    /// <summary>Removes an element; false when it was absent.</summary>
    public bool Delete<TKey>(TKey key) where TKey : unmanaged
    {
        CheckSizes(sizeof(TKey), (int)ValueSize, perCpu: false);
        var rc = LibBpf.bpf_map_delete_elem(Fd, &key);
        if (rc == -2)
            return false;
        if (rc < 0)
            throw new BpfException($"bpf_map_delete_elem({Name})", -rc);
        return true;
    }

    /// <summary>Looks an element up; false when absent (ENOENT).</summary>
    public bool TryLookup<TKey, TValue>(TKey key, out TValue value) where TKey : unmanaged where TValue : unmanaged
    {
        CheckSizes(sizeof(TKey), sizeof(TValue), perCpu: false);
        TValue result;
        var rc = LibBpf.bpf_map_lookup_elem(Fd, &key, &result);
        if (rc == -2)
        {
            value = default;
            return false;
        }
        if (rc < 0)
            throw new BpfException($"bpf_map_lookup_elem({Name})", -rc);
        value = result;
        return true;
    }

    /// <summary>
    /// Reads a per-CPU element and sums its 64-bit slots over all possible CPUs. The kernel copies one value per
    /// possible CPU, each rounded up to 8 bytes (kernel/bpf/syscall.c, bpf_map_value_size).
    /// </summary>
    public ulong[] LookupPerCpuSum<TKey>(TKey key) where TKey : unmanaged
    {
        if (!IsPerCpu)
            throw new InvalidOperationException($"Map '{Name}' is not a per-CPU map.");
        if (ValueSize % 8 != 0)
            throw new InvalidOperationException($"Map '{Name}' values are {ValueSize} bytes; only arrays of u64 can be summed.");
        CheckSizes(sizeof(TKey), (int)ValueSize, perCpu: true);
        var cpus = PossibleCpus;
        var stride = (int)ValueSize;
        var buffer = new ulong[stride / 8 * cpus];
        fixed (ulong* values = buffer)
        {
            var rc = LibBpf.bpf_map_lookup_elem(Fd, &key, values);
            if (rc == -2)
                return new ulong[stride / 8];
            if (rc < 0)
                throw new BpfException($"bpf_map_lookup_elem({Name})", -rc);
        }
        var sums = new ulong[stride / 8];
        for (var cpu = 0; cpu < cpus; cpu++)
            for (var slot = 0; slot < sums.Length; slot++)
                sums[slot] += buffer[cpu * sums.Length + slot];
        GC.KeepAlive(_owner);
        return sums;
    }

    /// <summary>Number of possible CPUs (libbpf_num_possible_cpus), the length of a per-CPU map lookup.</summary>
    public static int PossibleCpus
    {
        get
        {
            var n = LibBpf.libbpf_num_possible_cpus();
            return n > 0 ? n : throw new BpfException("libbpf_num_possible_cpus", -n);
        }
    }

    private void CheckSizes(int keySize, int valueSize, bool perCpu)
    {
        if (keySize != KeySize)
            throw new ArgumentException($"Map '{Name}' keys are {KeySize} bytes; got {keySize}.");
        if (!perCpu && valueSize != ValueSize)
            throw new ArgumentException($"Map '{Name}' values are {ValueSize} bytes; got {valueSize}.");
    }
}
