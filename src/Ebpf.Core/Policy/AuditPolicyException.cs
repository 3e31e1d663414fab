namespace Ebpf.Core.Policy;

/// <summary>One problem found while loading a policy: where (line/column, field path) and how to fix it.</summary>
public sealed record AuditPolicyError(int Line, int Column, string Path, string Message, string? Fix = null)
{
    public override string ToString()
    {
        var where = Line > 0 ? $"line {Line}, column {Column}: " : "";
        var path = Path.Length > 0 ? $"{Path}: " : "";
        var fix = Fix is null ? "" : $" (fix: {Fix})";
        return $"{where}{path}{Message}{fix}";
    }
}

/// <summary>Thrown when a policy file cannot be loaded; <see cref="Errors"/> lists every problem found.</summary>
public sealed class AuditPolicyException : Exception
{
    public AuditPolicyException(IReadOnlyList<AuditPolicyError> errors)
        : base(string.Join(Environment.NewLine, errors.Select(e => e.ToString())))
    {
        Errors = errors;
    }

    public AuditPolicyException(AuditPolicyError error) : this([error]) { }

    public IReadOnlyList<AuditPolicyError> Errors { get; }
}
