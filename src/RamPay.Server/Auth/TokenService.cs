using System.Globalization;
using System.Security.Cryptography;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace RamPay.Server.Auth;

/// <summary>Who sent a request, from a verified token.</summary>
public readonly record struct Caller(long UserId, bool IsAdmin);

/// <summary>A token that passed every check: its caller, role, id (<c>jti</c>) and expiry.</summary>
public sealed record VerifiedToken(Caller Caller, string Role, string Jti, long ExpiresUnix);

/// <summary>An access token as issued.</summary>
public readonly record struct IssuedToken(string Token, string Jti, long ExpiresUnix);

/// <summary>What the checks after the signature and lifetime found.</summary>
public enum TokenCheck { Ok, BadClaims, Revoked }

/// <summary>
/// Access tokens: HS256 JSON Web Tokens (RFC 7519) issued with Microsoft.IdentityModel's
/// <see cref="JsonWebTokenHandler"/> and checked with the same handler and the same
/// <see cref="TokenValidationParameters"/> everywhere: by the HTTP bearer scheme and by <see cref="TryValidate"/> for
/// the TCP Hello. Claims, as before this used the framework: <c>iss</c>, <c>aud</c>, <c>sub</c> (the user id),
/// <c>role</c> (<c>user</c>, <c>admin</c> or <c>service</c>), <c>iat</c>, <c>exp</c>, <c>jti</c>; the header
/// names the signing key (<c>kid</c>, <see cref="SigningKeyRing"/>).
/// </summary>
/// <remarks>
/// Refused: any algorithm but HS256 (<c>alg: none</c> included, <see cref="TokenValidationParameters.ValidAlgorithms"/>),
/// a signature that does not verify with the key the kid names, another issuer or audience, an expired token (no
/// clock skew allowed: a token of 2 s lives 2 s), a subject that is not a user id, an unknown role, and a token
/// whose jti was revoked at logout (<see cref="SessionStore"/>).
/// </remarks>
public sealed class TokenService
{
    public const string RoleUser = "user", RoleAdmin = "admin", RoleService = "service";
    /// <summary>Longest token accepted; ours are about 300 characters.</summary>
    public const int MaxTokenChars = 4096;

    private readonly TimeProvider _time;
    private readonly string _issuer;
    private readonly string _audience;
    private readonly JsonWebTokenHandler _writer;

    public TokenService(SigningKeyRing keys, SessionStore sessions, string issuer, string audience, int lifetimeSeconds, TimeProvider? time = null)
    {
        Keys = keys;
        Sessions = sessions;
        _issuer = issuer;
        _audience = audience;
        LifetimeSeconds = lifetimeSeconds;
        _time = time ?? TimeProvider.System;
        _writer = new JsonWebTokenHandler { MapInboundClaims = false, SetDefaultTimesOnTokenCreation = false, MaximumTokenSizeInBytes = MaxTokenChars };
        Parameters = new TokenValidationParameters
        {
            ValidIssuer = issuer,
            ValidAudience = audience,
            ValidAlgorithms = [SecurityAlgorithms.HmacSha256],
            IssuerSigningKeyResolver = (_, _, kid, _) => Keys.Resolve(kid),
            RequireSignedTokens = true,
            RequireExpirationTime = true,
            ValidateLifetime = true,
            ClockSkew = TimeSpan.Zero,
            NameClaimType = "sub",
            RoleClaimType = "role",
            // The key ring holds only our own keys; there is no key metadata to validate beyond the signature.
            ValidateIssuerSigningKey = false,
        };
    }

    public SigningKeyRing Keys { get; }
    public SessionStore Sessions { get; }
    public int LifetimeSeconds { get; }

    /// <summary>The one set of validation rules, for the HTTP bearer scheme and the TCP Hello alike.</summary>
    public TokenValidationParameters Parameters { get; }

    public IssuedToken Issue(long userId, string role)
    {
        var now = _time.GetUtcNow();
        var expires = now.AddSeconds(LifetimeSeconds);
        string jti = Convert.ToHexString(RandomNumberGenerator.GetBytes(12));
        string token = _writer.CreateToken(new SecurityTokenDescriptor
        {
            Issuer = _issuer,
            Audience = _audience,
            IssuedAt = now.UtcDateTime,
            Expires = expires.UtcDateTime,
            Claims = new Dictionary<string, object>
            {
                ["sub"] = userId.ToString(CultureInfo.InvariantCulture),
                ["role"] = role,
                ["jti"] = jti,
            },
            SigningCredentials = new SigningCredentials(Keys.Current, SecurityAlgorithms.HmacSha256),
        });
        return new IssuedToken(token, jti, expires.ToUnixTimeSeconds());
    }

    /// <summary>
    /// The checks after the handler's (signature, algorithm, issuer, audience, lifetime): the subject is a user id,
    /// the role one we issue, and the jti not revoked. Used by <see cref="Validate"/> (HTTP and TCP).
    /// </summary>
    public TokenCheck Check(JsonWebToken token, out VerifiedToken? verified)
    {
        verified = null;
        if (!long.TryParse(token.Subject, NumberStyles.None, CultureInfo.InvariantCulture, out long userId) || userId <= 0) return TokenCheck.BadClaims;
        if (!token.TryGetPayloadValue<string>("role", out var role) || role is not (RoleUser or RoleAdmin or RoleService)) return TokenCheck.BadClaims;
        string jti = token.Id;
        if (string.IsNullOrEmpty(jti) || !token.TryGetPayloadValue<long>("exp", out long exp)) return TokenCheck.BadClaims;
        if (Sessions.IsDenied(jti)) return TokenCheck.Revoked;
        verified = new VerifiedToken(new Caller(userId, role == RoleAdmin), role, jti, exp);
        return TokenCheck.Ok;
    }

    /// <summary>Validates a token outside HTTP (the TCP Hello): the same validation as the HTTP bearer scheme.</summary>
    public bool TryValidate(string token, out VerifiedToken? verified) => Validate(token, out verified, out _) == TokenCheck.Ok;

    /// <summary>Most tokens remembered at once; past it the memory is emptied and refills with the tokens in use.</summary>
    public const int RememberedCapacity = 10_000;
    private sealed record Remembered(VerifiedToken Verified, Microsoft.AspNetCore.Authentication.AuthenticationTicket Ticket, DateTime ValidTo);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Remembered> _remembered = new(StringComparer.Ordinal);

    /// <summary>
    /// Validates a bearer token for HTTP (<see cref="BearerTokenHandler"/>) and the TCP Hello: JsonWebTokenHandler with
    /// <see cref="Parameters"/>, then <see cref="Check"/>. A token that passed is remembered by its exact text with its
    /// caller and ticket until it expires, so a client's next requests do not parse it, verify its HMAC and build its
    /// claims again; revocation is checked on every call, so logout takes effect at once.
    /// </summary>
    public TokenCheck Validate(string token, out VerifiedToken? verified, out Microsoft.AspNetCore.Authentication.AuthenticationTicket? ticket)
    {
        verified = null;
        ticket = null;
        if (token.Length is 0 or > MaxTokenChars) return TokenCheck.BadClaims;
        if (_remembered.TryGetValue(token, out var known))
        {
            // ClockSkew is zero: valid while exp is not in the past, as the full validation (on the system clock) decides.
            if (known.ValidTo >= DateTime.UtcNow)
            {
                if (Sessions.IsDenied(known.Verified.Jti)) return TokenCheck.Revoked;
                verified = known.Verified;
                ticket = known.Ticket;
                return TokenCheck.Ok;
            }
            _remembered.TryRemove(token, out _);
        }
        // With the keys in memory (no metadata document to fetch) the handler never waits: the task is complete
        // when it returns, so validation stays synchronous without blocking a thread.
        var result = _writer.ValidateTokenAsync(token, Parameters).GetAwaiter().GetResult();
        if (!result.IsValid || result.SecurityToken is not JsonWebToken jwt) return TokenCheck.BadClaims;
        var check = Check(jwt, out verified);
        if (check != TokenCheck.Ok) return check;
        ticket = BearerTokenHandler.TicketFor(result.ClaimsIdentity);
        if (_remembered.Count >= RememberedCapacity) _remembered.Clear();
        _remembered[token] = new Remembered(verified!, ticket, jwt.ValidTo);
        return TokenCheck.Ok;
    }
}
