using System.Globalization;
using RamPay.Analytics;
using RamPay.Events;
using RamPay.Rewards;

namespace RamPay.Worker;

/// <summary>
/// The worker's <c>rewards</c> role (docs/rewards.md): the same <see cref="RewardsConsumer"/> as in the server, reaching
/// the server's service endpoints (<c>POST /v1/service/rewards/issue|reverse|retry</c>) with a service token that
/// <see cref="ServiceTokenHandler"/> keeps renewed. The server answers once the commands are durable, so the worker's
/// offsets are committed after a durable effect; the ledger refuses a second reward of a (payment, rule).
/// Flags: <c>--server URL</c>, <c>--token-file FILE</c>, <c>--round-events N</c> (events gathered per round, default
/// <see cref="DefaultRoundEvents"/>); environment: <c>RAMPAY_SERVICE_TOKEN</c>, <c>RAMPAY_SERVICE_REFRESH_TOKEN</c>.
/// </summary>
public static class RewardsRole
{
    /// <summary>
    /// Events per round (over all partitions) when the worker is behind: a round is one call per partition, and the next
    /// round is read once every call of this one is answered (durable). The workers' default
    /// (<see cref="IFlushingConsumer.DefaultRoundEvents"/>); 32,000 was measured live beside it and made no difference
    /// beyond the loaded machine's noise (docs/benchmarks.md, "Rewards worker live at 10,000 eligible payments/s"), so the
    /// flag stays for such measurements and the default is unchanged.
    /// </summary>
    public const int DefaultRoundEvents = IFlushingConsumer.DefaultRoundEvents;

    public static IEventConsumer Create(Func<string, string?> flag, Func<string, string?> env)
    {
        var logger = WorkerLogging.Factory.CreateLogger("RamPay.Worker.Rewards");
        var handler = ServiceTokenHandler.Create("rewards", flag, env, logger);
        var http = new HttpClient(handler) { BaseAddress = new Uri(flag("--server")!), Timeout = TimeSpan.FromSeconds(15) };
        int roundEvents = int.Parse(flag("--round-events") ?? DefaultRoundEvents.ToString(CultureInfo.InvariantCulture), NumberStyles.None, CultureInfo.InvariantCulture);
        if (roundEvents is < 1 or > 1_000_000) throw new ArgumentException("--round-events must be 1..1000000");
        return new Concurrent(new RewardsConsumer(new HttpRewardCommands(http), checkpointFile: null)) { RoundEvents = roundEvents };
    }

    /// <summary>
    /// The rewards consumer as the worker runs it: each partition's batch is one call into the server, and the calls of a
    /// round go side by side (the server answers each once its commands are durable, and the ledger decides what a
    /// reward is, so two calls in flight cannot pay twice; a refund's reversal that overtakes its issue is cancelled by
    /// the issue itself, docs/rewards.md). Nothing to flush: an answered call is durable.
    /// </summary>
    public sealed class Concurrent(RewardsConsumer inner) : IFlushingConsumer
    {
        public RewardsConsumer Inner => inner;
        public string Name => inner.Name;
        public bool ConcurrentPartitions => true;
        public int RoundEvents { get; init; } = DefaultRoundEvents;
        public ValueTask<EventPosition> ReadCheckpointAsync(CancellationToken cancellationToken) => inner.ReadCheckpointAsync(cancellationToken);
        public ValueTask HandleAsync(EventBatch batch, CancellationToken cancellationToken) => inner.HandleAsync(batch, cancellationToken);
        public ValueTask HandleAsync(EventBatch batch, EventFields[] fields, CancellationToken cancellationToken) => inner.HandleAsync(batch, fields, cancellationToken);
        /// <summary>Only the three types the consumer acts on (settled payments, refunds, top-ups): two events of three per reward are read no further than their envelope.</summary>
        public uint FieldTypes => RewardsConsumer.FieldTypes;
        public void Flush() { }
    }
}

/// <summary>Loggers for what the roles build before the host (the same single-line console format as the host's).</summary>
public static class WorkerLogging
{
    public static readonly ILoggerFactory Factory = LoggerFactory.Create(b => b.AddSimpleConsole(o => { o.SingleLine = true; o.IncludeScopes = false; }));
}
