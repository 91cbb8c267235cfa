namespace RamPay.Webhooks;

/// <summary>The webhooks' settings (the server's <c>RamPay:Webhooks:*</c>).</summary>
public sealed record WebhookOptions
{
    /// <summary>Allow URLs on loopback/private/link-local networks, and http (tests, a private deployment).</summary>
    public bool AllowPrivateNetworks { get; init; }
    /// <summary>An attempt's limit: any 2xx within it is delivered.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>A delivery not delivered this long after it was queued is dead-lettered.</summary>
    public TimeSpan MaxAge { get; init; } = TimeSpan.FromDays(3);
    /// <summary>The first retry's delay; each next one doubles (with ±50 % jitter), up to <see cref="RetryMax"/>.</summary>
    public TimeSpan RetryBase { get; init; } = TimeSpan.FromSeconds(2);
    public TimeSpan RetryMax { get; init; } = TimeSpan.FromHours(1);
    /// <summary>Attempts in flight at once, over all endpoints.</summary>
    public int MaxConcurrency { get; init; } = DefaultMaxConcurrency;
    /// <summary>
    /// Attempts in flight at once to one endpoint (or one payment URL owner), and the most HTTP/1.1 connections the
    /// dispatcher opens to one host and port. 8 capped one endpoint at a few hundred deliveries a second here (one round
    /// trip per attempt per connection); 64 lets one busy endpoint take thousands, still a bound a receiver can plan for.
    /// </summary>
    public int MaxPerEndpoint { get; init; } = DefaultMaxPerEndpoint;
    public const int DefaultMaxConcurrency = 256;
    public const int DefaultMaxPerEndpoint = 64;
    /// <summary>The most bytes of a response body read (the rest is dropped with the connection).</summary>
    public int MaxResponseBytes { get; init; } = 4096;
    /// <summary>How long a rotated-out secret keeps signing beside the new one.</summary>
    public TimeSpan SecretOverlap { get; init; } = TimeSpan.FromHours(24);
    /// <summary>An endpoint whose every attempt has failed for this long is disabled (and its owner told).</summary>
    public TimeSpan DisableAfter { get; init; } = TimeSpan.FromDays(3);
    /// <summary>Consecutive failures that open an endpoint's circuit, and how long it stays open.</summary>
    public int BreakerFailures { get; init; } = 5;
    public TimeSpan BreakerOpen { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>How often the dispatcher looks for due deliveries when idle.</summary>
    public TimeSpan Poll { get; init; } = TimeSpan.FromMilliseconds(20);
    /// <summary>
    /// How long a dispatcher holds the deliveries it claimed (longer than an attempt and its outcome's write): when a
    /// worker dies mid-attempt, another of its group attempts them again once this has passed.
    /// </summary>
    public TimeSpan Lease { get; init; } = TimeSpan.FromSeconds(60);

    public void Validate()
    {
        if (Timeout <= TimeSpan.Zero || MaxAge <= TimeSpan.Zero || RetryBase <= TimeSpan.Zero || RetryMax < RetryBase) throw new ArgumentException("webhook timeouts must be positive, RetryMax >= RetryBase");
        if (MaxConcurrency < 1 || MaxPerEndpoint < 1 || MaxResponseBytes < 0 || BreakerFailures < 1) throw new ArgumentException("webhook limits must be positive");
        if (Lease <= Timeout) throw new ArgumentException("the webhook claim lease must be longer than an attempt's timeout");
    }
}
