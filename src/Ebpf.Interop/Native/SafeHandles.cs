using System.Runtime.InteropServices;

namespace Ebpf.Interop.Native;

/// <summary>
/// Owns a struct bpf_object* and the ELF image it was opened from: libbpf keeps pointing into the buffer
/// until the object is closed, so the buffer lives in native memory freed together with the object.
/// </summary>
internal sealed unsafe class BpfObjectHandle : SafeHandle
{
    private void* _image;

    public BpfObjectHandle() : base(IntPtr.Zero, ownsHandle: true) { }

    public override bool IsInvalid => handle == IntPtr.Zero;

    internal static BpfObjectHandle Open(ReadOnlySpan<byte> elf, string objectName)
    {
        var image = NativeMemory.Alloc((nuint)elf.Length);
        elf.CopyTo(new Span<byte>(image, elf.Length));
        var nameBytes = System.Text.Encoding.UTF8.GetBytes(objectName + "\0");
        fixed (byte* name = nameBytes)
        {
            var opts = new LibBpf.BpfObjectOpenOpts { Size = (nuint)sizeof(LibBpf.BpfObjectOpenOpts), ObjectName = name };
            var obj = LibBpf.bpf_object__open_mem(image, (nuint)elf.Length, &opts);
            var errno = Marshal.GetLastPInvokeError();
            if (obj == IntPtr.Zero)
            {
                NativeMemory.Free(image);
                throw new BpfException("bpf_object__open_mem", errno == 0 ? 22 : errno, LibbpfLogForwarder.TakeRecent());
            }
            var result = new BpfObjectHandle();
            result.SetHandle(obj);
            result._image = image;
            return result;
        }
    }

    protected override bool ReleaseHandle()
    {
        LibBpf.bpf_object__close(handle);
        NativeMemory.Free(_image);
        _image = null;
        return true;
    }
}

/// <summary>Owns a struct bpf_link*; holds a reference on the object so the object closes after its links.</summary>
internal sealed class BpfLinkHandle : SafeHandle
{
    private BpfObjectHandle? _owner;

    public BpfLinkHandle() : base(IntPtr.Zero, ownsHandle: true) { }

    public override bool IsInvalid => handle == IntPtr.Zero;

    internal static BpfLinkHandle Attach(BpfObjectHandle owner, IntPtr program, string programName)
    {
        var added = false;
        owner.DangerousAddRef(ref added);
        var link = LibBpf.bpf_program__attach(program);
        var errno = Marshal.GetLastPInvokeError();
        if (link == IntPtr.Zero)
        {
            owner.DangerousRelease();
            throw new BpfException($"bpf_program__attach({programName})", errno == 0 ? 22 : errno, LibbpfLogForwarder.TakeRecent());
        }
        var result = new BpfLinkHandle { _owner = owner };
        result.SetHandle(link);
        return result;
    }

    protected override bool ReleaseHandle()
    {
        LibBpf.bpf_link__destroy(handle);
        _owner?.DangerousRelease();
        _owner = null;
        return true;
    }
}

/// <summary>Owns a struct ring_buffer*; holds a reference on the object whose map it reads.</summary>
internal sealed class RingBufferHandle : SafeHandle
{
    private BpfObjectHandle? _owner;

    public RingBufferHandle() : base(IntPtr.Zero, ownsHandle: true) { }

    public override bool IsInvalid => handle == IntPtr.Zero;

    internal static unsafe RingBufferHandle Create(BpfObjectHandle owner, int mapFd, delegate* unmanaged<IntPtr, IntPtr, nuint, int> callback, IntPtr context)
    {
        var added = false;
        owner.DangerousAddRef(ref added);
        var rb = LibBpf.ring_buffer__new(mapFd, callback, context, null);
        var errno = Marshal.GetLastPInvokeError();
        if (rb == IntPtr.Zero)
        {
            owner.DangerousRelease();
            throw new BpfException("ring_buffer__new", errno == 0 ? 22 : errno, LibbpfLogForwarder.TakeRecent());
        }
        var result = new RingBufferHandle { _owner = owner };
        result.SetHandle(rb);
        return result;
    }

    protected override bool ReleaseHandle()
    {
        LibBpf.ring_buffer__free(handle);
        _owner?.DangerousRelease();
        _owner = null;
        return true;
    }
}
