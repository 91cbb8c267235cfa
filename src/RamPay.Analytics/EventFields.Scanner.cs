using System.Buffers;
using System.Buffers.Text;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;

namespace RamPay.Analytics;

public partial struct EventFields
{
    /// <summary>
    /// The fast way to read an event's fields: one forward walk over the bytes with the position in a local, names
    /// compared as raw bytes, strings passed over with a vectorized search for their end, where
    /// <see cref="Utf8JsonReader"/> makes a token of every value and keeps its state in itself for each. Our own code
    /// rather than the library's because it measured 1.7× as fast on the contract's PaymentApproved of 768 bytes
    /// (1.00 µs against 1.73, EventFieldsBenchmarks; docs/benchmarks.md, "Analytics worker: reading the fields"), and
    /// reading the fields was half of the analytics worker's CPU per event.
    /// <para>
    /// It answers only when it is sure to answer what the reader would: it checks the JSON it walks (names, values,
    /// separators, escapes, numbers, depth) and gives up, returning false, on a byte outside ASCII, an escape in a name
    /// or in a value it compares, a value shape on which the reader's reading is unusual (an object where a kind or a
    /// time should be), or anything invalid. <see cref="TryReadWithReader"/> then reads
    /// the event. A test compares the two over every event type and thousands of damaged copies of them
    /// (tests/RamPay.Rewards.Tests/EventFieldsScannerTests.cs).
    /// </para>
    /// Every method takes the position of what it reads and returns the position after it, or −1 to give up.
    /// </summary>
    internal static class Scanner
    {
        /// <summary>Deeper than the events go and well inside the reader's limit (64): deeper is left to the reader.</summary>
        private const int MaxDepth = 32;

        /// <summary>What ends a run of a string's ordinary bytes: its closing quote, an escape, or a control character (invalid in JSON).</summary>
        private static readonly SearchValues<byte> StringStops = SearchValues.Create([.. Enumerable.Range(0, 0x20).Select(b => (byte)b), (byte)'"', (byte)'\\']);

        /// <summary>Reads the fields into <paramref name="f"/> (which starts as <see cref="Empty"/>); false when it leaves the event to the reader.</summary>
        public static bool TryRead(ReadOnlySpan<byte> j, ref EventFields f, uint payloadTypes)
        {
            // The reader lets some invalid UTF-8 through in values it skips; this walk does not look, so it takes no chance.
            if (!Ascii.IsValid(j)) return false;
            int i = Space(j, 0);
            if (!At(j, i, '{')) return false;
            i = Open(j, i, out bool end);
            bool keySeen = false;
            while (!end)
            {
                i = Name(j, i, out var name);
                if (i < 0) return false;
                // The same names in the same order as the reader's loop (TryReadWithReader).
                if (name.SequenceEqual("type"u8)) i = At(j, i, '"') ? Type(j, i, ref f) : Skip(j, i, 1);
                else if (name.SequenceEqual("version"u8)) { i = Long(j, i, out long v); f.Version = (int)Math.Clamp(v, 0, int.MaxValue); }
                else if (name.SequenceEqual("sequence"u8)) i = Long(j, i, out f.Sequence);
                else if (name.SequenceEqual("index"u8)) i = Int(j, i, out f.Index);
                else if (name.SequenceEqual("ordinal"u8)) i = Int(j, i, out f.Ordinal);
                else if (name.SequenceEqual("key"u8)) { i = Long(j, i, out f.Key); keySeen = true; }
                else if (EnvelopeOnly(in f, keySeen, payloadTypes))
                {
                    f.Valid = true;
                    return true;
                }
                else if (name.SequenceEqual("payment"u8)) i = At(j, i, '{') ? Payment(j, i, ref f) : Skip(j, i, 1);
                else if (name.SequenceEqual("refund"u8)) i = At(j, i, '{') ? Refund(j, i, ref f) : Skip(j, i, 1);
                else if (name.SequenceEqual("balances"u8)) i = At(j, i, '{') ? Balances(j, i, ref f) : Skip(j, i, 1);
                else if (name.SequenceEqual("reason"u8))
                {
                    f.Reason = EventReason.None;
                    if (At(j, i, '"'))
                    {
                        i = PlainString(j, i, out var value);
                        f.Reason = ReasonOf(value);
                    }
                    else i = Skip(j, i, 1);
                }
                else i = Skip(j, i, 1);
                i = Then(j, i, out end);
                if (i < 0) return false;
            }
            f.Valid = true;
            f.PayloadRead = true;
            return true;
        }

        private static int Type(ReadOnlySpan<byte> j, int i, ref EventFields f)
        {
            i = PlainString(j, i, out var name);
            if (i >= 0 && !KnownType(name, ref f)) f.TypeName = Encoding.ASCII.GetString(name); // ASCII (checked), no escape: what GetString gives
            return i;
        }

        private static int Payment(ReadOnlySpan<byte> j, int i, ref EventFields f)
        {
            f.HasPayment = true;
            i = Open(j, i, out bool end);
            while (!end)
            {
                i = Name(j, i, out var name);
                if (i < 0) return -1;
                if (name.SequenceEqual("id"u8)) i = Long(j, i, out f.PaymentId);
                else if (name.SequenceEqual("kind"u8))
                {
                    // The reader does not skip a kind that is not a string (it reads on inside it): left to it unless a primitive.
                    f.Kind = EventPaymentKind.None;
                    if (At(j, i, '"'))
                    {
                        i = PlainString(j, i, out var value);
                        f.Kind = KindOf(value);
                    }
                    else i = Primitive(j, i);
                }
                else if (name.SequenceEqual("amount"u8)) i = Long(j, i, out f.Amount);
                else if (name.SequenceEqual("captured"u8)) i = Long(j, i, out f.Captured);
                else if (name.SequenceEqual("from_account"u8)) i = Long(j, i, out f.FromAccount);
                else if (name.SequenceEqual("to_account"u8)) i = Long(j, i, out f.ToAccount);
                else if (name.SequenceEqual("currency"u8))
                {
                    f.Currency = 0;
                    if (At(j, i, '"'))
                    {
                        int start = i;
                        i = String(j, i, out bool escaped);
                        if (i >= 0 && !escaped) f.Currency = CurrencyOf(j[(start + 1)..(i - 1)]); // the reader's answer for an escaped one is 0 too
                    }
                    else i = Primitive(j, i);
                }
                else if (name.SequenceEqual("created_at"u8)) i = Time(j, i, out f.CreatedAtMs);
                else i = Skip(j, i, 2);
                i = Then(j, i, out end);
            }
            return i;
        }

        private static int Refund(ReadOnlySpan<byte> j, int i, ref EventFields f)
        {
            f.HasRefund = true;
            i = Open(j, i, out bool end);
            while (!end)
            {
                i = Name(j, i, out var name);
                if (i < 0) return -1;
                if (name.SequenceEqual("id"u8)) i = Long(j, i, out f.RefundId);
                else if (name.SequenceEqual("amount"u8)) i = Long(j, i, out f.RefundAmount);
                else if (name.SequenceEqual("created_at"u8)) i = Time(j, i, out f.RefundCreatedAtMs);
                else i = Skip(j, i, 2);
                i = Then(j, i, out end);
            }
            return i;
        }

        private static int Balances(ReadOnlySpan<byte> j, int i, ref EventFields f)
        {
            i = Open(j, i, out bool end);
            while (!end)
            {
                i = Name(j, i, out var name);
                if (i < 0) return -1;
                bool from = name.SequenceEqual("from"u8), to = !from && name.SequenceEqual("to"u8);
                i = (from || to) && At(j, i, '{') ? Account(j, i, from, ref f) : Skip(j, i, 2);
                i = Then(j, i, out end);
            }
            return i;
        }

        /// <summary>One of the balances' accounts: only its owner is read.</summary>
        private static int Account(ReadOnlySpan<byte> j, int i, bool from, ref EventFields f)
        {
            i = Open(j, i, out bool end);
            while (!end)
            {
                i = Name(j, i, out var name);
                if (i < 0) return -1;
                if (!name.SequenceEqual("owner"u8)) i = Skip(j, i, 3);
                else if (!IsNumberStart(j, i)) i = Primitive(j, i); // the reader does not skip an owner that is not a number: left to it unless a primitive
                else
                {
                    i = Number(j, i, out var digits);
                    if (i >= 0 && Utf8Parser.TryParse(digits, out long owner, out int used) && used == digits.Length)
                    {
                        if (from) { f.HasFromOwner = true; f.FromOwner = owner; }
                        else { f.HasToOwner = true; f.ToOwner = owner; }
                    }
                }
                i = Then(j, i, out end);
            }
            return i;
        }

        // ---- values, as the reader's NextLong, NextInt and NextTime take them ----------------------------------------

        /// <summary>An integer that fits a long; 0 for another number or value (skipped), as <see cref="Utf8JsonReader.TryGetInt64(out long)"/> answers.</summary>
        private static int Long(ReadOnlySpan<byte> j, int i, out long value)
        {
            value = 0;
            if (!IsNumberStart(j, i)) return Skip(j, i, 2);
            i = Number(j, i, out var digits);
            if (i >= 0 && !(Utf8Parser.TryParse(digits, out value, out int used) && used == digits.Length)) value = 0;
            return i;
        }

        /// <summary>A non-negative integer that fits an int; −1 for anything else.</summary>
        private static int Int(ReadOnlySpan<byte> j, int i, out int value)
        {
            value = -1;
            if (!IsNumberStart(j, i)) return Skip(j, i, 2);
            i = Number(j, i, out var digits);
            if (i >= 0 && Utf8Parser.TryParse(digits, out int v, out int used) && used == digits.Length && v >= 0) value = v;
            return i;
        }

        /// <summary>An ISO 8601 time in unix ms, by the reader's own parser over the one string; <see cref="long.MinValue"/> for another string or a primitive.</summary>
        private static int Time(ReadOnlySpan<byte> j, int i, out long unixMs)
        {
            unixMs = long.MinValue;
            if (!At(j, i, '"')) return Primitive(j, i); // the reader does not skip a time that is not a string: an object or array is left to it
            int start = i;
            i = PlainString(j, i, out var text);
            if (i < 0) return -1;
            if (TryUtcMs(text, out unixMs)) return i;
            var one = new Utf8JsonReader(j[start..i]);
            if (one.Read() && one.TryGetDateTimeOffset(out var t)) unixMs = t.ToUnixTimeMilliseconds();
            return i;
        }

        /// <summary>
        /// The one shape the encoder writes, <c>yyyy-MM-ddTHH:mm:ss.fffZ</c>, with every part in its range, read directly (a
        /// tenth of the reader's parse); any other text is left to the reader's parser, which reads this shape the same.
        /// </summary>
        private static bool TryUtcMs(ReadOnlySpan<byte> t, out long unixMs)
        {
            unixMs = long.MinValue;
            if (t.Length != 24 || t[4] != '-' || t[7] != '-' || t[10] != 'T' || t[13] != ':' || t[16] != ':' || t[19] != '.' || t[23] != 'Z') return false;
            int year = Part(t, 0, 4), month = Part(t, 5, 2), day = Part(t, 8, 2), hour = Part(t, 11, 2), minute = Part(t, 14, 2), second = Part(t, 17, 2), ms = Part(t, 20, 3);
            if ((year | month | day | hour | minute | second | ms) < 0) return false; // a part that is not all digits
            if (year < 1 || month is < 1 or > 12 || day < 1 || day > DateTime.DaysInMonth(year, month) || hour > 23 || minute > 59 || second > 59) return false;
            unixMs = new DateTimeOffset(year, month, day, hour, minute, second, ms, TimeSpan.Zero).ToUnixTimeMilliseconds();
            return true;

            // Digits as a number; negative when one is not a digit.
            static int Part(ReadOnlySpan<byte> t, int at, int length)
            {
                int v = 0;
                for (int k = at; k < at + length; k++)
                {
                    int d = t[k] - '0';
                    if ((uint)d > 9) return int.MinValue;
                    v = v * 10 + d;
                }
                return v;
            }
        }

        // ---- the JSON walk -----------------------------------------------------------------------------------------

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static bool At(ReadOnlySpan<byte> j, int i, char c) => (uint)i < (uint)j.Length && j[i] == c;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static bool IsNumberStart(ReadOnlySpan<byte> j, int i) => (uint)i < (uint)j.Length && (j[i] == '-' || (uint)(j[i] - '0') <= 9);

        /// <summary>Past JSON's spaces (the encoder writes none, so the first test ends it).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static int Space(ReadOnlySpan<byte> j, int i)
        {
            while ((uint)i < (uint)j.Length && j[i] <= ' ' && j[i] is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t') i++;
            return i;
        }

        /// <summary>At an object's '{': the position of its first name, or past its '}' when it is empty (<paramref name="end"/>).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static int Open(ReadOnlySpan<byte> j, int i, out bool end)
        {
            i = Space(j, i + 1);
            end = At(j, i, '}');
            return end ? i + 1 : i;
        }

        /// <summary>After a member's value (or −1): the position of the next name, or past the object's '}' (<paramref name="end"/>); −1 for anything else.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static int Then(ReadOnlySpan<byte> j, int i, out bool end)
        {
            end = true; // a give-up ends the caller's loop too
            if (i < 0) return -1;
            i = Space(j, i);
            if ((uint)i >= (uint)j.Length) return -1;
            if (j[i] == '}') return i + 1;
            if (j[i] != ',') return -1;
            end = false;
            return Space(j, i + 1);
        }

        /// <summary>At a member: the position of its value (past the ':'), its name's bytes in <paramref name="name"/>; −1 for an escaped name (the reader compares those).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static int Name(ReadOnlySpan<byte> j, int i, out ReadOnlySpan<byte> name)
        {
            name = default;
            if (!At(j, i, '"')) return -1;
            int end = PlainString(j, i, out name);
            if (end < 0) return -1;
            i = Space(j, end);
            return At(j, i, ':') ? Space(j, i + 1) : -1;
        }

        /// <summary>A string without escapes: past its closing quote, its bytes in <paramref name="value"/>; −1 for an escaped or invalid one.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static int PlainString(ReadOnlySpan<byte> j, int i, out ReadOnlySpan<byte> value)
        {
            value = default;
            int end = String(j, i, out bool escaped);
            if (end < 0 || escaped) return -1;
            value = j[(i + 1)..(end - 1)];
            return end;
        }

        /// <summary>At a string's opening quote: past its closing quote (<paramref name="escaped"/> when it holds an escape); −1 when it is not valid JSON.</summary>
        private static int String(ReadOnlySpan<byte> j, int i, out bool escaped)
        {
            escaped = false;
            i++;
            while (true)
            {
                int stop = j[i..].IndexOfAny(StringStops);
                if (stop < 0) return -1;
                i += stop;
                if (j[i] == '"') return i + 1;
                if (j[i] != '\\' || i + 1 >= j.Length) return -1; // a control character
                escaped = true;
                byte e = j[i + 1];
                if (e is (byte)'"' or (byte)'\\' or (byte)'/' or (byte)'b' or (byte)'f' or (byte)'n' or (byte)'r' or (byte)'t') i += 2;
                else if (e == 'u' && i + 6 <= j.Length && char.IsAsciiHexDigit((char)j[i + 2]) && char.IsAsciiHexDigit((char)j[i + 3])
                         && char.IsAsciiHexDigit((char)j[i + 4]) && char.IsAsciiHexDigit((char)j[i + 5])) i += 6;
                else return -1;
            }
        }

        /// <summary>A number by JSON's grammar (−, integer, fraction, exponent), its bytes in <paramref name="number"/>. What follows it is checked by <see cref="Then"/>.</summary>
        private static int Number(ReadOnlySpan<byte> j, int i, out ReadOnlySpan<byte> number)
        {
            number = default;
            int start = i;
            if (At(j, i, '-')) i++;
            if (At(j, i, '0')) i++;
            else if ((i = Digits(j, i)) < 0) return -1;
            if (At(j, i, '.') && (i = Digits(j, i + 1)) < 0) return -1;
            if (At(j, i, 'e') || At(j, i, 'E'))
            {
                i++;
                if (At(j, i, '+') || At(j, i, '-')) i++;
                if ((i = Digits(j, i)) < 0) return -1;
            }
            number = j[start..i];
            return i;
        }

        /// <summary>One or more digits: past them; −1 when there is none.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static int Digits(ReadOnlySpan<byte> j, int i)
        {
            int start = i;
            while ((uint)i < (uint)j.Length && (uint)(j[i] - '0') <= 9) i++;
            return i > start ? i : -1;
        }

        /// <summary>A string, number, true, false or null (not an object or array).</summary>
        private static int Primitive(ReadOnlySpan<byte> j, int i)
        {
            if ((uint)i >= (uint)j.Length) return -1;
            byte b = j[i];
            if (b == '"') return String(j, i, out _);
            if (b == '-' || (uint)(b - '0') <= 9) return Number(j, i, out _);
            var rest = j[i..];
            return rest.StartsWith("true"u8) || rest.StartsWith("null"u8) ? i + 4 : rest.StartsWith("false"u8) ? i + 5 : -1;
        }

        /// <summary>Any value, checked and passed over.</summary>
        private static int Skip(ReadOnlySpan<byte> j, int i, int depth)
        {
            if (At(j, i, '[')) return SkipArray(j, i, depth);
            if (!At(j, i, '{')) return Primitive(j, i);
            if (depth > MaxDepth) return -1;
            i = Open(j, i, out bool end);
            while (!end)
            {
                i = Name(j, i, out _);
                if (i < 0) return -1;
                i = Then(j, Skip(j, i, depth + 1), out end);
            }
            return i;
        }

        private static int SkipArray(ReadOnlySpan<byte> j, int i, int depth)
        {
            if (depth > MaxDepth) return -1;
            i = Space(j, i + 1);
            if (At(j, i, ']')) return i + 1;
            while (true)
            {
                i = Skip(j, i, depth + 1);
                if (i < 0) return -1;
                i = Space(j, i);
                if (At(j, i, ']')) return i + 1;
                if (!At(j, i, ',')) return -1;
                i = Space(j, i + 1);
            }
        }
    }
}
