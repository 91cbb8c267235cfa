using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using RamPay.Core;
using RamPay.Sinks;

namespace RamPay.Events;

/// <summary>
/// Which part of an event a user may see (issue 12: "a payee does not get the payer's balances or email"). Admins see
/// every event whole; a user sees only the events that concern them, cut by <see cref="EventAudience.Cut"/>.
/// The numbers are stored in the event log: never renumber.
/// </summary>
public enum EventParty : byte
{
    /// <summary>The whole event: the user is both sides of a payment, the one who attempted a refused payment, or the account's owner.</summary>
    Full = 1,
    /// <summary>The paying side of a payment: not the payee's balances (<c>balances.to</c> is null).</summary>
    Payer = 2,
    /// <summary>The receiving side: not the payer's balances (<c>balances.from</c>) nor the payer's <c>webhook_url</c>.</summary>
    Payee = 3,
}

/// <summary>A user an event concerns, and how much of it they may see.</summary>
public readonly record struct EventViewer(long UserId, EventParty Party);

/// <summary>
/// Who an event concerns, from the change it came from (docs/webhooks.md, "Who receives what"):
/// a payment's event concerns the owners of its two accounts (the payer cut and the payee cut; platform accounts,
/// owner 0, are the admins'), except <c>AnomalyDetected</c>, which only the payer and admins see; a refused attempt
/// (no payment exists) concerns the user who sent it; a freeze concerns the account's owner; <c>UserRegistered</c>
/// is for admins only.
/// </summary>
public static class EventAudience
{
    /// <summary>No event concerns more users than this, or more accounts.</summary>
    public const int Max = 2;

    /// <summary>Writes the users <paramref name="e"/> concerns into <paramref name="viewers"/> (room for <see cref="Max"/>) and returns how many.</summary>
    public static int Viewers(in Change change, in MappedEvent e, Span<EventViewer> viewers)
    {
        switch (e.Type)
        {
            case EventType.UserRegistered:
                return 0;
            case EventType.AccountFrozen:
            case EventType.AccountUnfrozen:
                return One(viewers, change.From.Owner, EventParty.Full);
        }
        if (change.Payment.Id == 0 && change.Kind == ChangeKind.Command)
        {
            // A refused attempt: no accounts moved; the one who tried sees it (a payee never hears of it).
            return change.Command.ClientId > 0 ? One(viewers, change.Command.ClientId, EventParty.Full) : 0;
        }
        long payer = change.From.Owner, payee = change.To.Owner;
        if (payer == payee) return One(viewers, payer, EventParty.Full);
        int n = One(viewers, payer, EventParty.Payer);
        if (e.Type != EventType.AnomalyDetected && payee > 0) viewers[n++] = new EventViewer(payee, EventParty.Payee);
        return n;
    }

    /// <summary>The accounts <paramref name="e"/> is about (for the log's account index), into <paramref name="accounts"/>; returns how many.</summary>
    public static int Accounts(in Change change, in MappedEvent e, Span<long> accounts)
    {
        if (e.Type is EventType.AccountFrozen or EventType.AccountUnfrozen or EventType.UserRegistered)
            return OneAccount(accounts, change.From.Id);
        if (change.Payment.Id == 0 && change.Kind == ChangeKind.Command)
        {
            int k = OneAccount(accounts, change.Command.FromAccount);
            if (change.Command.ToAccount > 0 && change.Command.ToAccount != change.Command.FromAccount) accounts[k++] = change.Command.ToAccount;
            return k;
        }
        int n = OneAccount(accounts, change.From.Id);
        if (change.To.Id > 0 && change.To.Id != change.From.Id) accounts[n++] = change.To.Id;
        return n;
    }

    private static int One(Span<EventViewer> viewers, long user, EventParty party)
    {
        if (user <= 0) return 0;
        viewers[0] = new EventViewer(user, party);
        return 1;
    }

    private static int OneAccount(Span<long> accounts, long id)
    {
        if (id <= 0) return 0;
        accounts[0] = id;
        return 1;
    }

    private static readonly JsonSerializerOptions Compact = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, WriteIndented = false };

    /// <summary>
    /// The event as <paramref name="party"/> may see it: the payload itself for <see cref="EventParty.Full"/>; otherwise
    /// the same JSON with the other side's balances (and, for a payee, the payer's <c>webhook_url</c>) set to null.
    /// Fields keep their order, so a cut event still reads as docs/events.md describes.
    /// </summary>
    public static ReadOnlyMemory<byte> Cut(ReadOnlyMemory<byte> json, EventParty party)
    {
        if (party == EventParty.Full) return json;
        Invariant.Check(party is EventParty.Payer or EventParty.Payee, "a stored party is Full, Payer or Payee");
        var node = JsonNode.Parse(json.Span) as JsonObject ?? throw new InvalidDataException("an event is a JSON object");
        if (node["balances"] is JsonObject balances)
            balances[party == EventParty.Payer ? "to" : "from"] = null;
        if (party == EventParty.Payee && node["payment"] is JsonObject payment && payment.ContainsKey("webhook_url"))
            payment["webhook_url"] = null;
        return JsonSerializer.SerializeToUtf8Bytes(node, Compact);
    }
}
