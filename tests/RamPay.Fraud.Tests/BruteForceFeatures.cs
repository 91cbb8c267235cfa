namespace RamPay.Fraud.Tests;

/// <summary>
/// The features recomputed from the whole history of payments, with no rings, no running sums and no eviction: the
/// definition <see cref="FeatureStore"/> must agree with. Quadratic, for tests only.
/// </summary>
internal sealed class BruteForceFeatures
{
    private readonly List<(PaymentFacts Payment, bool WasNew)> _history = [];

    /// <summary>The features of <paramref name="p"/> given everything recorded so far, then records it.</summary>
    public double[] ComputeAndRecord(PaymentFacts p)
    {
        var f = new double[Features.Count];
        long now = p.NowMs;
        var sent = _history.Where(h => h.Payment.From == p.From).ToList();
        var received = _history.Where(h => h.Payment.To == p.To).ToList();

        bool InWindow(long t, long bucketMs, int buckets) => Bucket(t, bucketMs) > Bucket(now, bucketMs) - buckets;

        double amountLog2 = Math.Log2(1 + (double)p.Amount);
        f[Features.AmountLog2] = amountLog2;
        if (sent.Count == 0)
        {
            f[Features.AmountZ] = 0;
        }
        else
        {
            var logs = sent.Select(h => Math.Log2(1 + (double)h.Payment.Amount)).ToList();
            double mean = logs.Average();
            double variance = logs.Sum(x => (x - mean) * (x - mean)) / logs.Count;
            f[Features.AmountZ] = (amountLog2 - mean) / Math.Sqrt(variance + 0.25);
        }
        f[Features.SenderPaymentsLog2] = Math.Log2(1 + sent.Count);

        var s1m = sent.Where(h => InWindow(h.Payment.NowMs, FeatureStore.Bucket1mMs, FeatureStore.Buckets1m)).ToList();
        var s1h = sent.Where(h => InWindow(h.Payment.NowMs, FeatureStore.Bucket1hMs, FeatureStore.Buckets1h)).ToList();
        var s24h = sent.Where(h => InWindow(h.Payment.NowMs, FeatureStore.Bucket24hMs, FeatureStore.Buckets24h)).ToList();
        f[Features.SenderCount1m] = s1m.Count;
        f[Features.SenderSum1mLog2] = Math.Log2(1 + (double)s1m.Sum(h => h.Payment.Amount));
        f[Features.SenderCount1h] = s1h.Count;
        f[Features.SenderSum1hLog2] = Math.Log2(1 + (double)s1h.Sum(h => h.Payment.Amount));
        f[Features.SenderCount24h] = s24h.Count;
        f[Features.SenderSum24hLog2] = Math.Log2(1 + (double)s24h.Sum(h => h.Payment.Amount));
        f[Features.SenderNewPayees1h] = s1h.Count(h => h.WasNew);
        f[Features.SenderNewPayees24h] = s24h.Count(h => h.WasNew);
        long since = sent.Count > 0 ? now - sent[^1].Payment.NowMs : now - p.FromCreatedMs;
        f[Features.SecondsSinceLastLog2] = Math.Log2(1 + Math.Max(0, since) / 1000.0);

        // The sender's last eight distinct payees, most recent first.
        var recent = sent.AsEnumerable().Reverse().Select(h => h.Payment.To).Distinct().Take(FeatureStore.RecentPayees).ToHashSet();
        bool isNew = !recent.Contains(p.To);
        f[Features.ReceiverNewToSender] = isNew ? 1 : 0;
        f[Features.ReceiverCount1h] = received.Count(h => InWindow(h.Payment.NowMs, FeatureStore.Bucket1hMs, FeatureStore.Buckets1h));
        var r24h = received.Where(h => InWindow(h.Payment.NowMs, FeatureStore.Bucket24hMs, FeatureStore.Buckets24h)).ToList();
        f[Features.ReceiverCount24h] = r24h.Count;
        f[Features.ReceiverNewSenders24h] = r24h.Count(h => h.WasNew);
        long hour = (long)Math.Floor(now / 3_600_000.0) % 24;
        if (hour < 0) hour += 24;
        f[Features.HourOfDay] = hour;
        f[Features.Night] = hour < 6 ? 1 : 0;
        f[Features.SenderAgeLog2] = Math.Log2(1 + Math.Max(0, now - p.FromCreatedMs) / 3_600_000.0);
        f[Features.ReceiverAgeLog2] = Math.Log2(1 + Math.Max(0, now - p.ToCreatedMs) / 3_600_000.0);
        f[Features.DrainFraction] = p.FromAvailable > 0 ? Math.Min(1, p.Amount / (double)p.FromAvailable) : 1;

        _history.Add((p, isNew));
        return f;
    }

    private static long Bucket(long t, long bucketMs) => (long)Math.Floor(t / (double)bucketMs);
}
