using System.Text.Json;
using RamPay.Core;
using RamPay.Events;

namespace RamPay.Analytics;

/// <summary>The payment kinds an event's <c>payment.kind</c> names (docs/events.md), as the consumers tell them apart.</summary>
public enum EventPaymentKind : byte
{
    None = 0,
    Transfer, Deposit, Authorization, Refund, Reward, RewardReversal,
    Other,
}

/// <summary>The <c>reason</c> of an event, as the consumers tell them apart.</summary>
public enum EventReason : byte
{
    None = 0,
    Expired, ReviewRejected, HeldForReview, FraudSuspected,
    Other,
}

/// <summary>
/// The few fields of an event's JSON that the analytics and rewards consumers read, in one forward pass of a
/// <see cref="Utf8JsonReader"/> over the bytes: no <see cref="JsonDocument"/>, no strings, nothing allocated. (A
/// JsonDocument per event was most of both consumers' cost.) Fields an event does not have keep their defaults and their
/// <c>Has...</c> flag false; fields and types this reader does not know are skipped (docs/events.md, "Versioning").
/// The same pass reads the envelope (<c>type</c>, <c>version</c>, <c>sequence</c>, <c>index</c>, <c>ordinal</c>,
/// <c>key</c>), so that the Kafka worker decodes a message and reads its fields in one pass, not two
/// (docs/benchmarks.md, "Rewards and analytics workers, round 4").
/// </summary>
public partial struct EventFields
{
    /// <summary>True when <see cref="TryRead(ReadOnlySpan{byte}, out EventFields)"/> read the bytes as a JSON object.</summary>
    public bool Valid;
    /// <summary>True when the payload's fields were read too (false for a type left out of <c>payloadTypes</c>: only the envelope is known).</summary>
    public bool PayloadRead;
    /// <summary>The envelope's <c>type</c> (0 for a type this reader does not know: then <see cref="TypeName"/> still names it).</summary>
    public EventType Type;
    /// <summary>The envelope's <c>type</c> as a string: for a known type the one constant string of <see cref="EventTypes.Name"/> (nothing allocated), else read from the bytes; null when absent.</summary>
    public string? TypeName;
    public int Version;
    public long Sequence, Key;
    /// <summary>The envelope's <c>index</c> and <c>ordinal</c>; −1 when absent.</summary>
    public int Index, Ordinal;
    public bool HasPayment;
    public long PaymentId, Amount, Captured, FromAccount, ToAccount;
    public ushort Currency;
    public EventPaymentKind Kind;
    /// <summary><c>payment.created_at</c> in unix ms, or <see cref="long.MinValue"/> when absent or not a time.</summary>
    public long CreatedAtMs;
    public bool HasRefund;
    public long RefundId, RefundAmount;
    public long RefundCreatedAtMs;
    public EventReason Reason;
    public bool HasFromOwner, HasToOwner;
    public long FromOwner, ToOwner;

    /// <summary>Every type's payload fields (<see cref="TryRead(ReadOnlySpan{byte}, out EventFields, uint)"/>'s default).</summary>
    public const uint AllTypes = uint.MaxValue;

    /// <summary>The bit of a type in a <c>payloadTypes</c> mask.</summary>
    public static uint Bit(EventType type) => 1u << (int)type;

    /// <summary>Reads the fields; false when the bytes are not a JSON object (then nothing is known).</summary>
    public static bool TryRead(ReadOnlySpan<byte> json, out EventFields fields) => TryRead(json, out fields, AllTypes);

    /// <summary>
    /// Reads the envelope, and the payload's fields only for the types in <paramref name="payloadTypes"/> (bits of
    /// <see cref="Bit"/>): a consumer that acts on a few types (rewards: 3 of 13) stops reading the others' bytes once
    /// the envelope is read (<see cref="PayloadRead"/> false for them). False when the bytes are not a JSON object.
    /// </summary>
    public static bool TryRead(ReadOnlySpan<byte> json, out EventFields fields, uint payloadTypes)
    {
        // The scanner reads an ordinary event in 0.57 of the reader's time; anything it is not sure of (an escape in a
        // name it compares, a byte outside ASCII, invalid JSON...) it leaves to the reader, which decides.
        fields = Empty;
        return Scanner.TryRead(json, ref fields, payloadTypes) || TryReadWithReader(json, out fields, payloadTypes);
    }

    /// <summary>A reading's starting point: absent times, index and ordinal −1.</summary>
    internal static readonly EventFields Empty = new() { CreatedAtMs = long.MinValue, RefundCreatedAtMs = long.MinValue, Index = -1, Ordinal = -1 };

    /// <summary>The rule both ways of reading stop on: a consumer that does not want this type's payload stops once the envelope is whole (the encoder writes it first).</summary>
    private static bool EnvelopeOnly(in EventFields f, bool keySeen, uint payloadTypes) =>
        payloadTypes != AllTypes && keySeen && f.Type != 0 && f.Index >= 0 && f.Ordinal >= 0 && f.Sequence > 0 && (payloadTypes & Bit(f.Type)) == 0;

    /// <summary>
    /// The reference reading, with <see cref="Utf8JsonReader"/>: every input the <see cref="Scanner"/> gives up on. Its
    /// results define the fields (tests/RamPay.Rewards.Tests/EventFieldsScannerTests.cs checks the scanner against it).
    /// </summary>
    internal static bool TryReadWithReader(ReadOnlySpan<byte> json, out EventFields fields, uint payloadTypes)
    {
        fields = Empty;
        try
        {
            var r = new Utf8JsonReader(json);
            if (!r.Read() || r.TokenType != JsonTokenType.StartObject) return false;
            bool keySeen = false;
            while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
            {
                // The envelope first, in the order the encoder writes it (docs/events.md), then the payload's objects.
                if (r.ValueTextEquals("type"u8)) { r.Read(); if (r.TokenType == JsonTokenType.String) TypeOf(ref r, ref fields); else r.Skip(); }
                else if (r.ValueTextEquals("version"u8)) fields.Version = (int)Math.Clamp(NextLong(ref r), 0, int.MaxValue);
                else if (r.ValueTextEquals("sequence"u8)) fields.Sequence = NextLong(ref r);
                else if (r.ValueTextEquals("index"u8)) fields.Index = NextInt(ref r);
                else if (r.ValueTextEquals("ordinal"u8)) fields.Ordinal = NextInt(ref r);
                else if (r.ValueTextEquals("key"u8)) { fields.Key = NextLong(ref r); keySeen = true; }
                else if (EnvelopeOnly(in fields, keySeen, payloadTypes))
                {
                    fields.Valid = true; // the envelope is whole (the encoder writes it first) and the payload is not wanted
                    return true;
                }
                else if (r.ValueTextEquals("payment"u8)) { r.Read(); if (r.TokenType == JsonTokenType.StartObject) ReadPayment(ref r, ref fields); else r.Skip(); }
                else if (r.ValueTextEquals("refund"u8)) { r.Read(); if (r.TokenType == JsonTokenType.StartObject) ReadRefund(ref r, ref fields); else r.Skip(); }
                else if (r.ValueTextEquals("balances"u8)) { r.Read(); if (r.TokenType == JsonTokenType.StartObject) ReadBalances(ref r, ref fields); else r.Skip(); }
                else if (r.ValueTextEquals("reason"u8)) { r.Read(); fields.Reason = r.TokenType == JsonTokenType.String ? ReasonOf(ref r) : EventReason.None; r.Skip(); }
                else { r.Read(); r.Skip(); }
            }
            fields.Valid = true;
            fields.PayloadRead = true;
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
        catch (InvalidOperationException)
        {
            return false; // an unknown type's name that is not valid UTF-8 (GetString refuses it; found by EventFieldsScannerTests)
        }
    }

    private static void ReadPayment(ref Utf8JsonReader r, ref EventFields f)
    {
        f.HasPayment = true;
        while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
        {
            if (r.ValueTextEquals("id"u8)) f.PaymentId = NextLong(ref r);
            else if (r.ValueTextEquals("kind"u8)) { r.Read(); f.Kind = r.TokenType == JsonTokenType.String ? KindOf(ref r) : EventPaymentKind.None; }
            else if (r.ValueTextEquals("amount"u8)) f.Amount = NextLong(ref r);
            else if (r.ValueTextEquals("captured"u8)) f.Captured = NextLong(ref r);
            else if (r.ValueTextEquals("from_account"u8)) f.FromAccount = NextLong(ref r);
            else if (r.ValueTextEquals("to_account"u8)) f.ToAccount = NextLong(ref r);
            else if (r.ValueTextEquals("currency"u8)) { r.Read(); f.Currency = r.TokenType == JsonTokenType.String && !r.ValueIsEscaped ? CurrencyOf(r.ValueSpan) : (ushort)0; }
            else if (r.ValueTextEquals("created_at"u8)) f.CreatedAtMs = NextTime(ref r);
            else { r.Read(); r.Skip(); }
        }
    }

    private static void ReadRefund(ref Utf8JsonReader r, ref EventFields f)
    {
        f.HasRefund = true;
        while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
        {
            if (r.ValueTextEquals("id"u8)) f.RefundId = NextLong(ref r);
            else if (r.ValueTextEquals("amount"u8)) f.RefundAmount = NextLong(ref r);
            else if (r.ValueTextEquals("created_at"u8)) f.RefundCreatedAtMs = NextTime(ref r);
            else { r.Read(); r.Skip(); }
        }
    }

    private static void ReadBalances(ref Utf8JsonReader r, ref EventFields f)
    {
        while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
        {
            bool from = r.ValueTextEquals("from"u8), to = !from && r.ValueTextEquals("to"u8);
            r.Read();
            if (!(from || to) || r.TokenType != JsonTokenType.StartObject) { r.Skip(); continue; }
            while (r.Read() && r.TokenType == JsonTokenType.PropertyName)
            {
                if (!r.ValueTextEquals("owner"u8)) { r.Read(); r.Skip(); continue; }
                r.Read();
                if (r.TokenType != JsonTokenType.Number || !r.TryGetInt64(out long owner)) continue;
                if (from) { f.HasFromOwner = true; f.FromOwner = owner; }
                else { f.HasToOwner = true; f.ToOwner = owner; }
            }
        }
    }

    /// <summary>The next value as a non-negative int: −1 when it is not one.</summary>
    private static int NextInt(ref Utf8JsonReader r)
    {
        r.Read();
        if (r.TokenType == JsonTokenType.Number && r.TryGetInt32(out int v) && v >= 0) return v;
        r.Skip();
        return -1;
    }

    /// <summary>The known types by their bytes (the string kept is <see cref="EventTypes.Name"/>'s constant); another type's name is read as a string.</summary>
    private static void TypeOf(ref Utf8JsonReader r, ref EventFields f)
    {
        Span<byte> buffer = stackalloc byte[NameBytes];
        if (!KnownType(Unescaped(in r, buffer), ref f)) f.TypeName = r.GetString();
    }

    private static EventPaymentKind KindOf(ref Utf8JsonReader r)
    {
        Span<byte> buffer = stackalloc byte[NameBytes];
        return KindOf(Unescaped(in r, buffer));
    }

    private static EventReason ReasonOf(ref Utf8JsonReader r)
    {
        Span<byte> buffer = stackalloc byte[NameBytes];
        return ReasonOf(Unescaped(in r, buffer));
    }

    /// <summary>Sets the type when <paramref name="name"/> (unescaped) is a known type's name.</summary>
    private static bool KnownType(ReadOnlySpan<byte> name, ref EventFields f)
    {
        foreach (var t in KnownTypes)
        {
            if (name.SequenceEqual(t.Utf8))
            {
                f.Type = t.Type;
                f.TypeName = t.Name;
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// Room for any name compared (types, kinds, reasons: 17 bytes at most) written with every character escaped as
    /// <c>\uXXXX</c> (6 bytes each): a longer escaped value unescapes to more than 17 bytes, so it is none of them.
    /// </summary>
    private const int NameBytes = 128;

    /// <summary>
    /// The reader's string value unescaped into <paramref name="buffer"/> (or its own bytes when it has no escape). A
    /// value too long for the buffer is returned as it stands: escaped, it matches no name.
    /// </summary>
    private static ReadOnlySpan<byte> Unescaped(in Utf8JsonReader r, Span<byte> buffer) =>
        r.ValueIsEscaped && r.ValueSpan.Length <= buffer.Length ? buffer[..r.CopyString(buffer)] : r.ValueSpan;

    private static readonly (EventType Type, string Name, byte[] Utf8)[] KnownTypes =
        [.. EventTypes.All.Select(t => (t, EventTypes.Name(t), System.Text.Encoding.ASCII.GetBytes(EventTypes.Name(t))))];

    /// <summary>The next value as a long: 0 when it is not an integer (a null, a string...).</summary>
    private static long NextLong(ref Utf8JsonReader r)
    {
        r.Read();
        if (r.TokenType == JsonTokenType.Number && r.TryGetInt64(out long v)) return v;
        r.Skip();
        return 0;
    }

    private static long NextTime(ref Utf8JsonReader r)
    {
        r.Read();
        return r.TokenType == JsonTokenType.String && r.TryGetDateTimeOffset(out var t) ? t.ToUnixTimeMilliseconds() : long.MinValue;
    }

    /// <summary>A currency's code from its unescaped string's bytes; 0 when they are not a known 3-letter code.</summary>
    private static ushort CurrencyOf(ReadOnlySpan<byte> value)
    {
        Span<char> chars = stackalloc char[3];
        if (value.Length != 3) return 0;
        for (int i = 0; i < 3; i++) chars[i] = (char)value[i];
        return Core.Currency.TryParse(chars, out var c) ? c.Code : (ushort)0;
    }

    private static EventPaymentKind KindOf(ReadOnlySpan<byte> value) =>
        value.SequenceEqual("transfer"u8) ? EventPaymentKind.Transfer
        : value.SequenceEqual("deposit"u8) ? EventPaymentKind.Deposit
        : value.SequenceEqual("authorization"u8) ? EventPaymentKind.Authorization
        : value.SequenceEqual("refund"u8) ? EventPaymentKind.Refund
        : value.SequenceEqual("reward"u8) ? EventPaymentKind.Reward
        : value.SequenceEqual("reward_reversal"u8) ? EventPaymentKind.RewardReversal
        : EventPaymentKind.Other;

    private static EventReason ReasonOf(ReadOnlySpan<byte> value) =>
        value.SequenceEqual("expired"u8) ? EventReason.Expired
        : value.SequenceEqual("review_rejected"u8) ? EventReason.ReviewRejected
        : value.SequenceEqual("held_for_review"u8) ? EventReason.HeldForReview
        : value.SequenceEqual("fraud_suspected"u8) ? EventReason.FraudSuspected
        : EventReason.Other;
}
