using System.Globalization;
using System.Net;

namespace Ebpf.Agent.Configuration;

/// <summary>
/// The API server endpoints the correlator matches pod connects against (<c>correlation.apiServerEndpoints</c>).
/// The connect hook sees the address a process dialled, before any Service NAT, so these must be IP literals: a
/// host name in the server URL cannot be matched and is left out rather than resolved (DNS may answer differently
/// than it did for the pod).
/// </summary>
public static class ApiServerEndpointList
{
    /// <summary>Parses "ip:port" ("[v6]:port" for IPv6); the port must be 1-65535.</summary>
    public static bool TryParse(string text, out IPEndPoint? endpoint, out string? error)
    {
        endpoint = null;
        error = null;
        if (!HostPortText.TrySplit(text, out var parts))
        {
            error = $"'{text}' is not ip:port";
            return false;
        }
        if (!parts.IsBracketed && parts.Host.Contains(':', StringComparison.Ordinal))
        {
            error = $"'{text}': an IPv6 address needs brackets ([addr]:port)";
            return false;
        }
        if (!IPAddress.TryParse(parts.Host, out var address))
        {
            error = $"'{text}': '{parts.Host}' is not an IP address (connects are matched by address, not by name)";
            return false;
        }
        if (!ushort.TryParse(parts.Port, NumberStyles.None, CultureInfo.InvariantCulture, out ushort port) || port == 0)
        {
            error = $"'{text}': port must be 1-65535";
            return false;
        }
        endpoint = new IPEndPoint(address, port);
        return true;
    }

    /// <summary>
    /// The endpoints to use: the configured ones when any; otherwise the API server URL's host:port when the host is an
    /// IP literal, plus KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT when set (the kubernetes Service pods dial,
    /// which differs from a kubeconfig's server address). Duplicates are dropped. Configured values must be valid
    /// (see <see cref="AgentOptionsValidator"/>).
    /// </summary>
    public static IReadOnlyList<IPEndPoint> Resolve(IReadOnlyList<string> configured, Uri? apiServer, Func<string, string?> environment)
    {
        var result = new List<IPEndPoint>();
        void Add(IPEndPoint endpoint)
        {
            if (!result.Contains(endpoint)) result.Add(endpoint);
        }
        if (configured.Count > 0)
        {
            foreach (var text in configured)
            {
                if (!TryParse(text, out var endpoint, out string? error))
                    throw new ConfigurationException("correlation.apiServerEndpoints: " + error);
                Add(endpoint!);
            }
            return result;
        }
        if (apiServer is not null && apiServer.HostNameType is UriHostNameType.IPv4 or UriHostNameType.IPv6
            && IPAddress.TryParse(apiServer.DnsSafeHost, out var serverAddress))
        {
            // Uri.Port is already the scheme's default (443 for https) when the URL names none.
            if (apiServer.Port is > 0 and <= ushort.MaxValue)
                Add(new IPEndPoint(serverAddress, apiServer.Port));
        }
        string? serviceHost = environment("KUBERNETES_SERVICE_HOST"), servicePort = environment("KUBERNETES_SERVICE_PORT");
        if (!string.IsNullOrEmpty(serviceHost) && IPAddress.TryParse(serviceHost, out var serviceAddress)
            && ushort.TryParse(servicePort, NumberStyles.None, CultureInfo.InvariantCulture, out ushort port) && port > 0)
            Add(new IPEndPoint(serviceAddress, port));
        return result;
    }
}
