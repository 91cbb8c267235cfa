using FsCheck;
using FsCheck.Fluent;

namespace RamPay.Fraud.Tests;

public class FeatureStoreTests
{
    // Counts, sums, flags and hours must match exactly; logarithms and the z-score are compared to a tolerance because
    // the store computes them with DetMath and a running (Welford) variance, the brute force with Math and two passes.
    private static readonly HashSet<int> Approximate =
    [
        Features.AmountLog2, Features.AmountZ, Features.SenderPaymentsLog2, Features.SenderSum1mLog2, Features.SenderSum1hLog2,
        Features.SenderSum24hLog2, Features.SecondsSinceLastLog2, Features.SenderAgeLog2, Features.ReceiverAgeLog2,
    ];

    /// <summary>
    /// A random stream: few accounts (so that pairs repeat and the eight-payee list overflows), gaps from 0 ms to
    /// days (so that every window fills, slides and empties), amounts over six orders of magnitude.
    /// </summary>
    private static List<PaymentFacts> RandomStream(int seed, int count, int accounts)
    {
        var rng = new Random(seed);
        long start = 1_780_000_000_000 + rng.Next(0, 86_400_000);
        var created = Enumerable.Range(0, accounts + 1).Select(_ => start - rng.NextInt64(0, 90L * 86_400_000)).ToArray();
        var list = new List<PaymentFacts>(count);
        long now = start;
        for (int i = 0; i < count; i++)
        {
            now += rng.Next(8) switch
            {
                0 => 0,
                1 or 2 => rng.Next(0, 5_000),
                3 or 4 => rng.Next(0, 120_000),
                5 => rng.Next(0, 1_800_000),
                6 => rng.Next(0, 7_200_000),
                _ => rng.NextInt64(0, 2 * 86_400_000L),
            };
            int from = 1 + rng.Next(accounts);
            int to = 1 + rng.Next(accounts - 1);
            if (to >= from) to++;
            long amount = (long)Math.Pow(10, rng.NextDouble() * 6) + 1;
            long available = rng.Next(4) == 0 ? -rng.Next(1000) : amount + rng.NextInt64(0, 10 * amount);
            list.Add(new PaymentFacts(from, to, amount, now, created[from], created[to], available));
        }
        return list;
    }

    private static string? Compare(IReadOnlyList<PaymentFacts> stream, int maxAccounts)
    {
        var store = new FeatureStore(maxAccounts);
        var brute = new BruteForceFeatures();
        Span<double> actual = stackalloc double[Features.Count];
        for (int i = 0; i < stream.Count; i++)
        {
            var p = stream[i];
            store.ComputeAndRecord(p, actual);
            var expected = brute.ComputeAndRecord(p);
            for (int k = 0; k < Features.Count; k++)
            {
                bool ok = Approximate.Contains(k) ? Math.Abs(actual[k] - expected[k]) <= 1e-9 * Math.Max(1, Math.Abs(expected[k])) : actual[k] == expected[k];
                if (!ok) return $"payment {i} ({p}): {Features.Name(k)} is {actual[k]:R}, brute force says {expected[k]:R}";
            }
        }
        return null;
    }

    [Theory]
    [InlineData(1, 3)]
    [InlineData(2, 6)]
    [InlineData(3, 12)]
    [InlineData(4, 30)]
    public void Windows_and_counters_match_a_brute_force_recomputation_on_seeded_streams(int seed, int accounts)
    {
        var stream = RandomStream(seed, 3_000, accounts);
        Assert.Null(Compare(stream, accounts));
    }

    [Fact]
    public void Windows_match_the_brute_force_on_FsCheck_streams()
    {
        // FsCheck picks the seed, the length and the number of accounts, and shrinks a failure to a short stream.
        var property = Prop.ForAll(
            Gen.Choose(0, int.MaxValue).ToArbitrary(),
            Gen.Choose(1, 400).ToArbitrary(),
            Gen.Choose(2, 15).ToArbitrary(),
            (seed, count, accounts) =>
            {
                string? problem = Compare(RandomStream(seed, count, accounts), accounts);
                return problem is null ? true.ToProperty() : false.Label(problem);
            });
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(60), property);
    }

    [Fact]
    public void A_window_forgets_a_payment_once_its_bucket_slides_out()
    {
        var store = new FeatureStore(4);
        Span<double> f = stackalloc double[Features.Count];
        long t0 = 1_000L * FeatureStore.Bucket24hMs; // a 2-hour (and so 10-minute and 10-second) boundary
        store.ComputeAndRecord(new PaymentFacts(1, 2, 100, t0, 0, 0, 1_000), f);
        store.ComputeAndRecord(new PaymentFacts(1, 3, 100, t0 + 59_999, 0, 0, 1_000), f);
        Assert.Equal(1, f[Features.SenderCount1m]); // t0's bucket is the 6th back: still inside
        store.ComputeAndRecord(new PaymentFacts(1, 3, 100, t0 + 60_000, 0, 0, 1_000), f);
        Assert.Equal(1, f[Features.SenderCount1m]); // t0 slid out, t0 + 59,999 is in
        Assert.Equal(2, f[Features.SenderCount1h]);
        store.ComputeAndRecord(new PaymentFacts(1, 3, 100, t0 + 24 * 3_600_000L, 0, 0, 1_000), f);
        Assert.Equal(0, f[Features.SenderCount24h]);
        Assert.Equal(0, f[Features.SenderCount1h]);
        Assert.Equal(3, f[Features.ReceiverCount24h] + 3); // receiver 3's in-window history is empty too
    }

    [Fact]
    public void A_payee_is_new_again_only_after_eight_other_payees_pushed_it_out()
    {
        var store = new FeatureStore(20);
        Span<double> f = stackalloc double[Features.Count];
        long t = 1_800_000_000_000;
        store.ComputeAndRecord(new PaymentFacts(1, 2, 10, t, 0, 0, 100), f);
        Assert.Equal(1, f[Features.ReceiverNewToSender]);
        store.ComputeAndRecord(new PaymentFacts(1, 2, 10, t, 0, 0, 100), f);
        Assert.Equal(0, f[Features.ReceiverNewToSender]);
        for (int payee = 3; payee < 3 + 7; payee++) store.ComputeAndRecord(new PaymentFacts(1, payee, 10, t, 0, 0, 100), f);
        store.ComputeAndRecord(new PaymentFacts(1, 2, 10, t, 0, 0, 100), f);
        Assert.Equal(0, f[Features.ReceiverNewToSender]); // seven others since: still among the last eight
        for (int payee = 10; payee < 10 + 8; payee++) store.ComputeAndRecord(new PaymentFacts(1, payee, 10, t, 0, 0, 100), f);
        store.ComputeAndRecord(new PaymentFacts(1, 2, 10, t, 0, 0, 100), f);
        Assert.Equal(1, f[Features.ReceiverNewToSender]); // eight others since: forgotten, reported new (the one allowed error)
    }

    [Fact]
    public void An_account_s_state_has_a_fixed_size()
    {
        Assert.Equal(696, System.Runtime.CompilerServices.Unsafe.SizeOf<FeatureStore.AccountState>());
    }

    [Fact]
    public void Time_going_back_is_refused()
    {
        var store = new FeatureStore(3);
        Span<double> f = stackalloc double[Features.Count];
        store.ComputeAndRecord(new PaymentFacts(1, 2, 10, 1_000_000, 0, 0, 100), f);
        var e = Assert.Throws<InvalidOperationException>(() =>
        {
            Span<double> g = stackalloc double[Features.Count];
            store.ComputeAndRecord(new PaymentFacts(1, 2, 10, 1_000_000 - 20_000, 0, 0, 100), g);
        });
        Assert.Contains("time go back", e.Message);
    }

    [Fact]
    public void State_written_and_read_back_gives_the_same_features_afterwards()
    {
        var stream = RandomStream(9, 2_000, 25);
        var a = new FeatureStore(25);
        Span<double> f = stackalloc double[Features.Count];
        foreach (var p in stream.Take(1_000)) a.ComputeAndRecord(p, f);
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, System.Text.Encoding.UTF8, leaveOpen: true)) a.Write(w);
        ms.Position = 0;
        FeatureStore b;
        using (var r = new BinaryReader(ms)) b = FeatureStore.Read(r, 25);
        Assert.Equal(a.TouchedAccounts, b.TouchedAccounts);
        Span<double> g = stackalloc double[Features.Count];
        foreach (var p in stream.Skip(1_000))
        {
            a.ComputeAndRecord(p, f);
            b.ComputeAndRecord(p, g);
            Assert.True(f.SequenceEqual(g), $"features differ after the reload at {p}");
        }
    }

    [Fact]
    public void Recording_allocates_nothing_once_the_chunk_exists()
    {
        var stream = RandomStream(5, 20_000, 500);
        var store = new FeatureStore(500);
        Span<double> f = stackalloc double[Features.Count];
        foreach (var p in stream.Take(1_000)) store.ComputeAndRecord(p, f);
        Allocations.AssertARoundAllocatesNothing(round =>
        {
            Span<double> g = stackalloc double[Features.Count];
            for (int i = 1_000 + round * 6_000; i < 7_000 + round * 6_000; i++) store.ComputeAndRecord(stream[i], g);
        });
    }
}
