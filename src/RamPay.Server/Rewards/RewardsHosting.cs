using System.Diagnostics.Metrics;
using RamPay.Analytics;
using RamPay.Core;
using RamPay.Events;
using RamPay.Rewards;
using RamPay.Server.Hosting;
using RamPay.Server.Http;

namespace RamPay.Server.Rewards;

/// <summary>
/// <see cref="IRewardCommands"/> inside the server: the candidate rules are read through the ring (a query), the
/// commands go straight into the engine in one submission, and the call returns when every result is durable.
/// </summary>
public sealed class EngineRewardCommands(EngineHost engine) : IRewardCommands
{
    /// <summary>The client id of the system's reward commands (their keys are scoped by it).</summary>
    public const long RewardsClientId = 0;

    public async Task<IReadOnlyList<RewardOutcome>> IssueAsync(IReadOnlyList<long> paymentIds, CancellationToken cancellationToken)
    {
        // Pre-filtered in the query so that obviously ineligible pairs are not journaled at all; the ledger decides.
        var pairs = await engine.QueryAsync(l =>
        {
            var list = new List<(long Payment, long Rule, long Attempt)>();
            foreach (long id in paymentIds)
            {
                if (!l.PaymentExists(id)) continue;
                var p = l.GetPayment(id);
                bool settled = (p.Kind == PaymentKind.Transfer && p.Status == PaymentStatus.Posted) || (p.Kind == PaymentKind.Authorization && p.Status == PaymentStatus.Captured);
                if (!settled) continue;
                foreach (var rule in l.RewardRules)
                {
                    var v = rule.VersionAt(p.CreatedAtMs);
                    if (v is null || v.Terms.Currency != p.Currency || !v.Terms.CoversTime(p.CreatedAtMs)) continue;
                    // A skipped reward is tried again under a key of its own attempt (the skip's time), so the retry is not
                    // answered with the stored skip; a redelivered event while it is still skipped replays that attempt.
                    long attempt = 0;
                    if (l.TryFindReward(id, rule.Id, out var existing))
                    {
                        if (existing.Status == RewardStatus.Issued) continue;
                        attempt = existing.IssuedAtMs;
                    }
                    list.Add((id, rule.Id, attempt));
                }
            }
            return list;
        });
        var commands = pairs.Select(x => new Command
        {
            Type = CommandType.IssueReward, ClientId = RewardsClientId, Key = IdempotencyKey.FromString(RewardsConsumer.IssueKey(x.Payment, x.Rule) + (x.Attempt == 0 ? "" : ":retry-after:" + x.Attempt.ToString(System.Globalization.CultureInfo.InvariantCulture))),
            PaymentId = x.Payment, Argument = x.Rule,
        }).ToArray();
        return await Run(commands, IssueOutcome);
    }

    public async Task<IReadOnlyList<RewardOutcome>> ReverseAsync(IReadOnlyList<(long PaymentId, long RefundId)> refunds, CancellationToken cancellationToken)
    {
        var commands = await engine.QueryAsync(l =>
        {
            var list = new List<Command>();
            foreach (var (payment, refund) in refunds)
                foreach (var reward in l.RewardsOfPayment(payment))
                    if (reward.Status == RewardStatus.Issued)
                        list.Add(new Command
                        {
                            Type = CommandType.ReverseReward, ClientId = RewardsClientId, PaymentId = payment, Argument = reward.RuleId,
                            Key = IdempotencyKey.FromString(RewardsConsumer.ReverseKey(payment, reward.RuleId, refund)),
                        });
            return list.ToArray();
        });
        return await Run(commands, static r => r.IsOk ? RewardOutcome.Reversed : RewardOutcome.Refused);
    }

    /// <summary>
    /// After a top-up of a rewards account: one more <c>IssueReward</c> for each skipped reward of its currency, oldest
    /// first, as long as the account's available balance (read in the same query) covers the rewards picked so far, so
    /// a small top-up does not journal commands that can only be skipped again. The key names the top-up
    /// (<c>rewards:retry:{payment}:{rule}:{top_up}</c>), so each skipped reward is tried at most once per top-up (a
    /// redelivered top-up event replays the same results); the ledger still pays a (payment, rule) at most once.
    /// Ids that are not top-ups of a rewards account are ignored (the consumer sends every deposit into a platform account).
    /// </summary>
    public async Task<IReadOnlyList<RewardOutcome>> RetrySkippedAsync(IReadOnlyList<long> topUpIds, CancellationToken cancellationToken)
    {
        var commands = await engine.QueryAsync(l =>
        {
            var list = new List<Command>();
            foreach (long topUp in topUpIds)
            {
                if (!l.PaymentExists(topUp)) continue;
                var p = l.GetPayment(topUp);
                if (p.Kind != PaymentKind.Deposit || p.Status != PaymentStatus.Posted || l.RewardsAccount(p.Currency) != p.ToAccount) continue;
                long room = l.GetAccount(p.ToAccount).Available;
                // A scan of the reward table on the writer's thread: a plain loop over structs, no allocation but the
                // list; bounded by the rewards that fit in the balance.
                for (long id = 1; id <= l.RewardCount && room > 0; id++)
                {
                    var r = l.GetReward(id);
                    if (r.Status != RewardStatus.Skipped || r.Currency != p.Currency || r.Amount > room) continue;
                    room -= r.Amount;
                    list.Add(new Command
                    {
                        Type = CommandType.IssueReward, ClientId = RewardsClientId, PaymentId = r.SourcePaymentId, Argument = r.RuleId,
                        Key = IdempotencyKey.FromString(RewardsConsumer.RetryKey(r.SourcePaymentId, r.RuleId, topUp)),
                    });
                }
            }
            return list.ToArray();
        });
        return await Run(commands, IssueOutcome);
    }

    internal static RewardOutcome IssueOutcome(CommandResult r) => r.Code switch
    {
        ResultCode.Ok when r.Replayed => RewardOutcome.AlreadyRewarded,
        ResultCode.Ok => RewardOutcome.Issued,
        ResultCode.RewardSkipped => RewardOutcome.Skipped,
        ResultCode.RewardExists => RewardOutcome.AlreadyRewarded,
        ResultCode.RewardNotEligible => RewardOutcome.NotEligible,
        _ => RewardOutcome.Refused,
    };

    private async Task<IReadOnlyList<RewardOutcome>> Run(Command[] commands, Func<CommandResult, RewardOutcome> outcome)
    {
        var outcomes = new List<RewardOutcome>(commands.Length);
        for (int start = 0; start < commands.Length; start += EngineHost.MaxBatch)
        {
            int count = Math.Min(EngineHost.MaxBatch, commands.Length - start);
            var pending = engine.Submit(commands.AsSpan(start, count));
            await engine.Wait(pending);
            foreach (var r in pending.Results) outcomes.Add(outcome(r));
        }
        return outcomes;
    }
}

/// <summary>
/// Opens the rewards funding account of every configured currency at start (after the platform's funding accounts),
/// each only if the ledger has none, keeps the figures the metrics show (read through the ring once a second), and saves
/// the analytics rollups once a second and at stop.
/// </summary>
public sealed class RewardsService(Platform platform, RewardsConsumer consumer, AnalyticsStore analytics, ILogger<RewardsService> logger) : LifecycleService
{
    private readonly CancellationTokenSource _stop = new();
    private volatile RewardsFigures _figures = new([], 0, 0);
    private Task? _refresh;

    public RewardsFigures Figures => _figures;

    public override async Task StartedAsync(CancellationToken cancellationToken)
    {
        var engine = platform.Engine;
        foreach (var currency in platform.Options.ParseCurrencies())
        {
            if (await engine.QueryAsync(l => l.RewardsAccount(currency), duringStartup: true) != 0) continue;
            var r = await engine.ExecuteAsync(new Command
            {
                Type = CommandType.OpenRewardsAccount, Currency = currency, ClientId = 0,
                Key = IdempotencyKey.FromString("system:open-rewards:" + currency),
            }, duringStartup: true);
            if (r.Code is not (ResultCode.Ok or ResultCode.RewardsAccountExists)) throw new InvalidOperationException($"could not open the {currency} rewards account: {r}");
            logger.LogInformation("opened the {Currency} rewards funding account {AccountId}", currency.ToString(), r.Id);
        }
        RewardsTelemetry.Register(this, consumer);
        _refresh = Task.Run(() => RefreshLoop(_stop.Token), CancellationToken.None);
    }

    private async Task RefreshLoop(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                _figures = await platform.Engine.QueryAsync(ReadFigures);
                analytics.Save(); // the rollups' tail, when no more events come to trigger a save
                consumer.FlushCheckpoint(); // likewise the rewards consumer's checkpoint
            }
            catch (Exception e) when (e is EngineUnavailableException or OperationCanceledException or InvalidOperationException)
            {
                // The engine is stopping; the figures keep their last values.
            }
            catch (IOException e)
            {
                logger.LogWarning(e, "could not save the analytics rollups or the rewards checkpoint; trying again in a second");
            }
            try { await Task.Delay(1_000, stop); } catch (OperationCanceledException) { return; }
        }
    }

    public static RewardsFigures ReadFigures(IReadOnlyLedger l)
    {
        var balances = l.RewardsAccounts.Select(a => (a.Currency, l.GetAccount(a.Account).Available)).ToArray();
        long issued = 0, skipped = 0;
        for (long id = 1; id <= l.RewardCount; id++)
        {
            if (l.GetReward(id).Status == RewardStatus.Issued) issued++; else skipped++;
        }
        return new RewardsFigures(balances, issued, skipped);
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        _stop.Cancel();
        if (_refresh is { } t) await t.WaitAsync(TimeSpan.FromSeconds(5), CancellationToken.None).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        analytics.SaveSnapshot(); // after the consumers stopped (they stop first: registered later); the next start reads no log
        consumer.FlushCheckpoint();
    }
}

/// <summary>The rewards' figures as of the last refresh: each rewards account's available balance, rewards issued and skipped.</summary>
public sealed record RewardsFigures((Currency Currency, long Available)[] Balances, long Issued, long Skipped);

/// <summary>
/// <c>rampay_rewards_funding_balance_minor{currency}</c> (what each rewards account can still pay; an alert watches it)
/// and <c>rampay_rewards_issued_total</c> (rewards paid, from the ledger, so it survives restarts), on the RamPay.Events meter.
/// </summary>
public static class RewardsTelemetry
{
    private static RewardsService? _service;
    private static RewardsConsumer? _consumer;
    private static int _registered;

    public static void Register(RewardsService service, RewardsConsumer consumer)
    {
        _service = service;
        _consumer = consumer;
        if (Interlocked.Exchange(ref _registered, 1) == 1) return; // instruments are made once per process (tests start several servers)
        EventsTelemetry.Meter.CreateObservableGauge("rampay_rewards_funding_balance_minor",
            () => (_service?.Figures.Balances ?? []).Select(b => new Measurement<long>(b.Available, new KeyValuePair<string, object?>("currency", b.Currency.ToString()))),
            description: "What each currency's rewards funding account can still pay, in minor units.");
        EventsTelemetry.Meter.CreateObservableCounter("rampay_rewards_issued_total", () => _service?.Figures.Issued ?? 0,
            description: "Rewards paid (status issued) in the ledger.");
        EventsTelemetry.Meter.CreateObservableCounter("rampay_rewards_skipped_total", () => _service?.Figures.Skipped ?? 0,
            description: "Rewards recorded as skipped: the rewards account could not pay.");
        EventsTelemetry.Meter.CreateObservableCounter("rampay_rewards_consumer_events_total", () => _consumer?.EventsSeen ?? 0,
            description: "Events the in-server rewards consumer has handled.");
    }
}

public static class RewardsComposition
{
    /// <summary>The rewards and analytics consumers (fed by the events helper's EventConsumersService), their services and state files.</summary>
    public static IServiceCollection AddRamPayRewards(this IServiceCollection services, ServerOptions options)
    {
        var data = new DataFolder(options.DataDirectory);
        string consumers = data.Consumers;
        services.AddSingleton<IRewardCommands>(sp => new EngineRewardCommands(sp.GetRequiredService<EngineHost>()));
        services.AddSingleton(sp => new RewardsConsumer(sp.GetRequiredService<IRewardCommands>(), Path.Combine(consumers, "rewards.checkpoint")));
        // Off when rampay-worker rewards consumes Kafka instead (RamPay:Rewards:InServerConsumer=false): one shape at a time.
        if (options.Rewards.InServerConsumer) services.AddSingleton<IEventConsumer>(sp => sp.GetRequiredService<RewardsConsumer>());
        services.AddSingleton(_ => new AnalyticsStore(Path.Combine(consumers, "analytics.rollups"), AnalyticsRetention.Parse(options.Rewards.AnalyticsUserRetention)));
        services.AddSingleton(sp => new AnalyticsConsumer(sp.GetRequiredService<AnalyticsStore>(), ScoresThroughTheRing(sp.GetRequiredService<EngineHost>())));
        services.AddSingleton<IEventConsumer>(sp => sp.GetRequiredService<AnalyticsConsumer>());
        services.AddLifecycle<RewardsService>();
        return services;
    }

    /// <summary>The analytics consumer's score lookup in the server: one query through the ring per batch, the ledger's own scores.</summary>
    private static AnalyticsConsumer.ScoreLookup ScoresThroughTheRing(EngineHost engine) => async (ids, _) =>
        await engine.QueryAsync<IReadOnlyDictionary<long, PaymentScore>>(l =>
        {
            var scores = new Dictionary<long, PaymentScore>(ids.Count);
            foreach (long id in ids)
                if (l.PaymentExists(id) && l.GetFraudScore(id) is { } f) scores[id] = new PaymentScore(f.ModelVersion, f.Score);
            return scores;
        });
}
