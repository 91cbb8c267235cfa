using RamPay.Core;
using RamPay.Redis;
using RamPay.Server.Auth;
using RamPay.Server.Hosting;

namespace RamPay.Server.Http;

/// <summary>What every ingress (HTTP and TCP) shares: the engine, the settings, tokens, limits and the platform's accounts.</summary>
public sealed class Platform(EngineHost engine, ServerOptions options, TokenService tokens, IRateLimiter tcpLimiter)
{
    public EngineHost Engine { get; } = engine;
    public ServerOptions Options { get; } = options;
    /// <summary>Issues and validates access tokens (the HTTP rate limit is the middleware's: AuthSetup).</summary>
    public TokenService Tokens { get; } = tokens;
    /// <summary>TCP commands per user (a frame costs its command count); disabled by default.</summary>
    public IRateLimiter TcpLimiter { get; } = tcpLimiter;

    /// <summary>The platform's funding account for each configured currency; filled once at start-up, then read-only.</summary>
    public IReadOnlyDictionary<Currency, long> FundingAccounts { get; private set; } = new Dictionary<Currency, long>();

    internal void SetFundingAccounts(IReadOnlyDictionary<Currency, long> accounts) => FundingAccounts = accounts;

    /// <summary>The rules that turn a caller's request into engine commands, for HTTP and TCP alike (Ingress/IngressGateway.cs).</summary>
    public Ingress.IngressGateway Gateway => _gateway ??= new Ingress.IngressGateway(this);
    private Ingress.IngressGateway? _gateway;
}
