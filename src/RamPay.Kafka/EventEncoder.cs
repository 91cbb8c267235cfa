using System.Buffers;
using System.Buffers.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using RamPay.Core;
using RamPay.Sinks;

namespace RamPay.Kafka;

/// <summary>
/// Writes an event's payload: compact UTF-8 JSON (docs/events.md has every field), written field by field with a
/// <see cref="Utf8JsonWriter"/> into one reused buffer, with no reflection and no intermediate objects. One thread.
/// </summary>
public sealed class EventEncoder
{
    private static readonly JsonWriterOptions WriterOptions = new()
    {
        // Event payloads are not embedded in HTML: keep non-ASCII text (names, descriptions) readable as UTF-8
        // instead of \uXXXX escapes. Quotes, backslashes and control characters are still escaped.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        Indented = false,
    };

    private readonly ArrayBufferWriter<byte> _buffer = new(2048);
    private readonly Utf8JsonWriter _json;

    public EventEncoder() => _json = new Utf8JsonWriter(_buffer, WriterOptions);

    /// <summary>The payload of <paramref name="e"/>, one of <paramref name="change"/>'s events. Valid until the next call.</summary>
    public ReadOnlySpan<byte> Encode(in Change change, in MappedEvent e)
    {
        _buffer.ResetWrittenCount();
        _json.Reset(_buffer);
        Write(_json, change, e);
        _json.Flush();
        return _buffer.WrittenSpan;
    }

    /// <summary>The message key of <paramref name="e"/>: its account id in decimal ASCII (what kcat and any consumer read as is).</summary>
    public static byte[] Key(in MappedEvent e)
    {
        Span<byte> digits = stackalloc byte[20];
        bool ok = Utf8Formatter.TryFormat(e.KeyAccount, digits, out int written);
        Invariant.Check(ok, "a long fits in 20 digits");
        return digits[..written].ToArray();
    }

    private static void Write(Utf8JsonWriter w, in Change change, in MappedEvent e)
    {
        w.WriteStartObject();
        Span<byte> id = stackalloc byte[64];
        int idLength = FormatEventId(change.Sequence, change.Index, e.Ordinal, id);
        w.WriteString(Names.EventId, id[..idLength]);
        w.WriteString(Names.Type, EventTypes.Name(e.Type));
        w.WriteNumber(Names.Version, EventTypes.SchemaVersion(e.Type));
        w.WriteNumber(Names.Sequence, change.Sequence);
        w.WriteNumber(Names.Index, change.Index);
        w.WriteNumber(Names.Ordinal, e.Ordinal);
        WriteTime(w, Names.OccurredAt, change.TimestampMs);
        w.WriteNumber(Names.Key, e.KeyAccount);
        // Who acted: the command's client (a user id, or a system client id); an expiry has no client.
        if (change.Kind == ChangeKind.Command) w.WriteNumber(Names.ClientId, change.Command.ClientId);
        else w.WriteNull(Names.ClientId);
        if (e.Reason is not null) w.WriteString(Names.Reason, e.Reason);

        switch (e.Type)
        {
            case EventType.PaymentFailed when change.Payment.Id == 0:
                WriteAttempt(w, change.Command);
                break;
            case EventType.AnomalyDetected when change.Payment.Id == 0:
                WriteAttempt(w, change.Command);
                break;
            case EventType.PaymentCreated:
            case EventType.PaymentApproved:
            case EventType.PaymentFailed:
            case EventType.PaymentAuthorized:
            case EventType.PaymentCaptured:
            case EventType.PaymentVoided:
            case EventType.AnomalyDetected:
                w.WritePropertyName(Names.Payment);
                WritePayment(w, change.Payment, change.Note);
                WriteBalances(w, change);
                break;
            case EventType.PaymentRefunded:
                w.WritePropertyName(Names.Payment);
                WritePayment(w, change.Parent, null);
                w.WritePropertyName(Names.Refund);
                WritePayment(w, change.Payment, null);
                WriteBalances(w, change);
                break;
            case EventType.AccountFrozen:
            case EventType.AccountUnfrozen:
                w.WritePropertyName(Names.Account);
                WriteAccount(w, change.From);
                break;
            case EventType.UserRegistered:
                WriteUser(w, change);
                break;
            default:
                Invariant.Fail($"no payload for event type {e.Type}");
                break;
        }
        w.WriteEndObject();
    }

    /// <summary>A payment as it is after the change.</summary>
    private static void WritePayment(Utf8JsonWriter w, in Payment p, PaymentNote? note)
    {
        w.WriteStartObject();
        w.WriteNumber(Names.Id, p.Id);
        w.WriteString(Names.Kind, KindName(p.Kind));
        w.WriteString(Names.Status, StatusName(p.Status));
        w.WriteNumber(Names.FromAccount, p.FromAccount);
        w.WriteNumber(Names.ToAccount, p.ToAccount);
        w.WriteNumber(Names.Amount, p.Amount);
        WriteCurrency(w, p.Currency);
        w.WriteNumber(Names.Captured, p.Captured);
        w.WriteNumber(Names.Refunded, p.Refunded);
        if (p.ParentId != 0) w.WriteNumber(Names.ParentId, p.ParentId);
        else w.WriteNull(Names.ParentId);
        WriteTime(w, Names.CreatedAt, p.CreatedAtMs);
        if (p.Kind == PaymentKind.Authorization) WriteTime(w, Names.ExpiresAt, p.ExpiresAtMs);
        else w.WriteNull(Names.ExpiresAt);
        if (note?.Description is { } description) w.WriteString(Names.Description, description);
        else w.WriteNull(Names.Description);
        if (note?.WebhookUrl is { } url) w.WriteString(Names.WebhookUrl, url);
        else w.WriteNull(Names.WebhookUrl);
        w.WriteEndObject();
    }

    /// <summary>A payment attempt the ledger refused: no payment exists, so what the command asked for, with status <c>failed</c>.</summary>
    private static void WriteAttempt(Utf8JsonWriter w, in Command c)
    {
        w.WritePropertyName(Names.Payment);
        w.WriteStartObject();
        w.WriteNull(Names.Id);
        w.WriteString(Names.Kind, c.Type switch
        {
            CommandType.Deposit => KindName(PaymentKind.Deposit),
            CommandType.Authorize => KindName(PaymentKind.Authorization),
            _ => KindName(PaymentKind.Transfer),
        });
        w.WriteString(Names.Status, "failed"u8);
        w.WriteNumber(Names.FromAccount, c.FromAccount);
        w.WriteNumber(Names.ToAccount, c.ToAccount);
        w.WriteNumber(Names.Amount, c.Amount);
        WriteCurrency(w, c.Currency);
        w.WriteNumber(Names.Captured, 0);
        w.WriteNumber(Names.Refunded, 0);
        w.WriteNull(Names.ParentId);
        w.WriteNull(Names.CreatedAt);
        w.WriteNull(Names.ExpiresAt);
        w.WriteNull(Names.Description);
        w.WriteNull(Names.WebhookUrl);
        w.WriteEndObject();
    }

    /// <summary>Both accounts a payment moved money between, after the change.</summary>
    private static void WriteBalances(Utf8JsonWriter w, in Change change)
    {
        w.WritePropertyName(Names.Balances);
        w.WriteStartObject();
        w.WritePropertyName(Names.From);
        if (change.From.Id != 0) WriteAccount(w, change.From);
        else w.WriteNullValue();
        w.WritePropertyName(Names.To);
        if (change.To.Id != 0) WriteAccount(w, change.To);
        else w.WriteNullValue();
        w.WriteEndObject();
    }

    private static void WriteAccount(Utf8JsonWriter w, in Account a)
    {
        w.WriteStartObject();
        w.WriteNumber(Names.Id, a.Id);
        w.WriteNumber(Names.Owner, a.Owner);
        WriteCurrency(w, a.Currency);
        w.WriteNumber(Names.Balance, a.Posted);
        w.WriteNumber(Names.Available, a.Available);
        w.WriteNumber(Names.DebitsPosted, a.DebitsPosted);
        w.WriteNumber(Names.CreditsPosted, a.CreditsPosted);
        w.WriteNumber(Names.DebitsPending, a.DebitsPending);
        w.WriteNumber(Names.CreditsPending, a.CreditsPending);
        w.WriteBoolean(Names.Frozen, a.Frozen);
        w.WriteEndObject();
    }

    /// <summary>The new user, never their password hash, and their wallet.</summary>
    private static void WriteUser(Utf8JsonWriter w, in Change change)
    {
        var user = change.User;
        Invariant.Check(user is not null, "a UserRegistered change carries its user");
        w.WritePropertyName(Names.User);
        w.WriteStartObject();
        w.WriteNumber(Names.Id, user.Id);
        w.WriteString(Names.Email, user.Email);
        w.WriteString(Names.Name, user.Name);
        w.WriteString(Names.Role, user.Role == UserRole.Admin ? "admin"u8 : "user"u8);
        w.WriteNumber(Names.WalletAccount, user.WalletAccountId);
        WriteTime(w, Names.CreatedAt, user.CreatedAtMs);
        w.WriteEndObject();
        w.WritePropertyName(Names.Account);
        WriteAccount(w, change.From);
    }

    private static void WriteCurrency(Utf8JsonWriter w, Currency currency)
    {
        if (!currency.IsValid)
        {
            if (currency.IsNone) w.WriteNull(Names.Currency);
            else w.WriteString(Names.Currency, currency.ToString());
            return;
        }
        Span<byte> code = stackalloc byte[3];
        int v = currency.Code - 1;
        code[2] = (byte)('A' + v % 26); v /= 26;
        code[1] = (byte)('A' + v % 26); v /= 26;
        code[0] = (byte)('A' + v);
        w.WriteString(Names.Currency, code);
    }

    /// <summary>ISO-8601 UTC with milliseconds, e.g. <c>2023-11-14T22:13:20.007Z</c>.</summary>
    private static void WriteTime(Utf8JsonWriter w, JsonEncodedText name, long unixMs)
    {
        Span<byte> text = stackalloc byte[32];
        bool ok = DateTimeOffset.FromUnixTimeMilliseconds(unixMs).UtcDateTime
            .TryFormat(text, out int written, "yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fff'Z'", System.Globalization.CultureInfo.InvariantCulture);
        Invariant.Check(ok, "a timestamp fits in 32 bytes");
        w.WriteString(name, text[..written]);
    }

    internal static int FormatEventId(long sequence, int index, int ordinal, Span<byte> into)
    {
        bool ok = Utf8Formatter.TryFormat(sequence, into, out int n);
        into[n++] = (byte)'-';
        ok &= Utf8Formatter.TryFormat(index, into[n..], out int m);
        n += m;
        into[n++] = (byte)'-';
        ok &= Utf8Formatter.TryFormat(ordinal, into[n..], out m);
        Invariant.Check(ok, "an event id fits in 64 bytes");
        return n + m;
    }

    private static ReadOnlySpan<byte> KindName(PaymentKind kind) => kind switch
    {
        PaymentKind.Transfer => "transfer"u8,
        PaymentKind.Deposit => "deposit"u8,
        PaymentKind.Authorization => "authorization"u8,
        PaymentKind.Refund => "refund"u8,
        _ => "unknown"u8,
    };

    internal static ReadOnlySpan<byte> StatusName(PaymentStatus status) => status switch
    {
        PaymentStatus.Posted => "posted"u8,
        PaymentStatus.Authorized => "authorized"u8,
        PaymentStatus.Captured => "captured"u8,
        PaymentStatus.Voided => "voided"u8,
        PaymentStatus.Expired => "expired"u8,
        EventMapper.HeldForReview => "held_for_review"u8,
        _ => "unknown"u8,
    };

    /// <summary>Property names, encoded once.</summary>
    private static class Names
    {
        public static readonly JsonEncodedText EventId = JsonEncodedText.Encode("event_id");
        public static readonly JsonEncodedText Type = JsonEncodedText.Encode("type");
        public static readonly JsonEncodedText Version = JsonEncodedText.Encode("version");
        public static readonly JsonEncodedText Sequence = JsonEncodedText.Encode("sequence");
        public static readonly JsonEncodedText Index = JsonEncodedText.Encode("index");
        public static readonly JsonEncodedText Ordinal = JsonEncodedText.Encode("ordinal");
        public static readonly JsonEncodedText OccurredAt = JsonEncodedText.Encode("occurred_at");
        public static readonly JsonEncodedText Key = JsonEncodedText.Encode("key");
        public static readonly JsonEncodedText ClientId = JsonEncodedText.Encode("client_id");
        public static readonly JsonEncodedText Reason = JsonEncodedText.Encode("reason");
        public static readonly JsonEncodedText Payment = JsonEncodedText.Encode("payment");
        public static readonly JsonEncodedText Refund = JsonEncodedText.Encode("refund");
        public static readonly JsonEncodedText Balances = JsonEncodedText.Encode("balances");
        public static readonly JsonEncodedText From = JsonEncodedText.Encode("from");
        public static readonly JsonEncodedText To = JsonEncodedText.Encode("to");
        public static readonly JsonEncodedText Account = JsonEncodedText.Encode("account");
        public static readonly JsonEncodedText User = JsonEncodedText.Encode("user");
        public static readonly JsonEncodedText Id = JsonEncodedText.Encode("id");
        public static readonly JsonEncodedText Kind = JsonEncodedText.Encode("kind");
        public static readonly JsonEncodedText Status = JsonEncodedText.Encode("status");
        public static readonly JsonEncodedText FromAccount = JsonEncodedText.Encode("from_account");
        public static readonly JsonEncodedText ToAccount = JsonEncodedText.Encode("to_account");
        public static readonly JsonEncodedText Amount = JsonEncodedText.Encode("amount");
        public static readonly JsonEncodedText Currency = JsonEncodedText.Encode("currency");
        public static readonly JsonEncodedText Captured = JsonEncodedText.Encode("captured");
        public static readonly JsonEncodedText Refunded = JsonEncodedText.Encode("refunded");
        public static readonly JsonEncodedText ParentId = JsonEncodedText.Encode("parent_id");
        public static readonly JsonEncodedText CreatedAt = JsonEncodedText.Encode("created_at");
        public static readonly JsonEncodedText ExpiresAt = JsonEncodedText.Encode("expires_at");
        public static readonly JsonEncodedText Description = JsonEncodedText.Encode("description");
        public static readonly JsonEncodedText WebhookUrl = JsonEncodedText.Encode("webhook_url");
        public static readonly JsonEncodedText Owner = JsonEncodedText.Encode("owner");
        public static readonly JsonEncodedText Balance = JsonEncodedText.Encode("balance");
        public static readonly JsonEncodedText Available = JsonEncodedText.Encode("available");
        public static readonly JsonEncodedText DebitsPosted = JsonEncodedText.Encode("debits_posted");
        public static readonly JsonEncodedText CreditsPosted = JsonEncodedText.Encode("credits_posted");
        public static readonly JsonEncodedText DebitsPending = JsonEncodedText.Encode("debits_pending");
        public static readonly JsonEncodedText CreditsPending = JsonEncodedText.Encode("credits_pending");
        public static readonly JsonEncodedText Frozen = JsonEncodedText.Encode("frozen");
        public static readonly JsonEncodedText Email = JsonEncodedText.Encode("email");
        public static readonly JsonEncodedText Name = JsonEncodedText.Encode("name");
        public static readonly JsonEncodedText Role = JsonEncodedText.Encode("role");
        public static readonly JsonEncodedText WalletAccount = JsonEncodedText.Encode("wallet_account");
    }
}
