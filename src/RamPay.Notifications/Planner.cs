using System.Globalization;
using System.Text.Json;
using RamPay.Events;

namespace RamPay.Notifications;

/// <summary>One notification an event gives: who, which template, and the template's values (but not the recipient's own details).</summary>
public sealed record PlannedNotification(long UserId, string Kind, string EventId, IReadOnlyDictionary<string, string> Values);

/// <summary>
/// Which events notify whom (docs/notifications.md, "What is sent"): money received (the payee of a settled transfer,
/// deposit or capture), payment sent (its payer), refund received (the refund's receiver), payment held for review
/// (<c>AnomalyDetected</c>, <c>held_for_review</c>) or declined (<c>PaymentFailed</c>, <c>fraud_suspected</c> or
/// <c>review_rejected</c>), account frozen or unfrozen (its owner). Platform accounts (owner 0) are nobody's.
/// </summary>
public static class NotificationPlanner
{
    public static void Plan(EventRecord e, List<PlannedNotification> into)
    {
        switch (e.Type)
        {
            case "PaymentApproved" or "PaymentCaptured" or "PaymentRefunded" or "AnomalyDetected" or "PaymentFailed" or "AccountFrozen" or "AccountUnfrozen":
                break;
            default:
                return;
        }
        using var doc = e.Parse();
        var root = doc.RootElement;
        long clientId = Long(root, "client_id");
        string reason = root.TryGetProperty("reason", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString()! : "";
        switch (e.Type)
        {
            case "AccountFrozen" or "AccountUnfrozen":
            {
                var account = root.GetProperty("account");
                long owner = Long(account, "owner");
                if (owner > 0)
                    into.Add(new(owner, e.Type == "AccountFrozen" ? "account_frozen" : "account_unfrozen", e.EventId, new Dictionary<string, string> { ["account_id"] = Num(Long(account, "id")) }));
                return;
            }
        }
        if (!root.TryGetProperty("payment", out var payment) || payment.ValueKind != JsonValueKind.Object) return;
        string kind = Str(payment, "kind");
        long fromOwner = 0, toOwner = 0;
        if (root.TryGetProperty("balances", out var balances) && balances.ValueKind == JsonValueKind.Object)
        {
            fromOwner = balances.TryGetProperty("from", out var f) && f.ValueKind == JsonValueKind.Object ? Long(f, "owner") : 0;
            toOwner = balances.TryGetProperty("to", out var t) && t.ValueKind == JsonValueKind.Object ? Long(t, "owner") : 0;
        }
        var values = new Dictionary<string, string>
        {
            ["amount"] = NotificationTemplates.Money(Long(payment, "amount"), Str(payment, "currency")),
            ["payment_id"] = payment.TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.Number ? Num(id.GetInt64()) : "-",
            ["reason"] = reason.Replace('_', ' '),
        };
        long fromAccount = Long(payment, "from_account"), toAccount = Long(payment, "to_account");
        switch (e.Type)
        {
            case "PaymentApproved" or "PaymentCaptured" when kind is "transfer" or "deposit" or "authorization":
            {
                long settled = e.Type == "PaymentCaptured" ? Long(payment, "captured") : Long(payment, "amount");
                values["amount"] = NotificationTemplates.Money(settled, Str(payment, "currency"));
                if (toOwner > 0) into.Add(new(toOwner, "money_received", e.EventId, With(values, toAccount, fromAccount)));
                if (fromOwner > 0 && fromOwner != toOwner) into.Add(new(fromOwner, "payment_sent", e.EventId, With(values, fromAccount, toAccount)));
                return;
            }
            case "PaymentRefunded":
            {
                if (!root.TryGetProperty("refund", out var refund) || refund.ValueKind != JsonValueKind.Object) return;
                values["amount"] = NotificationTemplates.Money(Long(refund, "amount"), Str(refund, "currency"));
                if (toOwner > 0) into.Add(new(toOwner, "refund_received", e.EventId, With(values, Long(refund, "to_account"), Long(refund, "from_account"))));
                return;
            }
            case "AnomalyDetected" when reason == "held_for_review":
            {
                long payer = fromOwner > 0 ? fromOwner : clientId;
                if (payer > 0) into.Add(new(payer, "payment_held", e.EventId, With(values, fromAccount, toAccount)));
                return;
            }
            case "PaymentFailed" when reason is "fraud_suspected" or "review_rejected":
            {
                long payer = fromOwner > 0 ? fromOwner : reason == "fraud_suspected" ? clientId : 0;
                if (payer > 0) into.Add(new(payer, "payment_declined", e.EventId, With(values, fromAccount, toAccount)));
                return;
            }
        }
    }

    private static Dictionary<string, string> With(Dictionary<string, string> values, long account, long counterparty) =>
        new(values) { ["account_id"] = Num(account), ["counterparty_account"] = Num(counterparty) };

    private static long Long(JsonElement o, string name) => o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt64() : 0;
    private static string Str(JsonElement o, string name) => o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : "";
    private static string Num(long v) => v.ToString(CultureInfo.InvariantCulture);
}
