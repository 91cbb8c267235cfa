using System.Text;
using System.Text.Json;
using RamPay.Core;
using RamPay.Sinks;

namespace RamPay.Kafka.Tests;

public class EventMapperTests
{
    private static readonly Lazy<Change[]> ScenarioChanges = new(() => LedgerChanges.Run(Scenario.Commands()));

    [Fact]
    public void A_real_ledger_stream_gives_the_expected_events_with_their_keys_and_reasons()
    {
        var events = LedgerChanges.Events(ScenarioChanges.Value);
        var actual = events.Select(e => (e.Change.Sequence, e.Change.Index, e.Event.Type, e.Event.KeyAccount, e.Event.Reason)).ToArray();
        Assert.Equal(Scenario.Expected, actual);
        // Ordinals number a change's events from 0.
        foreach (var group in events.GroupBy(e => (e.Change.Sequence, e.Change.Index)))
            Assert.Equal(Enumerable.Range(0, group.Count()), group.Select(e => e.Event.Ordinal));
    }

    [Fact]
    public void Every_event_type_of_the_issue_is_produced_by_the_scenario_or_the_fraud_cases()
    {
        var seen = LedgerChanges.Events(ScenarioChanges.Value).Select(e => e.Event.Type).ToHashSet();
        seen.Add(EventType.AnomalyDetected); // the fraud values are not on this branch: see the hand-built cases below
        foreach (var e in LedgerChanges.Events(LedgerChanges.Run(Scenario.RewardCommands()))) seen.Add(e.Event.Type); // RewardIssued, RewardReversed
        Assert.Equal(EventTypes.All.ToHashSet(), seen);
    }

    [Fact]
    public void Event_ids_are_unique_and_increase_along_the_stream()
    {
        var changes = LedgerChanges.Run(new CommandBuilder().Workload(seed: 7, wallets: 30, count: 5_000));
        var events = LedgerChanges.Events(changes);
        Assert.True(events.Count > 3_000, $"only {events.Count} events");
        var ids = new HashSet<string>();
        (long, int, int) previous = (0, 0, -1);
        foreach (var (change, e) in events)
        {
            Assert.True(ids.Add(EventMapper.EventId(change.Sequence, change.Index, e.Ordinal)));
            var position = (change.Sequence, change.Index, e.Ordinal);
            Assert.True(Compare(position, previous) > 0, $"{position} does not follow {previous}");
            previous = position;
        }
        // The workload exercises expiries (index > 0 within a record) and every payment event.
        Assert.Contains(events, e => e.Event.Reason == EventMapper.Reasons.Expired);
        Assert.Contains(events, e => e.Event.Type == EventType.PaymentRefunded);
        Assert.Contains(events, e => e.Event.Type == EventType.PaymentCaptured);
    }

    [Fact]
    public void A_mapping_is_the_same_every_time()
    {
        var first = LedgerChanges.Events(ScenarioChanges.Value);
        var second = LedgerChanges.Events(LedgerChanges.Run(Scenario.Commands()));
        Assert.Equal(first.Select(e => e.Event), second.Select(e => e.Event));
        var encoder = new EventEncoder();
        for (int i = 0; i < first.Count; i++)
        {
            string a = Encoding.UTF8.GetString(encoder.Encode(first[i].Change, first[i].Event));
            string b = Encoding.UTF8.GetString(encoder.Encode(second[i].Change, second[i].Event));
            Assert.Equal(a, b);
        }
    }

    [Fact]
    public void Replays_ticks_opened_accounts_conflicts_and_refused_follow_ups_give_no_event()
    {
        var bySequence = ScenarioChanges.Value.ToLookup(c => c.Sequence);
        var events = new MappedEvent[EventMapper.MaxEventsPerChange];
        foreach (long sequence in new long[] { 1, 17, 18, 19, 20 })
        {
            var change = Assert.Single(bySequence[sequence]);
            Assert.Equal(0, EventMapper.Map(change, events));
        }
        Assert.True(Assert.Single(bySequence[17]).Result.Replayed);
        Assert.Equal(ResultCode.ExistsWithDifferentAmount, Assert.Single(bySequence[18]).Result.Code);
        Assert.Equal(ResultCode.PaymentNotFound, Assert.Single(bySequence[19]).Result.Code);
    }

    [Fact]
    public void A_payment_held_for_review_is_created_and_flagged_instead_of_approved_or_authorized()
    {
        foreach (var type in new[] { CommandType.Transfer, CommandType.Authorize })
        {
            var change = Hand.NewPayment(type, status: EventMapper.HeldForReview);
            var events = Map(change);
            Assert.Equal([EventType.PaymentCreated, EventType.AnomalyDetected], events.Select(e => e.Type));
            Assert.Equal([20L, 20L], events.Select(e => e.KeyAccount));
            Assert.Equal("held_for_review", events[1].Reason);
            using var json = JsonDocument.Parse(new EventEncoder().Encode(change, events[1]).ToArray());
            Assert.Equal("held_for_review", json.RootElement.GetProperty("payment").GetProperty("status").GetString());
        }
    }

    [Fact]
    public void A_payment_refused_as_suspected_fraud_gives_an_anomaly_then_a_failure()
    {
        var change = Hand.NewPayment(CommandType.Transfer, status: PaymentStatus.Posted);
        change.Result = new CommandResult { Code = EventMapper.FraudSuspected };
        change.Payment = default;
        change.From = default;
        change.To = default;
        var events = Map(change);
        Assert.Equal([EventType.AnomalyDetected, EventType.PaymentFailed], events.Select(e => e.Type));
        Assert.Equal([0, 1], events.Select(e => e.Ordinal));
        Assert.All(events, e => Assert.Equal("fraud_suspected", e.Reason));
        Assert.All(events, e => Assert.Equal(20L, e.KeyAccount));
    }

    [Fact]
    public void A_review_approves_authorizes_or_fails_the_held_payment()
    {
        (PaymentStatus, EventType, string?)[] cases =
        [
            (PaymentStatus.Posted, EventType.PaymentApproved, null),
            (PaymentStatus.Authorized, EventType.PaymentAuthorized, null),
            (PaymentStatus.Voided, EventType.PaymentFailed, "review_rejected"),
        ];
        foreach (var (status, type, reason) in cases)
        {
            var change = Hand.NewPayment(EventMapper.Review, status);
            var e = Assert.Single(Map(change));
            Assert.Equal((type, 20L, reason), (e.Type, e.KeyAccount, e.Reason));
        }
    }

    [Fact]
    public void A_state_change_of_a_command_type_the_mapper_does_not_know_stops_the_sink()
    {
        var change = Hand.NewPayment((CommandType)99, PaymentStatus.Posted);
        Assert.Throws<InvariantViolationException>(() => Map(change));
    }

    [Fact]
    public void Idempotency_conflicts_never_fail_a_payment()
    {
        for (var code = ResultCode.ExistsWithDifferentType; code <= ResultCode.ExistsWithDifferentArgument; code++)
        {
            var change = Hand.NewPayment(CommandType.Transfer, PaymentStatus.Posted);
            change.Result = new CommandResult { Code = code };
            Assert.Empty(Map(change));
        }
    }

    [Fact]
    public void Payment_keys_keep_a_payment_and_its_refunds_on_the_payer_and_a_deposit_on_its_wallet()
    {
        var transfer = new Payment { Id = 1, Kind = PaymentKind.Transfer, FromAccount = 5, ToAccount = 6 };
        var deposit = new Payment { Id = 2, Kind = PaymentKind.Deposit, FromAccount = 1, ToAccount = 6 };
        var refundOfTransfer = new Payment { Id = 3, Kind = PaymentKind.Refund, FromAccount = 6, ToAccount = 5, ParentId = 1 };
        var refundOfDeposit = new Payment { Id = 4, Kind = PaymentKind.Refund, FromAccount = 6, ToAccount = 1, ParentId = 2 };
        Assert.Equal(5, EventMapper.PaymentKey(transfer, default));
        Assert.Equal(6, EventMapper.PaymentKey(deposit, default));
        Assert.Equal(5, EventMapper.PaymentKey(refundOfTransfer, transfer));
        Assert.Equal(6, EventMapper.PaymentKey(refundOfDeposit, deposit));
        Assert.Equal("6"u8.ToArray(), EventEncoder.Key(new MappedEvent(EventType.PaymentCreated, 0, 6, null)));
        Assert.Equal("1234567890123"u8.ToArray(), EventEncoder.Key(new MappedEvent(EventType.PaymentCreated, 0, 1234567890123, null)));
    }

    [Fact]
    public void Map_needs_room_for_the_most_events_a_change_gives()
    {
        var change = Hand.NewPayment(CommandType.Transfer, PaymentStatus.Posted);
        Assert.Throws<ArgumentException>(() => EventMapper.Map(change, new MappedEvent[1]));
    }

    private static MappedEvent[] Map(in Change change)
    {
        var events = new MappedEvent[EventMapper.MaxEventsPerChange];
        int n = EventMapper.Map(change, events);
        return events[..n];
    }

    internal static int Compare((long, int, int) a, (long, int, int) b) =>
        a.Item1 != b.Item1 ? a.Item1.CompareTo(b.Item1) : a.Item2 != b.Item2 ? a.Item2.CompareTo(b.Item2) : a.Item3.CompareTo(b.Item3);
}

/// <summary>Changes filled by hand, for what the ledger on this branch cannot make (the fraud work's values).</summary>
internal static class Hand
{
    public static Change NewPayment(CommandType type, PaymentStatus status) => new()
    {
        Sequence = 42,
        Index = 0,
        Kind = ChangeKind.Command,
        TimestampMs = 1_700_000_000_007,
        Command = new Command { Type = type, Currency = Currency.USD, ClientId = 77, FromAccount = 20, ToAccount = 21, Amount = 1_250, PaymentId = type == EventMapper.Review ? 9 : 0 },
        Result = new CommandResult { Code = ResultCode.Ok, Id = 9 },
        Payment = new Payment
        {
            Id = 9, Kind = type == CommandType.Authorize ? PaymentKind.Authorization : PaymentKind.Transfer, Status = status,
            FromAccount = 20, ToAccount = 21, Amount = 1_250, Captured = type == CommandType.Authorize ? 0 : 1_250,
            Currency = Currency.USD, CreatedAtMs = 1_700_000_000_007, ExpiresAtMs = type == CommandType.Authorize ? 1_700_604_800_007 : 0,
        },
        From = new Account { Id = 20, Owner = 77, Currency = Currency.USD, Flags = AccountFlags.DebitsMustNotExceedCredits, CreditsPosted = 10_000, DebitsPosted = 1_250 },
        To = new Account { Id = 21, Owner = 78, Currency = Currency.USD, Flags = AccountFlags.DebitsMustNotExceedCredits, CreditsPosted = 1_250 },
    };
}
