using RamPay.Contracts;
using System.Text.Json;
using Microsoft.JSInterop;

namespace RamPay.Web.Services;

/// <summary>
/// Who is logged in: the access and refresh tokens and the user, in memory and in the tab's sessionStorage (so a
/// reload keeps the session and closing the tab ends it; never a cookie, so there is nothing for CSRF to ride on).
/// </summary>
public sealed class Session(IJSRuntime js)
{
    private const string StorageKey = "rampay.session";

    public string? AccessToken { get; private set; }
    public string? RefreshToken { get; private set; }
    /// <summary>When the access token expires (the client's clock; renewed a minute before).</summary>
    public DateTimeOffset AccessExpires { get; private set; }
    public UserProfileView? User { get; private set; }

    public bool IsLoggedIn => AccessToken is not null && User is not null;
    public bool IsAdmin => User?.Role == "admin";

    /// <summary>Raised when the user logs in or out (the layout redraws its menu).</summary>
    public event Action? Changed;

    private bool _loaded;

    public async Task LoadAsync()
    {
        if (_loaded) return;
        _loaded = true;
        try
        {
            string? saved = await js.InvokeAsync<string?>("sessionStorage.getItem", StorageKey);
            if (string.IsNullOrEmpty(saved)) return;
            var s = JsonSerializer.Deserialize(saved, SessionJson.Default.Saved);
            if (s?.User is null) return;
            AccessToken = s.AccessToken;
            RefreshToken = s.RefreshToken;
            AccessExpires = DateTimeOffset.FromUnixTimeSeconds(s.AccessExpiresUnix);
            User = s.User;
        }
        catch (JsonException)
        {
            await ClearAsync();
        }
        Changed?.Invoke();
    }

    public async Task SetTokensAsync(TokenResponse tokens)
    {
        AccessToken = tokens.AccessToken;
        RefreshToken = tokens.RefreshToken;
        AccessExpires = DateTimeOffset.UtcNow.AddSeconds(tokens.ExpiresIn);
        await SaveAsync();
    }

    public async Task SetUserAsync(UserProfileView user)
    {
        User = user;
        await SaveAsync();
        Changed?.Invoke();
    }

    public async Task ClearAsync()
    {
        AccessToken = null;
        RefreshToken = null;
        User = null;
        await js.InvokeVoidAsync("sessionStorage.removeItem", StorageKey);
        Changed?.Invoke();
    }

    private async Task SaveAsync()
    {
        if (AccessToken is null) return;
        var s = new SessionJson.SavedSession(AccessToken, RefreshToken, AccessExpires.ToUnixTimeSeconds(), User);
        await js.InvokeVoidAsync("sessionStorage.setItem", StorageKey, JsonSerializer.Serialize(s, SessionJson.Default.Saved));
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(SessionJson.SavedSession), TypeInfoPropertyName = "Saved")]
public sealed partial class SessionJson : System.Text.Json.Serialization.JsonSerializerContext
{
    public sealed record SavedSession(string AccessToken, string? RefreshToken, long AccessExpiresUnix, UserProfileView? User);
}
