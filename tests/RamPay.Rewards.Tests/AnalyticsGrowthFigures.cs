using System.Diagnostics;
using System.Globalization;
using RamPay.Analytics;
using RamPay.Core;
using RamPay.Events;
using Xunit.Abstractions;

namespace RamPay.Rewards.Tests;

/// <summary>
/// docs/benchmarks.md ("Analytics worker: reading the fields", "Not met under sustained load"): how the rollups file and
/// one save of it grow under a stream that moves on in time, as the analytics worker saves it at each flush.
/// <c>RAMPAY_ANALYTICS_GROWTH_USERS</c> users each pay once in every minute of <c>RAMPAY_ANALYTICS_GROWTH_MINUTES</c>
/// (what gives each active user its minute, hour and day buckets); six times along the way the store is saved and the
/// file's size, the save's time and the GC heap are printed. Reports skipped unless both are set:
/// <c>RAMPAY_ANALYTICS_GROWTH_USERS=10000 RAMPAY_ANALYTICS_GROWTH_MINUTES=180 dotnet test tests/RamPay.Rewards.Tests -c Release
/// --filter FullyQualifiedName~AnalyticsGrowthFigures --logger "console;verbosity=detailed"</c>.
/// </summary>
[Trait("Category", "Figures")]
public sealed class AnalyticsGrowthFigures(ITestOutputHelper output)
{
    [SkippableFact]
    public void The_rollups_file_and_its_save_grow_with_the_minutes_of_active_users()
    {
        Skip.IfNot(int.TryParse(Environment.GetEnvironmentVariable("RAMPAY_ANALYTICS_GROWTH_USERS"), out int users)
            & int.TryParse(Environment.GetEnvironmentVariable("RAMPAY_ANALYTICS_GROWTH_MINUTES"), out int minutes),
            "RAMPAY_ANALYTICS_GROWTH_USERS and RAMPAY_ANALYTICS_GROWTH_MINUTES are not set (a figure run by hand)");
        string dir = Directory.CreateTempSubdirectory("rampay-analytics-growth-").FullName;
        try
        {
            string path = Path.Combine(dir, "analytics.rollups");
            var store = new AnalyticsStore(path) { SaveEveryMs = int.MaxValue }; // saved below only, as the worker's flush does
            var random = new Random(1);
            long t0 = 1_800_000_000_000, sequence = 0;
            for (int m = 1; m <= minutes; m++)
            {
                var events = new List<EventRecord>(users);
                var fields = new EventFields[users];
                for (int u = 0; u < users; u++)
                {
                    long at = t0 + (m - 1) * 60_000L + u * 60_000L / users;
                    events.Add(new EventRecord(new EventPosition(++sequence, 0, 1), "PaymentApproved", 1, at, u + 1, ReadOnlyMemory<byte>.Empty));
                    fields[u] = AnalyticsUserBucketsTests.Approved(Currency.USD.Code, 100, u + 1, random.Next(1, users + 1));
                }
                store.Apply(new EventBatch(events, "kafka:t/0"), fields, null, saveNow: false);
                if (m % Math.Max(1, minutes / 6) != 0 && m != minutes) continue;
                var clock = Stopwatch.StartNew();
                store.Save();
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"minute {m}: file {new FileInfo(path).Length / 1e6:0.0} MB, one save {clock.ElapsedMilliseconds} ms, user buckets {store.Rollups.UserBuckets.Count:N0}, GC heap {GC.GetTotalMemory(false) / 1e6:0} MB"));
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
