namespace Ebpf.Agent.Configuration;

/// <summary>
/// The "host:port" split that listen addresses (<see cref="ListenAddress"/>) and API server endpoints
/// (<see cref="ApiServerEndpointList"/>) share. An IPv6 host is written in brackets ("[::1]:443", RFC 3986
/// section 3.2.2) so that its own colons are not read as the port separator. Which hosts and ports are acceptable
/// differs between the two (a listen port may be 0, an endpoint's may not), so the port is handed on as text.
/// </summary>
/// <param name="Host">The text before the last colon, without the brackets when it was bracketed; may be empty ("[]:80").</param>
/// <param name="IsBracketed">The host was written as "[...]".</param>
/// <param name="Port">The text after the last colon, never empty, not yet checked to be a number.</param>
public readonly record struct HostPortText(string Host, bool IsBracketed, string Port)
{
    /// <summary>
    /// Splits <paramref name="text"/> at its last colon; false when there is no colon, or nothing before or after it.
    /// A bracketed IPv6 host without a port ("[::1]") still has colons, so it splits inside the brackets and the
    /// caller's port rule rejects it.
    /// </summary>
    public static bool TrySplit(string text, out HostPortText parts)
    {
        int colon = text.LastIndexOf(':');
        if (colon <= 0 || colon == text.Length - 1)
        {
            parts = default;
            return false;
        }
        string host = text[..colon];
        bool bracketed = host.StartsWith('[') && host.EndsWith(']');
        parts = new HostPortText(bracketed ? host[1..^1] : host, bracketed, text[(colon + 1)..]);
        return true;
    }
}
