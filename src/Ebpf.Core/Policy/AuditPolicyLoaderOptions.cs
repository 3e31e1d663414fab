namespace Ebpf.Core.Policy;

/// <summary>Bounds applied while reading a policy file, which may come from an untrusted source.</summary>
public sealed class AuditPolicyLoaderOptions
{
    /// <summary>Largest accepted document, in bytes (UTF-8) or characters. Defaults to 1 MiB; real policies are a few KiB.</summary>
    public int MaxDocumentSize { get; init; } = 1024 * 1024;

    /// <summary>Deepest accepted nesting of mappings and sequences. Defaults to 32; a policy needs 5.</summary>
    public int MaxDepth { get; init; } = 32;

    /// <summary>Most YAML nodes (scalars, mappings, sequences) accepted. Defaults to 200,000.</summary>
    public int MaxNodes { get; init; } = 200_000;

    /// <summary>Most rules accepted. Defaults to 10,000.</summary>
    public int MaxRules { get; init; } = 10_000;

    public static AuditPolicyLoaderOptions Default { get; } = new();
}
