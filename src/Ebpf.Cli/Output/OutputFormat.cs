namespace Ebpf.Cli.Output;

/// <summary>-o/--output: how results are printed. table is for people; json and yaml are for scripts.</summary>
public enum OutputFormat { Table, Wide, Json, Yaml }

public static class OutputFormats
{
    public static bool TryParse(string? text, out OutputFormat format)
    {
        format = (text ?? "table").ToLowerInvariant() switch
        {
            "" or "table" => OutputFormat.Table,
            "wide" => OutputFormat.Wide,
            "json" => OutputFormat.Json,
            "yaml" => OutputFormat.Yaml,
            _ => (OutputFormat)(-1),
        };
        return Enum.IsDefined(format);
    }
}
