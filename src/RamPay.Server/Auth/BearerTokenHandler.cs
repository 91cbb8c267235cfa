using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace RamPay.Server.Auth;

/// <summary>
/// The bearer scheme: ASP.NET Core's authentication (a scheme, its handler, <c>HttpContext.User</c>, the authorization
/// middleware and policies after it) over <see cref="TokenService.Validate"/>, the validation the TCP Hello uses:
/// JsonWebTokenHandler with the one set of <see cref="TokenService.Parameters"/>, remembered per valid token
/// (<see cref="CachingTokenHandler"/>), then our claims and revocation checks on every request.
/// </summary>
/// <remarks>
/// Our own handler in place of JwtBearer's because it measured faster (docs/benchmarks.md, "The HTTP payment path,
/// part by part"): per request JwtBearer clones the TokenValidationParameters, raises two events with their context
/// objects and builds a new principal and ticket, and its code is more for the tiered JIT to warm up. This handler
/// reuses the principal and ticket of a token already seen (they hold nothing per request) and does the same checks.
/// </remarks>
public sealed class BearerTokenHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder, TokenService tokens)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "Bearer";
    /// <summary>HttpContext.Items key: the token was refused because it was revoked (the 401 says so).</summary>
    public const string RevokedItem = "revoked";

    private static readonly Task<AuthenticateResult> NoToken = Task.FromResult(AuthenticateResult.NoResult());
    private static readonly Task<AuthenticateResult> Invalid = Task.FromResult(AuthenticateResult.Fail("invalid token"));
    private static readonly Task<AuthenticateResult> Revoked = Task.FromResult(AuthenticateResult.Fail("revoked token"));

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        string? header = Request.Headers.Authorization;
        if (header is null || header.Length <= 7 || !header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return NoToken;
        string token = header.AsSpan(7).Trim() is var t && t.Length == header.Length - 7 ? header[7..] : t.ToString();
        if (token.Length == 0) return NoToken;
        switch (tokens.Validate(token, out var verified, out var ticket))
        {
            case TokenCheck.Ok:
                Context.Features.Set(new CallerFeature(verified!));
                return Task.FromResult(AuthenticateResult.Success(ticket!));
            case TokenCheck.Revoked:
                Context.Items[RevokedItem] = true;
                return Revoked;
            default:
                return Invalid;
        }
    }

    /// <summary>The principal and ticket of a valid token, built once per token (<see cref="TokenService.Validate"/> keeps them).</summary>
    internal static AuthenticationTicket TicketFor(ClaimsIdentity identity) => new(new ClaimsPrincipal(identity), SchemeName);
}
