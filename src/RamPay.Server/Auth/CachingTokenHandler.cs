using System.Collections.Concurrent;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace RamPay.Server.Auth;

/// <summary>
/// The token handler JwtBearer and the TCP Hello validate with: <see cref="JsonWebTokenHandler"/>'s validation,
/// remembered per token string until the token expires, so that a client's every request does not parse the token,
/// verify its HMAC and build its claims again (profiled: that was most of the framework's cost per request).
/// </summary>
/// <remarks>
/// Only a token that passed every check is remembered, keyed by its exact text, so a changed byte is a miss and is
/// validated in full. A hit is re-checked for expiry; revocation and the claims checks run on every request after
/// this (TokenService.Check), so logout takes effect at once. The keys are dropped from the ring only after every
/// token they signed has expired (or at a restart, which empties this cache). Bounded: past
/// <see cref="Capacity"/> tokens the cache is emptied and refills with the tokens in use.
/// </remarks>
public sealed class CachingTokenHandler(JsonWebTokenHandler inner) : TokenHandler
{
    public const int Capacity = 10_000;
    private readonly ConcurrentDictionary<string, TokenValidationResult> _valid = new(StringComparer.Ordinal);

    public override int MaximumTokenSizeInBytes
    {
        get => inner.MaximumTokenSizeInBytes;
        set => inner.MaximumTokenSizeInBytes = value;
    }

    public override SecurityToken ReadToken(string token) => inner.ReadToken(token);

    public override Task<TokenValidationResult> ValidateTokenAsync(string token, TokenValidationParameters validationParameters)
    {
        if (_valid.TryGetValue(token, out var remembered))
        {
            // ClockSkew is zero: valid while exp is not in the past, as the full validation decides.
            if (remembered.SecurityToken.ValidTo >= DateTime.UtcNow) return Task.FromResult(remembered);
            _valid.TryRemove(token, out _);
        }
        return ValidateAndRemember(token, validationParameters);
    }

    private async Task<TokenValidationResult> ValidateAndRemember(string token, TokenValidationParameters validationParameters)
    {
        var result = await inner.ValidateTokenAsync(token, validationParameters).ConfigureAwait(false);
        if (result.IsValid && result.SecurityToken is JsonWebToken)
        {
            _ = result.ClaimsIdentity; // built once here, not raced for by the requests that share it
            if (_valid.Count >= Capacity) _valid.Clear();
            _valid[token] = result;
        }
        return result;
    }
}
