using System.Buffers.Text;
using System.Text;
using RamPay.Core;
using RamPay.Sinks;

namespace RamPay.Events;

/// <summary>
/// Writes an event's payload: compact UTF-8 JSON (docs/events.md has every field) into one reused buffer
/// (<see cref="JsonBuffer"/>), field by field, with no reflection and no intermediate objects. One thread.
/// </summary>
public sealed class EventEncoder
{
    private static readonly byte[][] TypeNames = BuildTypeNames();
    private readonly JsonBuffer _json = new();

    /// <summary>The payload of <paramref name="e"/>, one of <paramref name="change"/>'s events. Valid until the next call.</summary>
    public ReadOnlySpan<byte> Encode(in Change change, in MappedEvent e)
    {
        JsonBuffer j = _json;
        j.Clear();
        Span<byte> id = stackalloc byte[64];
        j.Raw("{\"event_id\":"u8);
        j.Plain(id[..FormatEventId(change.Sequence, change.Index, e.Ordinal, id)]);
        j.Raw(",\"type\":"u8);
        j.Plain(TypeNames[(int)e.Type]);
        j.Raw(",\"version\":"u8);
        j.Number(EventTypes.SchemaVersion(e.Type));
        j.Raw(",\"sequence\":"u8);
        j.Number(change.Sequence);
        j.Raw(",\"index\":"u8);
        j.Number(change.Index);
        j.Raw(",\"ordinal\":"u8);
        j.Number(e.Ordinal);
        j.Raw(",\"occurred_at\":"u8);
        j.Time(change.TimestampMs);
        j.Raw(",\"key\":"u8);
        j.Number(e.KeyAccount);
        // Who acted: the command's client (a user id, or a system client id); an expiry has no client.
        j.Raw(",\"client_id\":"u8);
        if (change.Kind == ChangeKind.Command) j.Number(change.Command.ClientId);
        else j.Raw("null"u8);
        if (e.Reason is not null)
        {
            j.Raw(",\"reason\":"u8);
            j.Text(e.Reason);
        }

        switch (e.Type)
        {
            case EventType.PaymentFailed when change.Payment.Id == 0:
            case EventType.AnomalyDetected when change.Payment.Id == 0:
                j.Raw(",\"payment\":"u8);
                WriteAttempt(j, change.Command);
                break;
            case EventType.PaymentCreated:
            case EventType.PaymentApproved:
            case EventType.PaymentFailed:
            case EventType.PaymentAuthorized:
            case EventType.PaymentCaptured:
            case EventType.PaymentVoided:
            case EventType.AnomalyDetected:
                j.Raw(",\"payment\":"u8);
                WritePayment(j, change.Payment, change.Note);
                WriteBalances(j, change);
                break;
            case EventType.PaymentRefunded:
                j.Raw(",\"payment\":"u8);
                WritePayment(j, change.Parent, null);
                j.Raw(",\"refund\":"u8);
                WritePayment(j, change.Payment, null);
                WriteBalances(j, change);
                break;
            case EventType.AccountFrozen:
            case EventType.AccountUnfrozen:
                j.Raw(",\"account\":"u8);
                WriteAccount(j, change.From);
                break;
            case EventType.UserRegistered:
                WriteUser(j, change);
                break;
            case EventType.RewardIssued:
            case EventType.RewardReversed:
                WriteReward(j, change);
                break;
            default:
                Invariant.Fail($"no payload for event type {e.Type}");
                break;
        }
        j.Raw("}"u8);
        return j.Written;
    }

    /// <summary>The message key of <paramref name="e"/>: its account id in decimal ASCII (what any consumer reads as is).</summary>
    public static byte[] Key(in MappedEvent e)
    {
        Span<byte> digits = stackalloc byte[20];
        bool ok = Utf8Formatter.TryFormat(e.KeyAccount, digits, out int written);
        Invariant.Check(ok, "a long fits in 20 digits");
        return digits[..written].ToArray();
    }

    /// <summary>A payment as it is after the change.</summary>
    private static void WritePayment(JsonBuffer j, in Payment p, PaymentNote? note)
    {
        j.Raw("{\"id\":"u8);
        j.Number(p.Id);
        j.Raw(",\"kind\":"u8);
        j.Plain(KindName(p.Kind));
        j.Raw(",\"status\":"u8);
        j.Plain(StatusName(p.Status));
        j.Raw(",\"from_account\":"u8);
        j.Number(p.FromAccount);
        j.Raw(",\"to_account\":"u8);
        j.Number(p.ToAccount);
        j.Raw(",\"amount\":"u8);
        j.Number(p.Amount);
        WriteCurrency(j, p.Currency);
        j.Raw(",\"captured\":"u8);
        j.Number(p.Captured);
        j.Raw(",\"refunded\":"u8);
        j.Number(p.Refunded);
        j.Raw(",\"parent_id\":"u8);
        if (p.ParentId != 0) j.Number(p.ParentId);
        else j.Raw("null"u8);
        j.Raw(",\"created_at\":"u8);
        j.Time(p.CreatedAtMs);
        j.Raw(",\"expires_at\":"u8);
        if (p.Kind == PaymentKind.Authorization) j.Time(p.ExpiresAtMs);
        else j.Raw("null"u8);
        j.Raw(",\"description\":"u8);
        if (note?.Description is { } description) j.Text(description);
        else j.Raw("null"u8);
        j.Raw(",\"webhook_url\":"u8);
        if (note?.WebhookUrl is { } url) j.Text(url);
        else j.Raw("null"u8);
        j.Raw("}"u8);
    }

    /// <summary>A payment attempt the ledger refused: no payment exists, so what the command asked for, with status <c>failed</c>.</summary>
    private static void WriteAttempt(JsonBuffer j, in Command c)
    {
        j.Raw("{\"id\":null,\"kind\":"u8);
        j.Plain(c.Type switch
        {
            CommandType.Deposit => KindName(PaymentKind.Deposit),
            CommandType.Authorize => KindName(PaymentKind.Authorization),
            _ => KindName(PaymentKind.Transfer),
        });
        j.Raw(",\"status\":\"failed\",\"from_account\":"u8);
        j.Number(c.FromAccount);
        j.Raw(",\"to_account\":"u8);
        j.Number(c.ToAccount);
        j.Raw(",\"amount\":"u8);
        j.Number(c.Amount);
        WriteCurrency(j, c.Currency);
        j.Raw(",\"captured\":0,\"refunded\":0,\"parent_id\":null,\"created_at\":null,\"expires_at\":null,\"description\":null,\"webhook_url\":null}"u8);
    }

    /// <summary>Both accounts a payment moved money between, after the change.</summary>
    private static void WriteBalances(JsonBuffer j, in Change change)
    {
        j.Raw(",\"balances\":{\"from\":"u8);
        if (change.From.Id != 0) WriteAccount(j, change.From);
        else j.Raw("null"u8);
        j.Raw(",\"to\":"u8);
        if (change.To.Id != 0) WriteAccount(j, change.To);
        else j.Raw("null"u8);
        j.Raw("}"u8);
    }

    private static void WriteAccount(JsonBuffer j, in Account a)
    {
        j.Raw("{\"id\":"u8);
        j.Number(a.Id);
        j.Raw(",\"owner\":"u8);
        j.Number(a.Owner);
        WriteCurrency(j, a.Currency);
        j.Raw(",\"balance\":"u8);
        j.Number(a.Posted);
        j.Raw(",\"available\":"u8);
        j.Number(a.Available);
        j.Raw(",\"debits_posted\":"u8);
        j.Number(a.DebitsPosted);
        j.Raw(",\"credits_posted\":"u8);
        j.Number(a.CreditsPosted);
        j.Raw(",\"debits_pending\":"u8);
        j.Number(a.DebitsPending);
        j.Raw(",\"credits_pending\":"u8);
        j.Number(a.CreditsPending);
        j.Raw(",\"frozen\":"u8);
        j.Boolean(a.Frozen);
        j.Raw("}"u8);
    }

    /// <summary>The new user, never their password hash, and their wallet.</summary>
    private static void WriteUser(JsonBuffer j, in Change change)
    {
        var user = change.User;
        Invariant.Check(user is not null, "a UserRegistered change carries its user");
        j.Raw(",\"user\":{\"id\":"u8);
        j.Number(user.Id);
        j.Raw(",\"email\":"u8);
        j.Text(user.Email);
        j.Raw(",\"name\":"u8);
        j.Text(user.Name);
        j.Raw(",\"role\":"u8);
        j.Plain(user.Role == UserRole.Admin ? "admin"u8 : "user"u8);
        j.Raw(",\"wallet_account\":"u8);
        j.Number(user.WalletAccountId);
        j.Raw(",\"created_at\":"u8);
        j.Time(user.CreatedAtMs);
        j.Raw("},\"account\":"u8);
        WriteAccount(j, change.From);
    }

    /// <summary>
    /// A reward's event: the reward (id, rule, source payment), the payment that moved the cashback (kind <c>reward</c> or
    /// <c>reward_reversal</c>, parent_id = the source payment), the source payment after the change, and both balances.
    /// </summary>
    private static void WriteReward(JsonBuffer j, in Change change)
    {
        bool issued = change.Command.Type == CommandType.IssueReward;
        j.Raw(",\"reward\":{\"id\":"u8);
        j.Number(issued ? change.Result.Id : change.Result.SecondaryId);
        j.Raw(",\"rule_id\":"u8);
        j.Number(change.Command.Argument);
        j.Raw(",\"source_payment_id\":"u8);
        j.Number(change.Command.PaymentId);
        j.Raw(",\"amount\":"u8);
        j.Number(change.Payment.Amount);
        j.Raw("},\"payment\":"u8);
        WritePayment(j, change.Payment, null);
        j.Raw(",\"source_payment\":"u8);
        WritePayment(j, change.Parent, null);
        WriteBalances(j, change);
    }

    private static void WriteCurrency(JsonBuffer j, Currency currency)
    {
        j.Raw(",\"currency\":"u8);
        if (!currency.IsValid)
        {
            if (currency.IsNone) j.Raw("null"u8);
            else j.Text(currency.ToString());
            return;
        }
        Span<byte> code = stackalloc byte[3];
        int v = currency.Code - 1;
        code[2] = (byte)('A' + v % 26); v /= 26;
        code[1] = (byte)('A' + v % 26); v /= 26;
        code[0] = (byte)('A' + v);
        j.Plain(code);
    }

    private static byte[][] BuildTypeNames()
    {
        var names = new byte[(int)EventTypes.All.Max() + 1][];
        foreach (EventType type in EventTypes.All) names[(int)type] = Encoding.ASCII.GetBytes(EventTypes.Name(type));
        return names;
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

    // The names of PaymentNames (one list for the API, the rows and the events), as UTF-8, by enum value.
    private static readonly byte[][] KindNames = Utf8Names<PaymentKind>(PaymentNames.Kind);
    private static readonly byte[][] StatusNames = Utf8Names<PaymentStatus>(PaymentNames.Status);

    private static byte[][] Utf8Names<T>(Func<T, string> name) where T : struct, Enum
    {
        var names = new byte[256][];
        for (int v = 0; v < names.Length; v++)
        {
            var value = (T)Enum.ToObject(typeof(T), v);
            names[v] = System.Text.Encoding.UTF8.GetBytes(Enum.IsDefined(value) ? name(value) : "unknown");
        }
        return names;
    }

    private static ReadOnlySpan<byte> KindName(PaymentKind kind) => KindNames[(byte)kind];

    internal static ReadOnlySpan<byte> StatusName(PaymentStatus status) => StatusNames[(byte)status];
}
