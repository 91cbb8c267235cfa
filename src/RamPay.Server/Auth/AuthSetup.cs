using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Authorization.Policy;
using Microsoft.AspNetCore.RateLimiting;
using RamPay.Redis;
using RamPay.Server.Hosting;
using RamPay.Server.Http;

namespace RamPay.Server.Auth;

/// <summary>The caller of a request whose bearer token was accepted; set by <see cref="BearerTokenHandler"/>.</summary>
public sealed record CallerFeature(VerifiedToken Token);

/// <summary>Endpoint metadata: the 403 message when the caller lacks the endpoint's role.</summary>
public sealed record ForbiddenMessage(string Message);

/// <summary>
/// Authentication, authorization, CORS and rate limiting from ASP.NET Core's own parts, wired once:
/// <see cref="AddRamPayAuth"/> registers them, <see cref="UseRamPayAuth"/> puts their middleware in the pipeline,
/// and <see cref="Routes"/> puts the policies on the route groups.
/// </summary>
public static class AuthSetup
{
    /// <summary>A user's endpoints (users and admins).</summary>
    public const string UserPolicy = "user";
    /// <summary>Administration (admins only).</summary>
    public const string AdminPolicy = "admin";
    /// <summary>
    /// The worker accounts' role alone (<c>service</c>, tokens from <c>POST /v1/admin/service_tokens</c>). The
    /// <c>/v1/service/*</c> routes take service or admin with a policy of their own (Rewards/RewardsApi.cs).
    /// </summary>
    public const string ServicePolicy = "service";
    /// <summary>The /v1 rate limit: per user, per client address before log-in.</summary>
    public const string RateLimitPolicy = "per-client";
    private const string CorsPolicy = "web-app";

    private const string MissingToken = "A valid bearer token is required: POST /v1/auth/token gives one.";
    private const string InvalidToken = "The bearer token is invalid or expired: POST /v1/auth/token gives a new one.";
    private const string RevokedToken = "The bearer token was revoked at logout: POST /v1/auth/token gives a new one.";
    private const string RevokedFailure = BearerTokenHandler.RevokedItem;

    /// <summary>
    /// Opens the signing-key ring and the session store in the data folder and registers the bearer scheme, the policies,
    /// CORS (when origins are configured) and the rate limiter over <paramref name="httpLimiter"/>. Returns the token
    /// service, which the TCP listener (through <see cref="Platform"/>) uses for its Hello.
    /// </summary>
    public static TokenService AddRamPayAuth(this IServiceCollection services, ServerOptions options, DataFolder data, Func<IServiceProvider, IRateLimiter> httpLimiter)
    {
        var jwt = options.Jwt;
        var keys = SigningKeyRing.Open(jwt.SigningKey, data, jwt.TokenLifetimeSeconds);
        var sessions = SessionStore.Open(data, jwt.RefreshTokenLifetimeSeconds, jwt.MaxRefreshTokens, jwt.MaxRevokedTokens);
        var tokens = new TokenService(keys, sessions, jwt.Issuer, jwt.Audience, jwt.TokenLifetimeSeconds);
        services.AddSingleton(tokens);
        services.AddSingleton(sessions);

        // ASP.NET Core's authentication with our bearer scheme (BearerTokenHandler says why not JwtBearer's handler).
        services.AddAuthentication(BearerTokenHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, BearerTokenHandler>(BearerTokenHandler.SchemeName, configureOptions: null);
        services.AddAuthorizationBuilder()
            .AddPolicy(UserPolicy, p => p.RequireRole(TokenService.RoleUser, TokenService.RoleAdmin))
            .AddPolicy(AdminPolicy, p => p.RequireRole(TokenService.RoleAdmin))
            .AddPolicy(ServicePolicy, p => p.RequireRole(TokenService.RoleService));
        services.AddSingleton<IAuthorizationMiddlewareResultHandler, ErrorShapeAuthorizationResultHandler>();

        string[] origins = options.Http.Cors.OriginList();
        if (origins.Length > 0)
        {
            services.AddSingleton<CorsConfigured>();
            services.AddCors(o => o.AddPolicy(CorsPolicy, p =>
            {
                if (origins is ["*"]) p.AllowAnyOrigin(); else p.WithOrigins(origins);
                // Bearer tokens, not cookies: no credentials mode.
                p.WithMethods("GET", "POST")
                    .WithHeaders("Authorization", "Content-Type", "Idempotency-Key", ErrorHandling.RequestIdHeader)
                    .WithExposedHeaders(ErrorHandling.RequestIdHeader, "Idempotent-Replayed", "Retry-After")
                    .SetPreflightMaxAge(TimeSpan.FromMinutes(10));
            }));
        }

        // The HTTP limiter needs the Redis connection, a service of the host: built once, when first asked.
        services.AddSingleton(sp => new HttpRateLimit(httpLimiter(sp)));
        services.AddRateLimiter(o =>
        {
            o.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            o.AddPolicy(RateLimitPolicy, ctx =>
            {
                var limit = ctx.RequestServices.GetRequiredService<HttpRateLimit>();
                if (!limit.Limiter.Enabled) return RateLimitPartition.GetNoLimiter("off");
                string key = ctx.Features.Get<CallerFeature>() is { } caller
                    ? "u:" + caller.Token.Caller.UserId.ToString(CultureInfo.InvariantCulture)
                    : "ip:" + (ctx.Connection.RemoteIpAddress?.ToString() ?? "unknown");
                return RateLimitPartition.Get(key, limit.Partition);
            });
            o.OnRejected = (rejected, _) =>
            {
                var limiter = rejected.HttpContext.RequestServices.GetRequiredService<HttpRateLimit>().Limiter;
                var retry = rejected.Lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? after : TimeSpan.FromSeconds(1);
                int seconds = new RateLimitDecision(false, retry).RetryAfterSeconds;
                rejected.HttpContext.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
                return new ValueTask(ErrorHandling.WriteErrorAsync(rejected.HttpContext, 429, "rate_limited",
                    $"Too many requests: at most {limiter.RatePerSecond} a second (bursts of {limiter.Burst}). Retry after {seconds} s."));
            };
        });
        return tokens;
    }

    /// <summary>
    /// CORS (when configured), then authentication, authorization and the rate limiter. Call after the error
    /// middleware (which sets the request id) and before the endpoints are mapped. Authorization runs before the rate
    /// limiter so that a request is limited by its user's bucket, and a request without a valid token is refused
    /// (401) without costing anyone a token, as before. No rate-limiter middleware when the HTTP limit is off.
    /// </summary>
    public static WebApplication UseRamPayAuth(this WebApplication app)
    {
        if (app.Services.GetService<CorsConfigured>() is not null) app.UseCors(CorsPolicy);
        app.UseAuthentication();
        app.UseAuthorization();
        // With the HTTP limit off (RateLimit:RequestsPerSecond=0) the middleware would only hand every request a
        // no-op lease, as one more async layer: it is left out, and the routes' limiter metadata has no effect.
        if (app.Services.GetRequiredService<ServerOptions>().RateLimit.RequestsPerSecond > 0) app.UseRateLimiter();
        return app;
    }

    /// <summary>The HTTP requests' shared buckets, and one partition factory for them (one delegate, not one per request).</summary>
    private sealed class HttpRateLimit
    {
        public HttpRateLimit(IRateLimiter limiter)
        {
            Limiter = limiter;
            Partition = key => new BucketRateLimiter(limiter, key);
        }

        public IRateLimiter Limiter { get; }
        public Func<string, RateLimiter> Partition { get; }
    }

    /// <summary>Registered when RamPay:Http:Cors:Origins names origins.</summary>
    private sealed class CorsConfigured;

    /// <summary>The verified caller of a request on an endpoint that requires a policy.</summary>
    public static VerifiedToken VerifiedCaller(this HttpContext ctx) =>
        ctx.Features.Get<CallerFeature>()?.Token ?? throw ApiError.Unauthorized();

    /// <summary>Writes the refusals of the authorization middleware in the API's error shape (docs/api.md).</summary>
    private sealed class ErrorShapeAuthorizationResultHandler : IAuthorizationMiddlewareResultHandler
    {
        public Task HandleAsync(RequestDelegate next, HttpContext ctx, AuthorizationPolicy policy, PolicyAuthorizationResult result)
        {
            if (result.Succeeded) return next(ctx);
            if (result.Forbidden && ctx.Features.Get<CallerFeature>() is not null)
            {
                string message = ctx.GetEndpoint()?.Metadata.GetMetadata<ForbiddenMessage>()?.Message ?? "Your token's role may not use this endpoint.";
                return ErrorHandling.WriteErrorAsync(ctx, 403, "forbidden", message);
            }
            string? header = ctx.Request.Headers.Authorization;
            bool sentToken = header is not null && header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) && header.AsSpan(7).Trim().Length > 0;
            string text = !sentToken ? MissingToken : ctx.Items.ContainsKey(RevokedFailure) ? RevokedToken : InvalidToken;
            return ErrorHandling.WriteErrorAsync(ctx, 401, "unauthorized", text);
        }
    }
}
