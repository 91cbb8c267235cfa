using Npgsql;
using RamPay.Events;

namespace RamPay.Notifications.Tests;

/// <summary>
/// One contract, two outboxes: the SQLite store (the embedded default) and the PostgreSQL outbox the server and the
/// workers share (a schema of its own per test, dropped at the end).
/// </summary>
public abstract class NotificationOutboxContract : IDisposable
{
    protected abstract INotificationOutbox Outbox { get; }
    /// <summary>A second handle, as another process would open it (PostgreSQL: a new outbox; SQLite: the same one).</summary>
    protected abstract INotificationOutbox Other { get; }
    public abstract void Dispose();

    private static NotificationStore.NewMessage M(long user, string channel, int i, string template = "money_received") =>
        new(user, channel, channel == "email" ? $"u{user}@example.test" : "+15550001111", template, $"100-0-{i}", channel == "email" ? "Subject" : "", "text", channel == "email" ? "<p>html</p>" : null);

    [Fact]
    public void Enqueue_is_idempotent_and_moves_the_checkpoint_with_the_messages()
    {
        Assert.Equal(3, Outbox.Enqueue([M(1, "email", 1), M(1, "sms", 1), M(2, "email", 1)], "notifications", new EventPosition(9, 0, 1), 1_000));
        Assert.Equal(1, Outbox.Enqueue([M(1, "email", 1), M(1, "email", 1, "payment_sent")], "notifications", new EventPosition(10, 0, 0), 2_000));
        Assert.Equal(new EventPosition(10, 0, 0), Other.ReadCheckpoint("notifications"));
        Assert.Equal(EventPosition.None, Other.ReadCheckpoint("other"));
        Assert.Equal(4, Other.PendingCount());
        var m = Other.Page(2, null, null, long.MaxValue, long.MaxValue, 10).Single();
        Assert.Equal(("email", "u2@example.test", "Subject", "<p>html</p>", "pending"), (m.Channel, m.Destination, m.Subject, m.BodyHtml, m.AuditStatus));
        Assert.Equal(m, Other.Message(m.Id));
    }

    [Fact]
    public void A_claim_hides_messages_until_recorded_released_or_its_lease_runs_out()
    {
        Outbox.Enqueue([M(1, "email", 1), M(1, "email", 2), M(1, "sms", 3), M(1, "email", 4)], "n", null, 1_000);
        Assert.Single(Outbox.Claim(2_000, 10, email: false, sms: true, 10_000));
        var first = Outbox.Claim(2_000, 2, true, true, 10_000);
        var second = Other.Claim(2_000, 10, true, true, 10_000);
        Assert.Equal((2, 1), (first.Count, second.Count));
        Assert.Empty(first.Select(x => x.Id).Intersect(second.Select(x => x.Id)));
        Outbox.Record([new NotificationStore.Outcome(first[0].Id, 1, 3_000, "pending", 4_000, "421 try later")]);
        Outbox.Release([first[1].Id]);
        Assert.Equal(new[] { first[0].Id, first[1].Id }.Order(), Other.Claim(5_000, 10, true, true, 10_000).Select(x => x.Id).Order());
        // The second claimer and the sms one died: theirs come back once the lease (to 12 000) has run out.
        Assert.Empty(Outbox.Claim(11_999, 10, true, true, 10_000));
        Assert.Equal(2, Outbox.Claim(12_001, 10, true, true, 10_000).Count);
    }

    [Fact]
    public void Concurrent_claimers_never_get_the_same_message()
    {
        Outbox.Enqueue(Enumerable.Range(1, 200).Select(i => M(i, "email", i)).ToList(), "n", null, 1_000);
        var handles = new[] { Outbox, Other, Outbox, Other };
        var got = handles.AsParallel().WithDegreeOfParallelism(4).SelectMany(h => Enumerable.Range(0, 10).SelectMany(_ => h.Claim(2_000, 7, true, true, 60_000))).Select(x => x.Id).ToList();
        Assert.Equal(200, got.Count);
        Assert.Equal(200, got.Distinct().Count());
    }

    [Fact]
    public void Outcomes_make_the_audit_log_and_never_move_back()
    {
        Outbox.Enqueue([M(5, "email", 1), M(5, "email", 2), M(5, "sms", 3), M(6, "email", 4)], "n", null, 1_000);
        var c = Outbox.Claim(2_000, 10, true, true, 10_000).OrderBy(x => x.Id).ToList();
        Outbox.Record([
            new NotificationStore.Outcome(c[0].Id, 1, 2_100, "sent", 0, null),
            new NotificationStore.Outcome(c[1].Id, 1, 2_200, "pending", 9_000, "421 busy"),
            new NotificationStore.Outcome(c[3].Id, 1, 2_300, "dead", 0, "550 no such user")]);
        Outbox.Record([new NotificationStore.Outcome(c[0].Id, 1, 2_400, "pending", 9_000, "late duplicate")]);
        Assert.Equal("sent", Other.Message(c[0].Id)!.Status);
        Assert.Equal(["pending", "failed", "sent"], Other.Page(5, null, null, long.MaxValue, long.MaxValue, 10).Select(m => m.AuditStatus));
        Assert.Equal(c[1].Id, Other.Page(null, null, "failed", long.MaxValue, long.MaxValue, 10).Single().Id);
        Assert.Equal(c[2].Id, Other.Page(null, "sms", "pending", long.MaxValue, long.MaxValue, 10).Single().Id);
        Assert.Equal("550 no such user", Other.Page(null, null, "dead", long.MaxValue, long.MaxValue, 10).Single().LastError);
        // Paging: newest first, the cursor excludes itself.
        var page1 = Other.Page(null, null, null, long.MaxValue, long.MaxValue, 2);
        var page2 = Other.Page(null, null, null, page1[^1].CreatedMs, page1[^1].Id, 10);
        Assert.Equal(4, page1.Count + page2.Count);
        Assert.Empty(page1.Select(m => m.Id).Intersect(page2.Select(m => m.Id)));
        // STOP: queued SMS to the number are dead with the reason.
        Assert.Equal(1, Other.DeadLetterSms("+15550001111", NotificationStore.StopReason, 3_000));
        Assert.Equal(NotificationStore.StopReason, Outbox.Message(c[2].Id)!.LastError);
        Assert.Equal(3, Outbox.Prune(1_001)); // sent, dead, dead (STOP); the failed one is kept
        Assert.Single(Other.Page(null, null, null, long.MaxValue, long.MaxValue, 10));
    }
}

public sealed class SqliteNotificationOutboxContractTests : NotificationOutboxContract
{
    private readonly string _dir = Directory.CreateTempSubdirectory("rampay-ntfstore-").FullName;
    private readonly NotificationStore _store;
    public SqliteNotificationOutboxContractTests() => _store = new NotificationStore(_dir);
    protected override INotificationOutbox Outbox => _store;
    protected override INotificationOutbox Other => _store;

    public override void Dispose()
    {
        _store.Dispose();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }
}

[Trait("Category", "Integration")]
public sealed class PostgresNotificationOutboxContractTests : NotificationOutboxContract
{
    private readonly string _connection = Environment.GetEnvironmentVariable("RAMPAY_TEST_POSTGRES") is { Length: > 0 } s ? s
        : "Host=127.0.0.1;Port=5432;Username=rampay;Password=rampay;Database=rampay_test";
    private readonly string _schema = "nt_" + Guid.NewGuid().ToString("N")[..16];
    private readonly PostgresNotificationOutbox _outbox, _other;

    public PostgresNotificationOutboxContractTests()
    {
        _outbox = new PostgresNotificationOutbox(_connection, _schema);
        _other = new PostgresNotificationOutbox(_connection, _schema);
    }

    protected override INotificationOutbox Outbox => _outbox;
    protected override INotificationOutbox Other => _other;

    public override void Dispose()
    {
        _outbox.Dispose();
        _other.Dispose();
        using var c = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(_connection) { Pooling = false }.ConnectionString);
        c.Open();
        using var cmd = new NpgsqlCommand($"DROP SCHEMA IF EXISTS {_schema} CASCADE", c);
        cmd.ExecuteNonQuery();
    }
}
