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
/// <see cref="TokenValidationParameters"/> everywhere: by JwtBearer for HTTP and by <see cref="TryValidate"/> for
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
        Handler = new CachingTokenHandler(_writer);
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

    /// <summary>The one handler that validates tokens, for JwtBearer and the TCP Hello alike (JsonWebTokenHandler behind a cache of valid tokens).</summary>
    public CachingTokenHandler Handler { get; }

    /// <summary>The one set of validation rules, for JwtBearer and the TCP Hello alike.</summary>
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
    /// the role one we issue, and the jti not revoked. Used by JwtBearer's OnTokenValidated and by <see cref="TryValidate"/>.
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

    /// <summary>Validates a token outside HTTP (the TCP Hello): the same handler, parameters and checks as JwtBearer.</summary>
    public bool TryValidate(string token, out VerifiedToken? verified)
    {
        verified = null;
        if (token.Length is 0 or > MaxTokenChars) return false;
        // With the keys in memory (no metadata document to fetch) the handler never waits: the task is complete
        // when it returns, so the Hello stays synchronous without blocking a thread.
        var result = Handler.ValidateTokenAsync(token, Parameters).GetAwaiter().GetResult();
        return result.IsValid && result.SecurityToken is JsonWebToken jwt && Check(jwt, out verified) == TokenCheck.Ok;
    }
}
