using System.Diagnostics;
using System.Globalization;
using RamPay.Analytics;
using RamPay.Core;
using RamPay.Events;
using Xunit.Abstractions;

namespace RamPay.Rewards.Tests;

/// <summary>
/// docs/benchmarks.md ("Analytics: a snapshot and a log, and a retention"): how the analytics store's files, its saves
/// and its snapshots grow under a stream that moves on in time, as the analytics worker saves it at each flush.
/// <c>RAMPAY_ANALYTICS_GROWTH_USERS</c> users each pay once in every minute of <c>RAMPAY_ANALYTICS_GROWTH_MINUTES</c>
/// (what gives each active user its minute, hour and day buckets), each minute in four batches, each saved as a flush
/// saves it; six times along the way the snapshot and log sizes, the saves' time per event, the last snapshot's copy (the
/// pause the consumer sees) and write (a task), the user buckets and the GC heap after a full collection are printed.
/// <c>RAMPAY_ANALYTICS_GROWTH_RETENTION</c>: the per-user retention (default <see cref="AnalyticsRetention.DefaultText"/>).
/// Reports skipped unless users and minutes are set:
/// <c>RAMPAY_ANALYTICS_GROWTH_USERS=10000 RAMPAY_ANALYTICS_GROWTH_MINUTES=180 dotnet test tests/RamPay.Rewards.Tests -c Release
/// --filter FullyQualifiedName~AnalyticsGrowthFigures --logger "console;verbosity=detailed"</c>.
/// </summary>
[Trait("Category", "Figures")]
public sealed class AnalyticsGrowthFigures(ITestOutputHelper output)
{
    [SkippableFact]
    public void The_rollups_files_and_their_saves_with_the_minutes_of_active_users()
    {
        Skip.IfNot(int.TryParse(Environment.GetEnvironmentVariable("RAMPAY_ANALYTICS_GROWTH_USERS"), out int users)
            & int.TryParse(Environment.GetEnvironmentVariable("RAMPAY_ANALYTICS_GROWTH_MINUTES"), out int minutes),
            "RAMPAY_ANALYTICS_GROWTH_USERS and RAMPAY_ANALYTICS_GROWTH_MINUTES are not set (a figure run by hand)");
        var retention = AnalyticsRetention.Parse(Environment.GetEnvironmentVariable("RAMPAY_ANALYTICS_GROWTH_RETENTION"));
        string dir = Directory.CreateTempSubdirectory("rampay-analytics-growth-").FullName;
        try
        {
            string path = Path.Combine(dir, "analytics.rollups");
            var store = new AnalyticsStore(path, retention) { SaveEveryMs = int.MaxValue }; // saved below only, as the worker's flush does
            output.WriteLine($"{users} users a minute, retention {retention}");
            var random = new Random(1);
            long t0 = 1_800_000_000_000, sequence = 0, saved = 0;
            double saveMs = 0, copyMsMax = 0;
            const int BatchesPerMinute = 4;
            for (int m = 1; m <= minutes; m++)
            {
                for (int b = 0; b < BatchesPerMinute; b++)
                {
                    var (batch, fields) = MinuteOfPayments(t0 + (m - 1) * 60_000L, b * users / BatchesPerMinute, (b + 1) * users / BatchesPerMinute, users, ref sequence, random, "kafka:t/0");
                    long snapshots = store.Snapshots; // one comes at an Apply, after the save that found the log large enough
                    store.Apply(batch, fields, null, saveNow: false);
                    var clock = Stopwatch.StartNew();
                    store.Save();
                    saveMs += clock.Elapsed.TotalMilliseconds;
                    saved += fields.Length;
                    if (store.Snapshots != snapshots) copyMsMax = Math.Max(copyMsMax, store.LastSnapshotCopyMs);
                }
                if (m % Math.Max(1, minutes / 6) != 0 && m != minutes) continue;
                var (log, snapshot) = store.Sizes;
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"minute {m}: snapshot {snapshot / 1e6:0.0} MB, log {log / 1e6:0.0} MB; saves {saveMs * 1000 / saved:0.00} µs/event; {store.Snapshots} snapshots, the last copied in {store.LastSnapshotCopyMs:0} ms (the longest so far {copyMsMax:0} ms), written in {store.LastSnapshotWriteMs:0} ms; user buckets {store.Rollups.UserBuckets.Count:N0}; GC heap after a full collection {GC.GetTotalMemory(true) / 1e6:0} MB"));
                saveMs = 0;
                saved = 0;
            }
            store.SaveSnapshot();
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"a clean stop's snapshot: copied in {store.LastSnapshotCopyMs:0} ms, written in {store.LastSnapshotWriteMs:0} ms"));
            store.Dispose();
            var clockLoad = Stopwatch.StartNew();
            var loaded = AnalyticsStore.Load(path, retention);
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"a start reads the files in {clockLoad.ElapsedMilliseconds} ms ({loaded.UserBuckets.Count:N0} user buckets)"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>
    /// Users <paramref name="fromUser"/>..<paramref name="toUser"/> (of <paramref name="users"/>, spread over the minute
    /// starting at <paramref name="minuteStartMs"/>) each paying a random user: transfers' <c>PaymentApproved</c>, as the
    /// Kafka worker hands them on. Also the live bench's seeded state (<c>AnalyticsLiveFigures</c>).
    /// </summary>
    internal static (EventBatch Batch, EventFields[] Fields) MinuteOfPayments(long minuteStartMs, int fromUser, int toUser, int users, ref long sequence, Random random, string source)
    {
        var events = new List<EventRecord>(toUser - fromUser);
        var fields = new EventFields[toUser - fromUser];
        for (int u = fromUser; u < toUser; u++)
        {
            events.Add(new EventRecord(new EventPosition(++sequence, 0, 1), "PaymentApproved", 1, minuteStartMs + u * 60_000L / users, u + 1, ReadOnlyMemory<byte>.Empty));
            fields[u - fromUser] = AnalyticsUserBucketsTests.Approved(Currency.USD.Code, 100, u + 1, random.Next(1, users + 1));
        }
        return (new EventBatch(events, source), fields);
    }
}
