using System.Text;
using System.Text.Json;
using RamPay.Core;
using RamPay.Sinks;

namespace RamPay.Kafka.Tests;

public class EventEncoderTests
{
    private static readonly Lazy<Change[]> ScenarioChanges = new(() => LedgerChanges.Run(Scenario.Commands()));

    private static string Encode(in Change change, in MappedEvent e) => Encoding.UTF8.GetString(new EventEncoder().Encode(change, e));

    private static Dictionary<string, string> ScenarioJson()
    {
        var encoder = new EventEncoder();
        return LedgerChanges.Events(ScenarioChanges.Value).ToDictionary(
            e => EventMapper.EventId(e.Change.Sequence, e.Change.Index, e.Event.Ordinal),
            e => Encoding.UTF8.GetString(encoder.Encode(e.Change, e.Event)));
    }

    // Golden payloads: a change to one of these is a change of docs/events.md (and maybe of the schema version).
    [Fact]
    public void A_payment_event_has_the_documented_shape()
    {
        var change = Hand.NewPayment(CommandType.Transfer, PaymentStatus.Posted);
        Assert.Equal(
            """{"event_id":"42-0-1","type":"PaymentApproved","version":1,"sequence":42,"index":0,"ordinal":1,"occurred_at":"2023-11-14T22:13:20.007Z","key":20,"client_id":77,"payment":"""
            + """{"id":9,"kind":"transfer","status":"posted","from_account":20,"to_account":21,"amount":1250,"currency":"USD","captured":1250,"refunded":0,"parent_id":null,"created_at":"2023-11-14T22:13:20.007Z","expires_at":null,"description":null,"webhook_url":null},"balances":"""
            + """{"from":{"id":20,"owner":77,"currency":"USD","balance":8750,"available":8750,"debits_posted":1250,"credits_posted":10000,"debits_pending":0,"credits_pending":0,"frozen":false},"to":"""
            + """{"id":21,"owner":78,"currency":"USD","balance":1250,"available":1250,"debits_posted":0,"credits_posted":1250,"debits_pending":0,"credits_pending":0,"frozen":false}}}""",
            Encode(change, new MappedEvent(EventType.PaymentApproved, 1, 20, null)));
    }

    [Fact]
    public void A_refused_payment_describes_the_attempt()
    {
        Assert.Equal(
            """{"event_id":"7-0-0","type":"PaymentFailed","version":1,"sequence":7,"index":0,"ordinal":0,"occurred_at":"2023-11-14T22:13:20.049Z","key":2,"client_id":1,"reason":"insufficient_funds","payment":"""
            + """{"id":null,"kind":"transfer","status":"failed","from_account":2,"to_account":3,"amount":1000000,"currency":"USD","captured":0,"refunded":0,"parent_id":null,"created_at":null,"expires_at":null,"description":null,"webhook_url":null}}""",
            ScenarioJson()["7-0-0"]);
    }

    [Fact]
    public void A_registered_user_comes_without_the_password_hash_and_with_the_wallet()
    {
        string json = ScenarioJson()["2-0-0"];
        Assert.Equal(
            """{"event_id":"2-0-0","type":"UserRegistered","version":1,"sequence":2,"index":0,"ordinal":0,"occurred_at":"2023-11-14T22:13:20.014Z","key":2,"client_id":1,"user":"""
            + """{"id":1,"email":"alice@example.com","name":"Alice Ånström","role":"user","wallet_account":2,"created_at":"2023-11-14T22:13:20.014Z"},"account":"""
            + """{"id":2,"owner":1,"currency":"USD","balance":0,"available":0,"debits_posted":0,"credits_posted":0,"debits_pending":0,"credits_pending":0,"frozen":false}}""",
            json);
        foreach (string payload in ScenarioJson().Values)
        {
            Assert.DoesNotContain("secret", payload, StringComparison.Ordinal);
            Assert.DoesNotContain("password", payload, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain("pbkdf2", payload, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void An_expiry_is_a_void_with_reason_expired_and_no_client()
    {
        using var json = JsonDocument.Parse(ScenarioJson()["14-0-0"]);
        var root = json.RootElement;
        Assert.Equal("PaymentVoided", root.GetProperty("type").GetString());
        Assert.Equal("expired", root.GetProperty("reason").GetString());
        Assert.Equal(JsonValueKind.Null, root.GetProperty("client_id").ValueKind);
        Assert.Equal("expired", root.GetProperty("payment").GetProperty("status").GetString());
        Assert.Equal("2023-11-14T22:13:20.094Z", root.GetProperty("payment").GetProperty("expires_at").GetString());
    }

    [Fact]
    public void A_refund_event_carries_the_refunded_payment_and_the_refund()
    {
        using var json = JsonDocument.Parse(ScenarioJson()["13-0-0"]);
        var root = json.RootElement;
        var payment = root.GetProperty("payment");
        var refund = root.GetProperty("refund");
        Assert.Equal((3, 400), (payment.GetProperty("id").GetInt64(), payment.GetProperty("refunded").GetInt64()));
        Assert.Equal((7, 400, 3), (refund.GetProperty("id").GetInt64(), refund.GetProperty("amount").GetInt64(), refund.GetProperty("parent_id").GetInt64()));
        Assert.Equal(2, root.GetProperty("key").GetInt64());
        Assert.Equal(9_100, root.GetProperty("balances").GetProperty("to").GetProperty("balance").GetInt64());
    }

    [Fact]
    public void The_note_of_a_new_payment_is_in_its_creation_events_with_text_escaped_as_json()
    {
        var all = ScenarioJson();
        foreach (string id in new[] { "6-0-0", "6-0-1" })
        {
            using var json = JsonDocument.Parse(all[id]);
            var payment = json.RootElement.GetProperty("payment");
            Assert.Equal("Rent \"March\"", payment.GetProperty("description").GetString());
            Assert.Equal("https://example.com/hook", payment.GetProperty("webhook_url").GetString());
        }
    }

    [Fact]
    public void Every_event_parses_and_names_its_id_type_version_position_and_key()
    {
        var changes = LedgerChanges.Run(new CommandBuilder().Workload(seed: 3, wallets: 20, count: 3_000));
        var encoder = new EventEncoder();
        string[] common = ["event_id", "type", "version", "sequence", "index", "ordinal", "occurred_at", "key", "client_id"];
        foreach (var (change, e) in LedgerChanges.Events(changes))
        {
            using var json = JsonDocument.Parse(encoder.Encode(change, e).ToArray());
            var root = json.RootElement;
            Assert.Equal(common, root.EnumerateObject().Select(p => p.Name).Take(common.Length));
            Assert.Equal(EventMapper.EventId(change.Sequence, change.Index, e.Ordinal), root.GetProperty("event_id").GetString());
            Assert.Equal(EventTypes.Name(e.Type), root.GetProperty("type").GetString());
            Assert.Equal(1, root.GetProperty("version").GetInt32());
            Assert.Equal(change.Sequence, root.GetProperty("sequence").GetInt64());
            Assert.Equal(e.KeyAccount, root.GetProperty("key").GetInt64());
            Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(change.TimestampMs), root.GetProperty("occurred_at").GetDateTimeOffset());
            Assert.Equal(e.Reason is not null, root.TryGetProperty("reason", out _));
            switch (e.Type)
            {
                case EventType.AccountFrozen or EventType.AccountUnfrozen:
                    Assert.Equal(e.KeyAccount, root.GetProperty("account").GetProperty("id").GetInt64());
                    break;
                case EventType.UserRegistered:
                    Assert.Equal(e.KeyAccount, root.GetProperty("user").GetProperty("wallet_account").GetInt64());
                    break;
                default:
                    var payment = root.GetProperty("payment");
                    Assert.Equal("USD", payment.GetProperty("currency").GetString());
                    // The key is the payment's paying side, or a deposit's wallet.
                    long expectedKey = payment.GetProperty("kind").GetString() == "deposit" ? payment.GetProperty("to_account").GetInt64() : payment.GetProperty("from_account").GetInt64();
                    Assert.Equal(expectedKey, e.KeyAccount);
                    break;
            }
        }
    }

    [Fact]
    public void The_encoder_reuses_its_buffer_and_gives_the_same_bytes_for_the_same_event()
    {
        var change = Hand.NewPayment(CommandType.Authorize, PaymentStatus.Authorized);
        var encoder = new EventEncoder();
        byte[] first = encoder.Encode(change, new MappedEvent(EventType.PaymentCreated, 0, 20, null)).ToArray();
        encoder.Encode(change, new MappedEvent(EventType.PaymentAuthorized, 1, 20, null));
        Assert.Equal(first, encoder.Encode(change, new MappedEvent(EventType.PaymentCreated, 0, 20, null)).ToArray());
    }

    [Fact]
    public void Event_ids_are_formatted_as_sequence_index_ordinal()
    {
        Span<byte> buffer = stackalloc byte[64];
        int n = EventEncoder.FormatEventId(long.MaxValue, int.MaxValue, 1, buffer);
        Assert.Equal($"{long.MaxValue}-{int.MaxValue}-1", Encoding.ASCII.GetString(buffer[..n]));
        Assert.Equal("12-3-0", EventMapper.EventId(12, 3, 0));
    }
}
