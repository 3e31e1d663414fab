namespace Ebpf.Kubernetes.Api;

/// <summary>
/// The bearer token for requests. A token file is re-read once <see cref="RefreshInterval"/> has passed, like
/// client-go's cached file token source (1 minute): bound service-account tokens are rotated by the kubelet
/// in place, and a token read once at start-up expires.
/// </summary>
public sealed class BearerTokenSource
{
    private readonly string? _fixedToken;
    private readonly string? _tokenFile;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private string? _cached;
    private long _readAt;

    public BearerTokenSource(string? fixedToken, string? tokenFile, TimeSpan refreshInterval, TimeProvider? time = null)
    {
        _fixedToken = fixedToken;
        _tokenFile = tokenFile;
        RefreshInterval = refreshInterval;
        _time = time ?? TimeProvider.System;
    }

    public TimeSpan RefreshInterval { get; }

    /// <summary>The current token, or null when there is none (or the file cannot be read and none was read before).</summary>
    public string? GetToken()
    {
        if (_tokenFile is null) return _fixedToken;
        lock (_lock)
        {
            if (_cached is not null && _time.GetElapsedTime(_readAt) < RefreshInterval) return _cached;
            try
            {
                var text = File.ReadAllText(_tokenFile).Trim();
                if (text.Length > 0) _cached = text;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Keep the previous token: the kubelet swaps the file by renaming a symlink, a read can race it.
            }
            _readAt = _time.GetTimestamp();
            return _cached ?? _fixedToken;
        }
    }
}
