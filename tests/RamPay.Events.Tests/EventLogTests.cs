using System.Text;
using System.Text.Json.Nodes;
using RamPay.Sinks;

namespace RamPay.Events.Tests;

/// <summary>The event log against a real change stream (a real engine's journal, re-applied by the real follower).</summary>
public sealed class EventLogTests : IDisposable
{
    private static readonly Lazy<Change[]> ScenarioChanges = new(() => LedgerChanges.Run(Scenario.Commands()));
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private EventLog NewLog(TimeProvider? clock = null, long maxBytes = 1L << 30) => new(new EventLogOptions
    {
        Directory = Path.Combine(_dir.Path, "events"),
        Clock = clock ?? new FakeClock(DateTimeOffset.FromUnixTimeMilliseconds(LedgerChanges.StartMs)),
        MaxBytes = maxBytes,
    });

    private static void AppendAll(EventLog log, Change[] changes, int batch = 5)
    {
        foreach (var (c, through) in LedgerChanges.Batches(changes, batch)) log.Append(c, through);
    }

    [Fact]
    public void Holds_every_event_byte_for_byte_as_the_Kafka_sink_encodes_it_in_stream_order()
    {
        var changes = ScenarioChanges.Value;
        using var log = NewLog();
        AppendAll(log, changes);
        var encoder = new EventEncoder();
        var expected = LedgerChanges.Events(changes).Select(e => (Id: EventMapper.EventId(e.Change.Sequence, e.Change.Index, e.Event.Ordinal), Json: encoder.Encode(e.Change, e.Event).ToArray())).ToList();
        var all = log.ReadAfter(EventPosition.None, 10_000);
        Assert.Equal(expected.Select(e => e.Id), all.Select(e => e.EventId));
        for (int i = 0; i < expected.Count; i++) Assert.Equal(expected[i].Json, all[i].Json.ToArray());
        Assert.Equal(changes[^1].Sequence, log.ReadCheckpoint().Sequence);
    }

    [Fact]
    public void A_batch_sent_again_adds_nothing_and_the_checkpoint_survives_reopening()
    {
        var changes = ScenarioChanges.Value;
        using (var log = NewLog())
        {
            AppendAll(log, changes);
            var batches = LedgerChanges.Batches(changes, 5);
            Assert.Equal(0, log.Append(batches[^1].Changes, batches[^1].Through));
        }
        using var reopened = NewLog();
        Assert.Equal(LedgerChanges.Events(changes).Count, reopened.ReadAfter(EventPosition.None, 10_000).Count);
        Assert.Equal(changes[^1].Sequence, reopened.ReadCheckpoint().Sequence);
    }

    [Fact]
    public void Each_party_sees_only_its_cut_and_admins_see_everything()
    {
        using var log = NewLog();
        AppendAll(log, ScenarioChanges.Value);
        // Scenario: user 1 alice (wallet 2), user 2 bob (wallet 3); sequence 6 is alice -> bob with a note and a webhook_url.
        var approved = EventPosition.TryParse("6-0-1", out var p) ? p : throw new InvalidOperationException();
        var whole = JsonNode.Parse(log.Get(approved, null)!.VisibleJson.Span)!;
        Assert.NotNull(whole["balances"]!["from"]);
        Assert.NotNull(whole["balances"]!["to"]);

        var payer = log.Get(approved, 1)!;
        Assert.Equal(EventParty.Payer, payer.Party);
        var asPayer = JsonNode.Parse(payer.VisibleJson.Span)!;
        Assert.NotNull(asPayer["balances"]!["from"]);
        Assert.Null(asPayer["balances"]!["to"]);
        Assert.Equal("https://example.com/hook", (string?)asPayer["payment"]!["webhook_url"]);

        var payee = log.Get(approved, 2)!;
        Assert.Equal(EventParty.Payee, payee.Party);
        var asPayee = JsonNode.Parse(payee.VisibleJson.Span)!;
        Assert.Null(asPayee["balances"]!["from"]);
        Assert.NotNull(asPayee["balances"]!["to"]);
        Assert.Null(asPayee["payment"]!["webhook_url"]);
        Assert.Equal("Rent \"March\"", (string?)asPayee["payment"]!["description"]);

        // UserRegistered is for admins only; a stranger sees nothing.
        var registrations = log.List(null, 100, null, null, "UserRegistered").Data;
        Assert.Equal(2, registrations.Count);
        Assert.Empty(log.List(1, 100, null, null, "UserRegistered").Data);
        Assert.Empty(log.List(2, 100, null, null, "UserRegistered").Data);
        Assert.Empty(log.List(99, 100, null, null, null).Data);
        Assert.Null(log.Get(approved, 99));
        // Nothing a user lists carries another's email.
        foreach (long user in new[] { 1L, 2L })
            foreach (var e in log.List(user, 100, null, null, null).Data)
                Assert.DoesNotContain("@example.com", Encoding.UTF8.GetString(e.VisibleJson.Span));
    }

    [Fact]
    public void Pages_newest_first_with_cursors_both_ways_and_type_prefixes()
    {
        using var log = NewLog();
        AppendAll(log, ScenarioChanges.Value);
        var all = log.List(null, 1000, null, null, null).Data.Select(e => e.Record.Position).ToList();
        Assert.True(all.Count > 6);
        Assert.Equal(all.OrderDescending(), all);

        var walked = new List<EventPosition>();
        EventPosition? after = null;
        while (true)
        {
            var page = log.List(null, 3, after, null, null);
            walked.AddRange(page.Data.Select(e => e.Record.Position));
            if (!page.HasMore) break;
            after = page.Data[^1].Record.Position;
        }
        Assert.Equal(all, walked);

        var before = log.List(null, 2, null, all[4], null);
        Assert.Equal([all[2], all[3]], before.Data.Select(e => e.Record.Position));
        Assert.True(before.HasMore);

        var payments = log.List(null, 1000, null, null, "Payment*").Data;
        Assert.NotEmpty(payments);
        Assert.All(payments, e => Assert.StartsWith("Payment", e.Record.Type, StringComparison.Ordinal));
        Assert.Equal(all.Count - log.List(null, 1000, null, null, null).Data.Count(e => !e.Record.Type.StartsWith("Payment", StringComparison.Ordinal)), payments.Count);
        Assert.All(log.List(null, 1000, null, null, "PaymentRefunded").Data, e => Assert.Equal("PaymentRefunded", e.Record.Type));
        Assert.False(EventLog.IsTypeFilter("Pay*ment"));
        Assert.False(EventLog.IsTypeFilter("Payment' OR 1=1"));
    }

    [Fact]
    public void Retention_drops_events_past_their_age_and_the_byte_cap_drops_the_oldest()
    {
        var clock = new FakeClock(DateTimeOffset.FromUnixTimeMilliseconds(LedgerChanges.StartMs));
        using (var log = NewLog(clock))
        {
            AppendAll(log, ScenarioChanges.Value);
            int count = log.ReadAfter(EventPosition.None, 10_000).Count;
            Assert.Equal(0, log.ApplyRetention());
            clock.Now = clock.Now.AddDays(30).AddMinutes(1);
            Assert.Equal(count, log.ApplyRetention());
            Assert.Empty(log.ReadAfter(EventPosition.None, 10_000));
            Assert.Equal(0, log.Bytes);
            Assert.Null(log.Oldest());
        }

        // The cap: a workload whose JSON is well over 1 MiB keeps the newest 90 % of the cap and drops the oldest.
        var workload = LedgerChanges.Run(new CommandBuilder().Workload(seed: 7, wallets: 40, count: 6_000));
        using var capped = new EventLog(new EventLogOptions { Directory = Path.Combine(_dir.Path, "capped"), Clock = clock, MaxBytes = 1 << 20, Retention = TimeSpan.FromDays(100_000) });
        foreach (var (c, through) in LedgerChanges.Batches(workload, 500)) capped.Append(c, through);
        Assert.True(capped.Bytes <= 1 << 20, $"{capped.Bytes} bytes held");
        var held = capped.ReadAfter(EventPosition.None, 100_000);
        Assert.Equal(capped.Bytes, held.Sum(e => (long)e.Json.Length));
        var expected = LedgerChanges.Events(workload).Select(e => new EventPosition(e.Change.Sequence, e.Change.Index, e.Event.Ordinal)).ToList();
        Assert.True(held.Count < expected.Count);
        Assert.Equal(expected[^held.Count..], held.Select(e => e.Position)); // the newest, with no hole
    }

    [Theory]
    [InlineData("1-0-0", true)]
    [InlineData("1234-2-1", true)]
    [InlineData("0-0-0", false)]
    [InlineData("01-0-0", false)]
    [InlineData("1-0", false)]
    [InlineData("1-0-0-0", false)]
    [InlineData("-1-0-0", false)]
    [InlineData("1-+0-0", false)]
    [InlineData("99999999999999999999-0-0", false)]
    [InlineData("", false)]
    public void Event_ids_parse_strictly(string id, bool ok)
    {
        Assert.Equal(ok, EventPosition.TryParse(id, out var p));
        if (ok) Assert.Equal(id, p.ToString());
    }
}
