using System.Globalization;
using Microsoft.Extensions.Configuration;
using YamlDotNet.RepresentationModel;

namespace Ebpf.Agent.Configuration;

/// <summary>
/// Builds <see cref="AgentOptions"/> from defaults, a YAML or JSON file, EBPF_* environment variables and flags,
/// in that order of precedence (last wins), and fills the node name from NODE_NAME or the host name.
/// </summary>
public static class AgentConfiguration
{
    /// <summary>Config files larger than this are refused: a config is a page of YAML, not a data set.</summary>
    private const long MaxConfigBytes = 1024 * 1024;

    public static AgentOptions Load(string? configPath, IReadOnlyDictionary<string, string?> flagOverrides,
        IDictionary<string, string?>? environment = null)
    {
        var builder = new ConfigurationBuilder();
        if (!string.IsNullOrEmpty(configPath))
            builder.AddInMemoryCollection(ReadFile(configPath));
        if (environment is null)
            builder.AddEnvironmentVariables("EBPF_");
        else
            builder.AddInMemoryCollection(environment
                .Where(kv => kv.Key.StartsWith("EBPF_", StringComparison.Ordinal))
                .Select(kv => new KeyValuePair<string, string?>(kv.Key["EBPF_".Length..].Replace("__", ":", StringComparison.Ordinal), kv.Value)));
        builder.AddInMemoryCollection(flagOverrides);

        var options = new AgentOptions();
        try
        {
            builder.Build().Bind(options, b => b.ErrorOnUnknownConfiguration = true);
        }
        catch (InvalidOperationException e)
        {
            throw new ConfigurationException($"configuration: {e.Message}", e);
        }
        if (string.IsNullOrWhiteSpace(options.NodeName))
        {
            string? fromEnv = environment is null ? Environment.GetEnvironmentVariable("NODE_NAME")
                : environment.TryGetValue("NODE_NAME", out var v) ? v : null;
            options.NodeName = string.IsNullOrWhiteSpace(fromEnv) ? Environment.MachineName : fromEnv;
        }
        return options;
    }

    /// <summary>Reads a YAML (or JSON, which is YAML) file into configuration key/value pairs.</summary>
    internal static Dictionary<string, string?> ReadFile(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists)
            throw new ConfigurationException($"config file '{path}' does not exist");
        if (info.Length > MaxConfigBytes)
            throw new ConfigurationException($"config file '{path}' is {info.Length} bytes; the limit is {MaxConfigBytes}");
        var yaml = new YamlStream();
        try
        {
            using var reader = new StreamReader(path);
            yaml.Load(reader);
        }
        catch (YamlDotNet.Core.YamlException e)
        {
            throw new ConfigurationException($"config file '{path}' line {e.Start.Line}, column {e.Start.Column}: {e.Message}", e);
        }
        var result = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        if (yaml.Documents.Count == 0)
            return result;
        if (yaml.Documents[0].RootNode is not YamlMappingNode root)
            throw new ConfigurationException($"config file '{path}' must be a mapping of settings at the top level");
        Flatten(root, "", result, depth: 0, path);
        return result;
    }

    private static void Flatten(YamlNode node, string prefix, Dictionary<string, string?> into, int depth, string file)
    {
        if (depth > 16)
            throw new ConfigurationException($"config file '{file}': nesting deeper than 16 levels at '{prefix}'");
        switch (node)
        {
            case YamlMappingNode map:
                foreach (var (key, value) in map.Children)
                {
                    string name = ((key as YamlScalarNode)?.Value) ?? throw new ConfigurationException($"config file '{file}': keys must be plain scalars (at '{prefix}')");
                    Flatten(value, prefix.Length == 0 ? name : $"{prefix}:{name}", into, depth + 1, file);
                }
                break;
            case YamlSequenceNode seq:
                for (int i = 0; i < seq.Children.Count; i++)
                    Flatten(seq.Children[i], $"{prefix}:{i.ToString(CultureInfo.InvariantCulture)}", into, depth + 1, file);
                break;
            case YamlScalarNode scalar:
                into[prefix] = scalar.Value;
                break;
            default:
                throw new ConfigurationException($"config file '{file}': unsupported YAML node at '{prefix}'");
        }
    }
}

/// <summary>The configuration cannot be used; the message says why and how to fix it.</summary>
public sealed class ConfigurationException(string message, Exception? inner = null) : Exception(message, inner);
