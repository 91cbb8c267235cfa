using Microsoft.AspNetCore.Routing.Constraints;

namespace RamPay.Server.Hosting;

/// <summary>
/// Serves the web app (src/RamPay.Web, Blazor WebAssembly; docs/web.md) from the server itself: its framework and
/// static files, and <c>index.html</c> for any other GET of a page (client-side routes such as <c>/wallet</c>). The
/// API keeps its own answers: <c>/v1/*</c>, <c>/health/*</c>, <c>/metrics</c> and <c>/swagger</c> are never the app,
/// and an unknown <c>/v1</c> path is still the JSON <c>404 not_found</c> of the API's fallback. The app's responses
/// carry a content security policy and the usual security headers.
/// </summary>
public static class WebApp
{
    /// <summary>
    /// The app's policy: its own scripts only, plus WebAssembly compilation ('wasm-unsafe-eval', which Blazor's runtime
    /// needs, without allowing JavaScript eval); no inline script; calls to this origin only (the API); no framing.
    /// Inline styles are allowed because MudBlazor's components set style attributes.
    /// </summary>
    public const string ContentSecurityPolicy =
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
        "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

    private const string PageConstraint = "webpage";

    /// <summary>Paths that belong to the API and its tools, never to the app.</summary>
    private static readonly string[] ApiPrefixes = ["/v1", "/health", "/metrics", "/swagger"];

    public static bool IsApiPath(PathString path)
    {
        foreach (string prefix in ApiPrefixes)
            if (path.StartsWithSegments(prefix, StringComparison.OrdinalIgnoreCase)) return true;
        return false;
    }

    /// <summary>
    /// The app's files from the build's manifest (rampay-server.staticwebassets.runtime.json, which points into
    /// src/RamPay.Web's build output), in every environment: ASP.NET Core reads it only in Development by itself, and
    /// <c>dotnet run -c Release</c> runs as Production. A published server has no such manifest and serves its wwwroot.
    /// </summary>
    public static IWebHostBuilder UseRamPayWebAssets(this IWebHostBuilder web) => web.UseStaticWebAssets();

    /// <summary>Registers the route constraint that keeps the app's page route off the API's paths.</summary>
    public static IServiceCollection AddRamPayWebApp(this IServiceCollection services) =>
        services.Configure<RouteOptions>(o => o.SetParameterPolicy<PagePathConstraint>(PageConstraint));

    /// <summary>
    /// The security headers, then the app's files (the static web assets of RamPay.Web, from the build's or the
    /// publish's manifest), and the page route. Called early in the pipeline: files need no token and no rate limit.
    /// </summary>
    public static WebApplication UseRamPayWebApp(this WebApplication app)
    {
        app.Use(static (ctx, next) =>
        {
            if (!IsApiPath(ctx.Request.Path))
            {
                var h = ctx.Response.Headers;
                h.ContentSecurityPolicy = ContentSecurityPolicy;
                h.XContentTypeOptions = "nosniff";
                h.XFrameOptions = "DENY";
                h["Referrer-Policy"] = "no-referrer";
                h["Cross-Origin-Opener-Policy"] = "same-origin";
                h["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), payment=()";
            }
            return next(ctx);
        });
        // The manifest is the server's own (named after its assembly, not the host's: tests compose the server inside
        // their test host). Without one (a build without the app), only the page route answers, with a 404.
        string manifest = Path.Combine(AppContext.BaseDirectory, typeof(WebApp).Assembly.GetName().Name + ".staticwebassets.endpoints.json");
        if (File.Exists(manifest)) app.MapStaticAssets(manifest).Add(b => b.Metadata.Add(Asset.Instance));
        // Any other GET of a page (no file extension, not an API path) is the app, which routes it in the browser.
        app.MapMethods($"{{*path:nonfile:{PageConstraint}}}", ["GET", "HEAD"], IndexHtml).ExcludeFromDescription();
        return app;
    }

    /// <summary>Marks the endpoints of the app's files (so route-table tests can tell them from the API's).</summary>
    public sealed class Asset
    {
        public static readonly Asset Instance = new();
    }

    private static async Task IndexHtml(HttpContext ctx)
    {
        var env = ctx.RequestServices.GetRequiredService<IWebHostEnvironment>();
        var file = env.WebRootFileProvider.GetFileInfo("index.html");
        if (!file.Exists)
        {
            await Http.ErrorHandling.WriteErrorAsync(ctx, 404, "not_found", "The web app is not built into this server (src/RamPay.Web).");
            return;
        }
        ctx.Response.ContentType = "text/html; charset=utf-8";
        ctx.Response.Headers.CacheControl = "no-cache";
        await ctx.Response.SendFileAsync(file, ctx.RequestAborted);
    }

    /// <summary>Matches a path that is not the API's (see <see cref="ApiPrefixes"/>).</summary>
    private sealed class PagePathConstraint : IRouteConstraint
    {
        public bool Match(HttpContext? httpContext, IRouter? route, string routeKey, RouteValueDictionary values, RouteDirection routeDirection) =>
            httpContext is null || !IsApiPath(httpContext.Request.Path);
    }
}
