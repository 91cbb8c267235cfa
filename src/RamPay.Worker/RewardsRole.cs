using RamPay.Events;
using RamPay.Rewards;

namespace RamPay.Worker;

/// <summary>
/// The worker's <c>rewards</c> role (docs/rewards.md): the same <see cref="RewardsConsumer"/> as in the server, reaching
/// the server's service endpoints (<c>POST /v1/service/rewards/issue|reverse|retry</c>) with a service token that
/// <see cref="ServiceTokenHandler"/> keeps renewed. The server answers once the commands are durable, so the worker's
/// offsets are committed after a durable effect; the ledger refuses a second reward of a (payment, rule).
/// Flags: <c>--server URL</c>, <c>--token-file FILE</c>; environment: <c>RAMPAY_SERVICE_TOKEN</c>,
/// <c>RAMPAY_SERVICE_REFRESH_TOKEN</c>.
/// </summary>
public static class RewardsRole
{
    public static IEventConsumer Create(Func<string, string?> flag, Func<string, string?> env)
    {
        var logger = WorkerLogging.Factory.CreateLogger("RamPay.Worker.Rewards");
        var handler = ServiceTokenHandler.Create("rewards", flag, env, logger);
        var http = new HttpClient(handler) { BaseAddress = new Uri(flag("--server")!), Timeout = TimeSpan.FromSeconds(15) };
        return new RewardsConsumer(new HttpRewardCommands(http), checkpointFile: null);
    }
}

/// <summary>Loggers for what the roles build before the host (the same single-line console format as the host's).</summary>
public static class WorkerLogging
{
    public static readonly ILoggerFactory Factory = LoggerFactory.Create(b => b.AddSimpleConsole(o => { o.SingleLine = true; o.IncludeScopes = false; }));
}
