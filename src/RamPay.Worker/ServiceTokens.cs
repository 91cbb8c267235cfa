using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;

namespace RamPay.Worker;

/// <summary>
/// The worker's service token, kept fresh (docs/rewards.md, "Service tokens"). An admin's
/// <c>POST /v1/admin/service_tokens</c> gives an access token (valid <c>RamPay:Jwt:TokenLifetimeSeconds</c>) and a
/// refresh token; this handler puts the access token on every request and, once two thirds of its lifetime have passed
/// (or the server answered 401), renews both with <c>POST /v1/auth/refresh</c>. Refresh tokens rotate: each works
/// once, and presenting a used one revokes the session. So the current pair is kept in a token file (mode 0600,
/// replaced atomically) written <b>before</b> the new access token is used: a restarted worker starts from the file,
/// never from the first refresh token in its environment. One token (and file) per worker process: two workers
/// sharing one would present each other's used refresh tokens.
/// </summary>
public sealed class ServiceTokenHandler : DelegatingHandler
{
    private readonly Uri _server;
    private readonly string? _tokenFile;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private readonly HttpClient _auth;
    private string _access;
    private string? _refresh;
    private long _renewAtUnix;
    private long _renewals;

    public ServiceTokenHandler(Uri server, string access, string? refresh, string? tokenFile, ILogger logger, TimeProvider? time = null)
        : base(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
    {
        _server = server;
        _tokenFile = tokenFile;
        _logger = logger;
        _time = time ?? TimeProvider.System;
        _auth = new HttpClient { BaseAddress = server, Timeout = TimeSpan.FromSeconds(10) };
        _access = access;
        _refresh = refresh;
        _renewAtUnix = RenewAt(access);
    }

    /// <summary>Renewals made since the start (the tests read it from the log; a metric could too).</summary>
    public long Renewals => Interlocked.Read(ref _renewals);

    /// <summary>
    /// The tokens to start with: the token file when it exists (it holds the newest pair), else
    /// <c>RAMPAY_SERVICE_TOKEN</c> and <c>RAMPAY_SERVICE_REFRESH_TOKEN</c>. A refresh token needs a token file.
    /// </summary>
    public static ServiceTokenHandler Create(string role, Func<string, string?> flag, Func<string, string?> env, ILogger logger)
    {
        string server = flag("--server") ?? throw new ArgumentException($"the {role} consumer needs --server URL (and RAMPAY_SERVICE_TOKEN)");
        string? file = flag("--token-file");
        string? access = env("RAMPAY_SERVICE_TOKEN"), refresh = env("RAMPAY_SERVICE_REFRESH_TOKEN");
        if (file is not null && File.Exists(file))
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(file));
            access = doc.RootElement.GetProperty("access_token").GetString();
            refresh = doc.RootElement.TryGetProperty("refresh_token", out var r) ? r.GetString() : null;
        }
        if (string.IsNullOrEmpty(access))
            throw new ArgumentException($"the {role} consumer needs RAMPAY_SERVICE_TOKEN (a service token: POST /v1/admin/service_tokens) or --token-file FILE holding one");
        if (!string.IsNullOrEmpty(refresh) && file is null)
            throw new ArgumentException("RAMPAY_SERVICE_REFRESH_TOKEN needs --token-file FILE: refresh tokens rotate, so the worker must keep the newest one across restarts");
        if (string.IsNullOrEmpty(refresh))
            logger.LogWarning("no refresh token (RAMPAY_SERVICE_REFRESH_TOKEN): the service token cannot be renewed and stops working when it expires");
        var handler = new ServiceTokenHandler(new Uri(server), access, string.IsNullOrEmpty(refresh) ? null : refresh, file, logger);
        if (file is not null && !File.Exists(file)) handler.Save(); // from the first start on, the file is the truth
        return handler;
    }

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (_refresh is not null && _time.GetUtcNow().ToUnixTimeSeconds() >= Volatile.Read(ref _renewAtUnix))
            await RenewAsync(Volatile.Read(ref _access), cancellationToken).ConfigureAwait(false);
        string used = Volatile.Read(ref _access);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", used);
        var response = await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        // Expired while the worker or the server was down, or the signing key was rotated away: renew, and let the
        // caller fail this attempt (the worker re-reads the batch from its committed offset and sends it again).
        if (response.StatusCode == HttpStatusCode.Unauthorized && _refresh is not null)
            await RenewAsync(used, cancellationToken).ConfigureAwait(false);
        return response;
    }

    /// <summary>Renews the pair unless another call already replaced <paramref name="stale"/>. Failures are logged, not thrown.</summary>
    private async Task RenewAsync(string stale, CancellationToken cancellationToken)
    {
        await _lock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!ReferenceEquals(Volatile.Read(ref _access), stale) || _refresh is null) return;
            using var response = await _auth.PostAsJsonAsync("/v1/auth/refresh", new Dictionary<string, string> { ["refresh_token"] = _refresh }, cancellationToken).ConfigureAwait(false);
            string body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                if (response.StatusCode == HttpStatusCode.Unauthorized)
                {
                    // The session is over (expired, revoked, or a used refresh token was presented): no retry can help.
                    _logger.LogError("the service session cannot be renewed ({Status}: {Body}); an admin must issue a new service token (POST /v1/admin/service_tokens)", (int)response.StatusCode, body);
                    _refresh = null;
                }
                else
                {
                    _logger.LogWarning("renewing the service token: the server answered {Status}; trying again on the next request", (int)response.StatusCode);
                }
                return;
            }
            using var doc = JsonDocument.Parse(body);
            string access = doc.RootElement.GetProperty("access_token").GetString() ?? throw new InvalidDataException("no access_token in the refresh answer");
            _refresh = doc.RootElement.GetProperty("refresh_token").GetString() ?? throw new InvalidDataException("no refresh_token in the refresh answer");
            Volatile.Write(ref _access, access);
            Save(); // before the new access token is used: a crash after this starts from the new pair
            Volatile.Write(ref _renewAtUnix, RenewAt(access));
            long n = Interlocked.Increment(ref _renewals);
            _logger.LogInformation("service token renewed ({Renewals} so far); next renewal at {RenewAt:O}", n, DateTimeOffset.FromUnixTimeSeconds(_renewAtUnix));
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            _logger.LogWarning("renewing the service token: {Error}; trying again on the next request", e.Message);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Writes the current pair to the token file: temp file (0600), fsync, rename over the old one.</summary>
    private void Save()
    {
        if (_tokenFile is null) return;
        string temp = _tokenFile + ".tmp";
        var json = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, string?> { ["access_token"] = _access, ["refresh_token"] = _refresh });
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var stream = new FileStream(temp, options))
        {
            stream.Write(json);
            stream.Flush(flushToDisk: true);
        }
        File.Move(temp, _tokenFile, overwrite: true);
    }

    /// <summary>When to renew a token: two thirds of the way from its <c>iat</c> to its <c>exp</c> (read from the JWT, unverified: it is ours).</summary>
    public static long RenewAt(string jwt)
    {
        string[] parts = jwt.Split('.');
        if (parts.Length != 3) return long.MaxValue;
        try
        {
            string payload = parts[1].Replace('-', '+').Replace('_', '/');
            payload = payload.PadRight(payload.Length + (4 - payload.Length % 4) % 4, '=');
            using var doc = JsonDocument.Parse(Encoding.UTF8.GetString(Convert.FromBase64String(payload)));
            long exp = doc.RootElement.GetProperty("exp").GetInt64();
            long iat = doc.RootElement.TryGetProperty("iat", out var i) ? i.GetInt64() : exp - 3600;
            return iat + (exp - iat) * 2 / 3;
        }
        catch (Exception e) when (e is FormatException or JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return long.MaxValue; // not a JWT we can read: used as it is until the server says 401
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) { _auth.Dispose(); _lock.Dispose(); }
        base.Dispose(disposing);
    }
}
