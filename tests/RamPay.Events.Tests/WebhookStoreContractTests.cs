using Npgsql;
using RamPay.Webhooks;

namespace RamPay.Events.Tests;

/// <summary>
/// One contract, two stores: every test here runs against the SQLite store (the embedded default) and the PostgreSQL
/// store the server and the workers share (a schema of its own per test class instance, dropped at the end).
/// </summary>
public abstract class WebhookStoreContract : IDisposable
{
    protected abstract IWebhookStore Store { get; }
    /// <summary>A second handle on the same data, as another process would open it (PostgreSQL: a new store; SQLite: the same one, a file has one owner).</summary>
    protected abstract IWebhookStore Other { get; }
    public abstract void Dispose();

    private static WebhookStore.NewDelivery D(string endpoint, int i) => new(endpoint, 7, "https://example.test/hook", $"100-0-{i}", "PaymentApproved", [(byte)'{', (byte)'}']);

    [Fact]
    public void Enqueue_is_idempotent_and_moves_the_checkpoint_with_the_deliveries()
    {
        var e = Store.Create(7, false, "https://example.test/hook", ["*"], "d", 1_000);
        Assert.Equal(EventPosition.None, Store.ReadCheckpoint("webhooks"));
        Assert.Equal(3, Store.Enqueue([D(e.Id, 1), D(e.Id, 2), D(e.Id, 3)], "webhooks", new EventPosition(5, 1, 2), 2_000, paymentUrls: [(42, 7, "https://example.test/p")]));
        Assert.Equal(0, Store.Enqueue([D(e.Id, 1), D(e.Id, 2)], "webhooks", new EventPosition(6, 0, 0), 3_000));
        Assert.Equal(new EventPosition(6, 0, 0), Other.ReadCheckpoint("webhooks"));
        Assert.Equal(3, Other.PendingCount());
        Assert.Equal((7L, "https://example.test/p"), Other.PaymentUrl(42));
        Assert.Null(Other.PaymentUrl(43));
    }

    [Fact]
    public void A_claim_hides_deliveries_until_recorded_released_or_its_lease_runs_out()
    {
        var e = Store.Create(7, false, "https://example.test/hook", ["*"], null, 1_000);
        Store.Enqueue([D(e.Id, 1), D(e.Id, 2), D(e.Id, 3), D(e.Id, 4)], "webhooks", null, 1_000);
        var first = Store.Claim(2_000, 2, 10_000);
        Assert.Equal(2, first.Count);
        Assert.True(first[0].Id < first[1].Id);
        var second = Other.Claim(2_000, 10, 10_000);
        Assert.Equal(2, second.Count);
        Assert.Empty(first.Select(d => d.Id).Intersect(second.Select(d => d.Id)));
        Assert.Empty(Other.Claim(5_000, 10, 10_000));
        // The first claimer records one outcome and gives one back; the second dies (its lease runs out at 12 000).
        Store.Record([new WebhookStore.Outcome(first[0].Id, 1, 3_000, 500, 12, "HTTP 500", "pending", 4_000)]);
        Store.Release([first[1].Id]);
        var again = Other.Claim(5_000, 10, 10_000).Select(d => d.Id).Order().ToList();
        Assert.Equal(new[] { first[0].Id, first[1].Id }.Order(), again);
        Assert.Empty(Other.Claim(5_000, 10, 10_000)); // nothing else until the dead claimer's lease runs out at 12 000
        Assert.Empty(Store.Claim(11_999, 10, 10_000));
        var takenOver = Store.Claim(12_001, 10, 10_000).Select(d => d.Id).Order().ToList();
        Assert.Equal(second.Select(d => d.Id).Order(), takenOver);
        var retried = Store.Deliveries(e.Id, "pending", 10).Single(d => d.Id == first[0].Id);
        Assert.Equal(1, retried.Attempts);
    }

    [Fact]
    public void A_claim_skips_the_endpoints_it_is_told_to_and_still_takes_the_others_oldest_first()
    {
        var busy = Store.Create(7, false, "https://example.test/hook", ["*"], null, 1_000);
        var other = Store.Create(7, false, "https://example.test/hook", ["*"], null, 1_000);
        Store.Enqueue([D(busy.Id, 1), D(busy.Id, 2), D(busy.Id, 3)], "webhooks", null, 1_000); // older: due first
        Store.Enqueue([D(other.Id, 4), D(other.Id, 5)], "webhooks", null, 1_500);
        var got = Store.Claim(2_000, 2, 10_000, [busy.Id]);
        Assert.Equal([other.Id, other.Id], got.Select(d => d.EndpointId));
        Assert.Equal(["100-0-4", "100-0-5"], got.Select(d => d.EventId));
        Assert.Empty(Other.Claim(2_000, 10, 10_000, [busy.Id]));
        Assert.Equal(3, Other.Claim(2_000, 10, 10_000, []).Count); // an empty list skips nothing
    }

    [Fact]
    public void A_redelivery_asked_for_while_an_attempt_is_in_flight_is_not_marked_sent_by_that_attempts_late_outcome()
    {
        // 1. A delivery is claimed and sent (attempt 1); its outcome is still in the dispatcher's batched writer.
        var e = Store.Create(7, false, "https://example.test/hook", ["*"], null, 1_000);
        Store.Enqueue([D(e.Id, 1)], "webhooks", null, 1_000);
        var sent = Store.Claim(2_000, 10, 60_000).Single();
        Assert.Equal(0, sent.Attempts);
        // 2. The receiver asks for it again (POST /v1/events/{id}/redeliver): pending, claimable at once (no lease to wait out).
        Assert.Equal(1, Other.Enqueue([D(e.Id, 1)], "redeliver", null, 2_500, redeliver: true));
        // 3. The first attempt's outcome arrives late: it must not mark the redelivery sent.
        Store.Record([new WebhookStore.Outcome(sent.Id, 1, 2_600, 200, 5, null, "succeeded", 0)]);
        var again = Other.Claim(2_700, 10, 60_000).Single();
        Assert.Equal(sent.Id, again.Id);
        // 4. The redelivery's own outcome is recorded and ends it.
        Other.Record([new WebhookStore.Outcome(again.Id, again.Attempts + 1, 2_800, 200, 5, null, "succeeded", 0)]);
        Assert.Equal(0, Store.PendingCount());
        Assert.Empty(Store.Claim(90_000, 10, 60_000));
    }

    [Fact]
    public void Concurrent_claimers_never_get_the_same_delivery()
    {
        var e = Store.Create(7, false, "https://example.test/hook", ["*"], null, 1_000);
        Store.Enqueue(Enumerable.Range(1, 200).Select(i => D(e.Id, i)).ToList(), "webhooks", null, 1_000);
        var stores = new[] { Store, Other, Store, Other };
        var got = stores.AsParallel().WithDegreeOfParallelism(4).SelectMany(s => Enumerable.Range(0, 10).SelectMany(_ => s.Claim(2_000, 7, 60_000))).Select(d => d.Id).ToList();
        Assert.Equal(200, got.Count);
        Assert.Equal(200, got.Distinct().Count());
    }

    [Fact]
    public void Outcomes_show_in_the_attempts_the_admin_list_and_the_audit_log()
    {
        var e = Store.Create(7, false, "https://example.test/hook", ["*"], null, 1_000);
        Store.Enqueue([D(e.Id, 1), D(e.Id, 2), D(e.Id, 3)], "webhooks", null, 1_000);
        var c = Store.Claim(2_000, 3, 10_000);
        Store.Record([
            new WebhookStore.Outcome(c[0].Id, 1, 2_100, 200, 5, null, "succeeded", 0),
            new WebhookStore.Outcome(c[1].Id, 1, 2_200, 503, 6, "HTTP 503", "pending", 9_000),
            new WebhookStore.Outcome(c[2].Id, 1, 2_300, 0, 7, "refused", "dead", 0)]);
        // A late duplicate of an older attempt never moves a delivery back.
        Store.Record([new WebhookStore.Outcome(c[0].Id, 1, 2_400, 500, 5, "HTTP 500", "pending", 9_000)]);
        Assert.Equal(1, Other.PendingCount());
        var attempts = Other.Attempts(e.Id, null, 10);
        Assert.Equal(3, attempts.Count);
        Assert.Single(Other.Attempts(e.Id, "failed", 10));
        var all = Other.AllDeliveries(null, 0, 10);
        Assert.Equal(3, all.Count);
        Assert.Equal(c[2].Id, all[0].Id);
        Assert.Equal("refused", all[0].LastError);
        Assert.Equal(503, all.Single(d => d.Id == c[1].Id).LastStatusCode);
        Assert.Single(Other.AllDeliveries("dead", 0, 10));
        var audit = Other.AuditPage(7, null, long.MaxValue, long.MaxValue, 10);
        Assert.Equal(["dead", "failed", "sent"], audit.Select(a => a.Status));
        Assert.Empty(Other.AuditPage(10, null, long.MaxValue, long.MaxValue, 10));
        Assert.Single(Other.AuditPage(null, "sent", long.MaxValue, long.MaxValue, 10));
        Assert.Equal(1_000, Other.DeliveryCreatedMs(c[0].Id));
        Assert.Equal(4, Store.PruneFinished(1_001)); // two finished deliveries and their two attempts
        Assert.Single(Other.AllDeliveries(null, 0, 10));
    }

    [Fact]
    public void Endpoints_secrets_and_disabling()
    {
        var e = Store.Create(3, true, "https://example.test/a", ["Payment*"], "first", 1_000);
        Assert.StartsWith("we_", e.Id, StringComparison.Ordinal);
        Assert.StartsWith("whsec_", e.Secret, StringComparison.Ordinal);
        Store.Update(e.Id, "https://example.test/b", ["PaymentRefunded"], "second", null);
        string rotated = Store.RotateSecret(e.Id, 50_000);
        var seen = Other.Endpoints().Single(x => x.Id == e.Id);
        Assert.Equal(("https://example.test/b", "second", rotated, e.Secret, 50_000L), (seen.Url, seen.Description, seen.Secret, seen.OldSecret, seen.OldSecretUntilMs));
        Assert.True(seen.AllEvents && seen.Wants("PaymentRefunded") && !seen.Wants("PaymentApproved"));
        Store.SetFailing(e.Id, 5_000);
        Store.SetFailing(e.Id, 6_000); // already failing: the first time stays
        Assert.Equal(5_000, Store.Endpoint(e.Id)!.FailingSinceMs);
        Store.Enqueue([D(e.Id, 1)], "webhooks", null, 1_000);
        Assert.True(Store.DisableFailing(e.Id));
        Assert.False(Other.DisableFailing(e.Id)); // once, across processes
        Assert.Equal("disabled", Other.Endpoint(e.Id)!.Status);
        Assert.Empty(Store.Claim(10_000, 10, 1_000)); // a disabled endpoint's deliveries wait
        Store.Update(e.Id, null, null, null, "enabled");
        Assert.Single(Store.Claim(10_000, 10, 1_000));
        Store.Delete(e.Id);
        Thread.Sleep(PostgresWebhookStore.EndpointCacheTtl + TimeSpan.FromMilliseconds(100)); // another process sees a change within the cache's lifetime
        Assert.Null(Other.Endpoint(e.Id));
        Assert.Single(Other.AllDeliveries("dead", 0, 10));
        var (s1, _, _) = Store.UserSecret(3);
        Assert.Equal(s1, Other.UserSecret(3).Secret);
        string s2 = Other.RotateUserSecret(3, 99_000);
        Assert.Equal((s2, s1, 99_000L), Store.UserSecret(3));
    }
}

public sealed class SqliteWebhookStoreContractTests : WebhookStoreContract
{
    private readonly string _dir = Directory.CreateTempSubdirectory("rampay-whstore-").FullName;
    private readonly WebhookStore _store;
    public SqliteWebhookStoreContractTests() => _store = new WebhookStore(_dir);
    protected override IWebhookStore Store => _store;
    protected override IWebhookStore Other => _store;

    [Fact]
    public void A_claim_left_by_a_killed_process_is_cleared_when_the_file_is_opened_again()
    {
        var e = _store.Create(1, false, "https://example.test/hook", ["*"], null, 1_000);
        _store.Enqueue([new(e.Id, 1, e.Url, "1-0-0", "PaymentApproved", [1])], "webhooks", null, 1_000);
        Assert.Single(_store.Claim(2_000, 10, 60_000));
        using var reopened = new WebhookStore(_dir);
        Assert.Single(reopened.Claim(2_000, 10, 60_000));
    }

    public override void Dispose()
    {
        _store.Dispose();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }
}

[Trait("Category", "Integration")]
public sealed class PostgresWebhookStoreContractTests : WebhookStoreContract
{
    private readonly TestSchema _schema = new();
    private readonly PostgresWebhookStore _store, _other;

    public PostgresWebhookStoreContractTests()
    {
        _store = new PostgresWebhookStore(_schema.ConnectionString, _schema.Name);
        _other = new PostgresWebhookStore(_schema.ConnectionString, _schema.Name); // migrating an up-to-date schema is a no-op
    }

    protected override IWebhookStore Store => _store;
    protected override IWebhookStore Other => _other;

    public override void Dispose()
    {
        _store.Dispose();
        _other.Dispose();
        _schema.Dispose();
    }
}

/// <summary>A PostgreSQL schema of its own on the test server (<c>RAMPAY_TEST_POSTGRES</c>), dropped at the end. Never skips: an unreachable server fails the test.</summary>
public sealed class TestSchema : IDisposable
{
    public string ConnectionString { get; } = Environment.GetEnvironmentVariable("RAMPAY_TEST_POSTGRES") is { Length: > 0 } s ? s
        : "Host=127.0.0.1;Port=5432;Username=rampay;Password=rampay;Database=rampay_test";
    public string Name { get; } = "wt_" + Guid.NewGuid().ToString("N")[..16];

    public void Dispose()
    {
        using var c = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(ConnectionString) { Pooling = false }.ConnectionString);
        c.Open();
        using var cmd = new NpgsqlCommand($"DROP SCHEMA IF EXISTS {Name} CASCADE", c);
        cmd.ExecuteNonQuery();
    }
}
