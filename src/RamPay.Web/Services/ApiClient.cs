using RamPay.Contracts;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Components;

namespace RamPay.Web.Services;

/// <summary>An answer of the API: the value, or the error in words (code and message), and whether it was a replay.</summary>
/// <see cref="ErrorField"/>: the field the server names in <c>error.field</c> (the notifications API's
/// <c>notifications.sms</c>), from <see cref="ApiError.Field"/>: kept beside the error so that a page can put the words
/// next to the input they are about.
public sealed record ApiResult<T>(T? Value, int Status, ApiError? Error, bool Replayed = false, string? ErrorField = null)
{
    public bool Ok => Error is null;
    /// <summary>No answer came (network failure, or the server was unavailable through every retry): the request may
    /// or may not have been applied, so a retry must reuse its Idempotency-Key.</summary>
    public bool Inconclusive => Error?.Code is ApiClient.NetworkError or "not_ready" or "sinks_lagging" or "internal_error";
}

/// <summary>
/// The public HTTP API (docs/api.md) with the session's bearer token. Renews the access token with the refresh token
/// (a minute before it expires, or once after a 401) and logs out when that fails. A POST that moves money carries the
/// caller's Idempotency-Key and is retried with the same key when no answer comes (a dropped connection, 503), so a
/// retry can never pay twice: the server answers the first result again.
/// </summary>
public sealed class ApiClient(HttpClient http, Session session, NavigationManager navigation)
{
    public const string NetworkError = "network_error";

    /// <summary>Attempts of one request when no answer comes (the first and two retries).</summary>
    public int MaxAttempts { get; set; } = 3;
    /// <summary>Waits between attempts: 300 ms, then 600 ms.</summary>
    public int RetryDelayMs { get; set; } = 300;

    private readonly SemaphoreSlim _refreshing = new(1, 1);

    public Task<ApiResult<T>> GetAsync<T>(string path, JsonTypeInfo<T> type) => SendAsync(HttpMethod.Get, path, null, type, null, anonymous: false);

    /// <summary>A POST; <paramref name="idempotencyKey"/> for every request that moves money (made once per user action).</summary>
    public Task<ApiResult<T>> PostAsync<T>(string path, JsonObject? body, JsonTypeInfo<T> type, string? idempotencyKey = null, bool anonymous = false) =>
        SendAsync(HttpMethod.Post, path, body, type, idempotencyKey, anonymous);

    /// <summary>A DELETE (a webhook endpoint): not retried; a second one after a lost answer is a 404 that changes nothing.</summary>
    public Task<ApiResult<T>> DeleteAsync<T>(string path, JsonTypeInfo<T> type) => SendAsync(HttpMethod.Delete, path, null, type, null, anonymous: false);

    /// <summary>A PATCH (the notification preferences of /v1/users/me): not retried, it moves no money and has no key.</summary>
    public Task<ApiResult<T>> PatchAsync<T>(string path, JsonObject body, JsonTypeInfo<T> type) => SendAsync(HttpMethod.Patch, path, body, type, null, anonymous: false);

    private async Task<ApiResult<T>> SendAsync<T>(HttpMethod method, string path, JsonObject? body, JsonTypeInfo<T> type, string? key, bool anonymous)
    {
        string? json = body?.ToJsonString();
        bool retriable = method == HttpMethod.Get || key is not null;
        bool refreshed = false;
        ApiResult<T>? last = null;
        for (int attempt = 1; attempt <= MaxAttempts; attempt++)
        {
            if (!anonymous && session.RefreshToken is not null && DateTimeOffset.UtcNow > session.AccessExpires.AddMinutes(-1))
                await RefreshAsync(session.AccessToken);
            string? token = anonymous ? null : session.AccessToken;
            using var request = new HttpRequestMessage(method, path.TrimStart('/'));
            if (token is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            if (key is not null) request.Headers.TryAddWithoutValidation("Idempotency-Key", key);
            if (json is not null) request.Content = new StringContent(json, Encoding.UTF8, "application/json");
            HttpResponseMessage response;
            try
            {
                response = await http.SendAsync(request);
            }
            catch (HttpRequestException)
            {
                last = new ApiResult<T>(default, 0, new ApiError(NetworkError,
                    "No answer from the server. Nothing is lost: try again and the same request is sent again, so it cannot happen twice.", null, null));
                if (!retriable) return last;
                await Task.Delay(RetryDelayMs * attempt);
                continue;
            }
            using (response)
            {
                var result = await ReadAsync(response, type);
                if (result.Status == 401 && !anonymous && !refreshed && session.RefreshToken is not null)
                {
                    refreshed = true;
                    if (await RefreshAsync(token)) { attempt--; continue; }
                }
                if (result.Status == 401 && !anonymous)
                {
                    await session.ClearAsync();
                    navigation.NavigateTo("login?expired=1");
                    return result;
                }
                if (retriable && result.Status == 503 && attempt < MaxAttempts)
                {
                    last = result;
                    await Task.Delay(RetryDelayMs * attempt);
                    continue;
                }
                return result;
            }
        }
        return last!;
    }

    private static async Task<ApiResult<T>> ReadAsync<T>(HttpResponseMessage response, JsonTypeInfo<T> type)
    {
        int status = (int)response.StatusCode;
        bool replayed = response.Headers.TryGetValues("Idempotent-Replayed", out var r) && r.Contains("true");
        string text = await response.Content.ReadAsStringAsync();
        if (response.IsSuccessStatusCode)
        {
            if (status == (int)HttpStatusCode.NoContent || text.Length == 0) return new ApiResult<T>(default, status, null, replayed);
            try
            {
                return new ApiResult<T>(JsonSerializer.Deserialize(text, type), status, null, replayed);
            }
            catch (JsonException)
            {
                return new ApiResult<T>(default, status, new ApiError("invalid_response", "The server's answer could not be read.", null, null));
            }
        }
        ApiError? error = null;
        string? field = null;
        try
        {
            error = JsonSerializer.Deserialize(text, RamPayJsonContext.Default.ErrorEnvelope)?.Error;
            field = error?.Field;
        }
        catch (JsonException) { }
        error ??= new ApiError("http_" + status, $"The server answered {status} {response.ReasonPhrase}.", null, null);
        return new ApiResult<T>(default, status, error, ErrorField: field);
    }

    /// <summary>
    /// Renews the tokens, once for all requests that need it: a refresh token is used up by its use, so two refreshes
    /// racing with the same one would look like a stolen token and end the session.
    /// </summary>
    private async Task<bool> RefreshAsync(string? staleAccessToken)
    {
        await _refreshing.WaitAsync();
        try
        {
            if (session.AccessToken != staleAccessToken && session.AccessToken is not null) return true; // another request renewed it
            if (session.RefreshToken is not { } refresh) return false;
            var body = new JsonObject { ["refresh_token"] = refresh };
            using var request = new HttpRequestMessage(HttpMethod.Post, "v1/auth/refresh") { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
            try
            {
                using var response = await http.SendAsync(request);
                var result = await ReadAsync(response, RamPayJsonContext.Default.TokenResponse);
                if (result.Ok && result.Value is { } tokens)
                {
                    await session.SetTokensAsync(tokens);
                    return true;
                }
            }
            catch (HttpRequestException)
            {
                return false;
            }
            await session.ClearAsync();
            navigation.NavigateTo("login?expired=1");
            return false;
        }
        finally
        {
            _refreshing.Release();
        }
    }

    // ---- the calls the pages make ---------------------------------------------------------------------------------

    public async Task<ApiResult<UserProfileView>> LogInAsync(string email, string password)
    {
        var tokens = await PostAsync("v1/auth/token", new JsonObject { ["email"] = email, ["password"] = password }, RamPayJsonContext.Default.TokenResponse, anonymous: true);
        if (!tokens.Ok) return new ApiResult<UserProfileView>(default, tokens.Status, tokens.Error, ErrorField: tokens.ErrorField);
        await session.SetTokensAsync(tokens.Value!);
        var me = await GetAsync("v1/users/me", RamPayJsonContext.Default.UserProfileView);
        if (me.Ok) await session.SetUserAsync(me.Value!);
        return me;
    }

    public async Task LogOutAsync()
    {
        if (session.AccessToken is not null)
        {
            var body = new JsonObject();
            if (session.RefreshToken is { } refresh) body["refresh_token"] = refresh;
            try { await PostAsync("v1/auth/logout", body, WebJson.Default.JsonElement); }
            catch (HttpRequestException) { }
        }
        await session.ClearAsync();
    }
}
