using RamPay.Analytics;
using RamPay.Events;

namespace RamPay.Worker;

/// <summary>
/// The worker's <c>analytics</c> role (docs/analytics.md): the same <see cref="AnalyticsConsumer"/> as in the server,
/// its rollups and per-partition positions in <c>--out DIR/analytics.rollups</c>, saved before each batch's offsets
/// are committed.
/// </summary>
public static class AnalyticsRole
{
    public static IEventConsumer Create(Func<string, string?> flag) =>
        new AnalyticsConsumer(new AnalyticsStore(Path.Combine(flag("--out") ?? throw new ArgumentException("the analytics consumer needs --out DIR"), "analytics.rollups")));
}
