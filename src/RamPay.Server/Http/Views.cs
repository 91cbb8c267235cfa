using System.Text.Json;
using RamPay.Core;

namespace RamPay.Server.Http;

/// <summary>A payment copied out of the ledger on the writer thread, with the owners of both sides for access checks.</summary>
public readonly record struct PaymentView(Payment Payment, long FromOwner, long ToOwner, PaymentNote? Note, PaymentFraud? Fraud)
{
    public static PaymentView Of(IReadOnlyLedger ledger, long id)
    {
        var p = ledger.GetPayment(id);
        return new PaymentView(p, ledger.GetAccount(p.FromAccount).Owner, ledger.GetAccount(p.ToAccount).Owner, ledger.GetPaymentNote(id), ledger.GetFraudScore(id));
    }

    public static PaymentView? TryOf(IReadOnlyLedger ledger, long id) => ledger.PaymentExists(id) ? Of(ledger, id) : null;

    /// <summary>Party to the payment: owns the paying or the receiving account.</summary>
    public bool IsParty(long userId) => FromOwner == userId || ToOwner == userId;
}

/// <summary>Reads the payment a command made or acted on, right after it is applied: one trip through the ring, not two.</summary>
public sealed class PaymentReadBack : RamPay.Engine.ICommandReadBack
{
    public PaymentView? View { get; private set; }

    public void Execute(IReadOnlyLedger ledger, in CommandResult result)
    {
        // A payment declined by fraud screening exists too (its result names it): the caller shows its id.
        if ((result.IsOk || result.Code == ResultCode.FraudSuspected) && ledger.PaymentExists(result.Id)) View = PaymentView.Of(ledger, result.Id);
    }
}

/// <summary>The JSON shapes of docs/api.md, written straight to the response with a Utf8JsonWriter.</summary>
public static class JsonOut
{
    public static string Time(long unixMs) =>
        DateTimeOffset.FromUnixTimeMilliseconds(unixMs).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture);

    public static string AccountType(in Account a) =>
        (a.Flags & AccountFlags.Funding) != 0 ? "funding" : a.IsWallet ? "wallet" : "plain";

    public static void Payment(Utf8JsonWriter w, in PaymentView view)
    {
        var p = view.Payment;
        w.WriteStartObject();
        w.WriteNumber("id", p.Id);
        w.WriteString("kind", PaymentNames.Kind(p.Kind));
        w.WriteString("status", PaymentNames.Status(p.Status));
        w.WriteNumber("from_account", p.FromAccount);
        w.WriteNumber("to_account", p.ToAccount);
        w.WriteNumber("amount", p.Amount);
        w.WriteString("currency", p.Currency.ToString());
        w.WriteNumber("captured", p.Status is PaymentStatus.Authorized or PaymentStatus.Voided or PaymentStatus.Expired ? 0 : p.Captured);
        w.WriteNumber("refunded", p.Refunded);
        w.WriteString("created_at", Time(p.CreatedAtMs));
        // An authorization's hold lapses then; a transfer held for review is released then unless reviewed.
        if (p.Kind == PaymentKind.Authorization || p.Status == PaymentStatus.HeldForReview) w.WriteString("expires_at", Time(p.ExpiresAtMs)); else w.WriteNull("expires_at");
        if (p.ParentId != 0 && p.Kind == PaymentKind.Refund) w.WriteNumber("refund_of", p.ParentId); else w.WriteNull("refund_of");
        // Cashback (docs/rewards.md): a reward or its reversal names the payment that earned it.
        if (p.Kind is PaymentKind.Reward or PaymentKind.RewardReversal) w.WriteNumber("reward_for", p.ParentId);
        if (view.Note?.Description is { } description) w.WriteString("description", description); else w.WriteNull("description");
        if (view.Note?.WebhookUrl is { } webhook) w.WriteString("webhook_url", webhook); else w.WriteNull("webhook_url");
        if (view.Fraud is { } fraud)
        {
            w.WriteStartObject("fraud");
            // The score as stored (a float), printed in its shortest round-trip form.
            w.WriteNumber("score", fraud.Score);
            w.WriteString("model_version", fraud.ModelVersion);
            w.WriteStartArray("reasons");
            foreach (string reason in fraud.ReasonNames) w.WriteStringValue(reason);
            w.WriteEndArray();
            w.WriteEndObject();
        }
        else
        {
            w.WriteNull("fraud");
        }
        w.WriteEndObject();
    }

    public static void Account(Utf8JsonWriter w, in Account a)
    {
        w.WriteStartObject();
        w.WriteNumber("id", a.Id);
        if (a.Owner != 0) w.WriteNumber("owner_user_id", a.Owner); else w.WriteNull("owner_user_id");
        w.WriteString("currency", a.Currency.ToString());
        w.WriteString("type", AccountType(a));
        w.WriteBoolean("frozen", a.Frozen);
        w.WriteNumber("posted", a.Posted);
        w.WriteNumber("pending", a.Pending);
        w.WriteNumber("available", a.Available);
        w.WriteNumber("debits_posted", a.DebitsPosted);
        w.WriteNumber("credits_posted", a.CreditsPosted);
        w.WriteNumber("debits_pending", a.DebitsPending);
        w.WriteNumber("credits_pending", a.CreditsPending);
        w.WriteString("created_at", Time(a.CreatedAtMs));
        w.WriteEndObject();
    }

    /// <param name="more">Fields other parts add to the user view (notifications: phone, phone_verified, notifications).</param>
    public static void User(Utf8JsonWriter w, User u, Currency walletCurrency, Action<Utf8JsonWriter>? more = null)
    {
        w.WriteStartObject();
        w.WriteNumber("user_id", u.Id);
        w.WriteNumber("wallet_account_id", u.WalletAccountId);
        w.WriteString("email", u.Email);
        w.WriteString("name", u.Name);
        w.WriteString("role", u.Role == UserRole.Admin ? "admin" : "user");
        w.WriteString("currency", walletCurrency.ToString());
        w.WriteString("created_at", Time(u.CreatedAtMs));
        more?.Invoke(w);
        w.WriteEndObject();
    }

    /// <summary>The error document: <c>{"error": {"code", "message", "field"?, "request_id"}}</c>.</summary>
    public static void Error(Utf8JsonWriter w, string code, string message, long paymentId = 0, string? requestId = null, string? field = null)
    {
        w.WriteStartObject();
        w.WritePropertyName("error");
        ErrorObject(w, code, message, paymentId, requestId, field);
        w.WriteEndObject();
    }

    /// <summary>
    /// The inner <c>{"code", "message"}</c>, also a batch item's <c>error</c>; <c>payment_id</c> when the refusal made a
    /// payment (fraud_suspected); <c>request_id</c> in a response's error (not in a batch item's); <c>field</c> when the
    /// refusal is about one input (<see cref="ApiError.Field"/>).
    /// </summary>
    public static void ErrorObject(Utf8JsonWriter w, string code, string message, long paymentId = 0, string? requestId = null, string? field = null)
    {
        w.WriteStartObject();
        w.WriteString("code", code);
        w.WriteString("message", message);
        if (field is not null) w.WriteString("field", field);
        if (paymentId != 0) w.WriteNumber("payment_id", paymentId);
        if (requestId is not null) w.WriteString("request_id", requestId);
        w.WriteEndObject();
    }

    // Relaxed escaping: these are JSON bodies, never HTML, so an apostrophe in a message stays an apostrophe.
    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Sets the status and content type and writes one JSON document to the response.</summary>
    public static async Task Write(HttpContext ctx, int status, Action<Utf8JsonWriter> body)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json; charset=utf-8";
        using (var w = new Utf8JsonWriter(ctx.Response.BodyWriter, WriterOptions))
        {
            body(w);
        }
        await ctx.Response.BodyWriter.FlushAsync(ctx.RequestAborted);
    }
}
