using System.Reflection;
using System.Text;
using System.Text.Json;
using RamPay.Analytics;
using RamPay.Events;
using RamPay.Kafka.Tests;

namespace RamPay.Rewards.Tests;

/// <summary>
/// The fast reading of an event's fields (<see cref="EventFields.Scanner"/>) against the reference reading with
/// <see cref="Utf8JsonReader"/> (<see cref="EventFields.TryReadWithReader"/>): where the scanner answers, it answers the
/// same fields; where it is not sure it gives up and the reader decides. Checked over every event type from real
/// commands, as the encoder writes them, and over thousands of damaged copies of them (seeded: a failure repeats).
/// </summary>
public sealed class EventFieldsScannerTests
{
    /// <summary>The masks the consumers read with: everything (analytics), the rewards consumer's three types, the envelope only.</summary>
    private static readonly uint[] Masks = [EventFields.AllTypes, RewardsConsumer.FieldTypes, 0];

    private static readonly Lazy<List<byte[]>> Corpus = new(() =>
    {
        var encoder = new EventEncoder();
        var events = LedgerChanges.Events(LedgerChanges.Run(Scenario.Commands()))
            .Concat(LedgerChanges.Events(LedgerChanges.Run(Scenario.RewardCommands())));
        var list = events.Select(e => encoder.Encode(e.Change, e.Event).ToArray()).ToList();
        // AnomalyDetected comes of a fraud check the scenarios do not run: the contract's shape, by hand.
        list.Add("""{"event_id":"30-0-0","type":"AnomalyDetected","version":1,"sequence":30,"index":0,"ordinal":0,"occurred_at":"2023-11-14T22:13:20.210Z","key":2,"client_id":1,"reason":"held_for_review","payment":{"id":12,"kind":"transfer","status":"held_for_review","from_account":2,"to_account":3,"amount":90000,"currency":"USD","captured":0,"refunded":0,"parent_id":null,"created_at":"2023-11-14T22:13:20.210Z","expires_at":null,"description":null,"webhook_url":null}}"""u8.ToArray());
        return list;
    });

    [Fact]
    public void The_scanner_reads_every_event_type_as_the_encoder_writes_it_exactly_as_the_reader_does()
    {
        var types = new HashSet<EventType>();
        foreach (byte[] json in Corpus.Value)
        {
            bool ascii = System.Text.Ascii.IsValid(json); // a user's name may not be: that event is the reader's
            foreach (uint mask in Masks)
            {
                var fast = Start();
                bool answered = EventFields.Scanner.TryRead(json, ref fast, mask);
                Assert.True(answered == ascii, $"the scanner {(answered ? "answered" : "gave up")} on {Text(json)} (mask {mask:x})");
                Assert.True(EventFields.TryReadWithReader(json, out var expected, mask));
                if (answered) Assert.Equal(Describe(expected), Describe(fast));
                Assert.True(EventFields.TryRead(json, out var combined, mask));
                Assert.Equal(Describe(expected), Describe(combined));
            }
            Assert.True(EventFields.TryRead(json, out var f));
            types.Add(f.Type);
        }
        Assert.Equal(EventTypes.All.Order(), types.Order()); // every type of docs/events.md
    }

    [Fact]
    public void Spaces_escapes_other_numbers_and_other_times_are_read_as_the_reader_reads_them()
    {
        byte[] approved = Corpus.Value.First(j => Text(j).Contains("\"type\":\"PaymentApproved\"", StringComparison.Ordinal) && Text(j).Contains("Rent", StringComparison.Ordinal));
        string text = Text(approved);
        // Indented, as a person or another encoder might write it: the scanner reads past spaces.
        using (var doc = JsonDocument.Parse(approved))
            Same(JsonSerializer.SerializeToUtf8Bytes(doc.RootElement, new JsonSerializerOptions { WriteIndented = true }), expectAnswer: true);
        Same(Encoding.UTF8.GetBytes(" \r\n\t" + text + " "), expectAnswer: true);
        // The description's escaped quotes are passed over; an escape in a compared value or a name is the reader's.
        Assert.Contains("\\\"March\\\"", text, StringComparison.Ordinal);
        Same(approved, expectAnswer: true);
        Same(Encoding.UTF8.GetBytes(text.Replace("\"kind\":\"transfer\"", "\"kind\":\"tr\\u0061nsfer\"", StringComparison.Ordinal)), expectAnswer: false);
        Same(Encoding.UTF8.GetBytes(text.Replace("\"amount\":", "\"\\u0061mount\":", StringComparison.Ordinal)), expectAnswer: false);
        Same(Encoding.UTF8.GetBytes(text.Replace("\"currency\":\"USD\"", "\"currency\":\"\\u0055SD\"", StringComparison.Ordinal)), expectAnswer: true); // 0, as the reader
        // Numbers that are not longs: 0, as TryGetInt64 answers; an index that is not a non-negative int: −1.
        Same(Encoding.UTF8.GetBytes(text.Replace("\"amount\":1000,", "\"amount\":1.5e3,", StringComparison.Ordinal)), expectAnswer: true);
        Same(Encoding.UTF8.GetBytes(text.Replace("\"amount\":1000,", "\"amount\":99999999999999999999,", StringComparison.Ordinal)), expectAnswer: true);
        Same(Encoding.UTF8.GetBytes(text.Replace("\"amount\":1000,", "\"amount\":-0,", StringComparison.Ordinal)), expectAnswer: true);
        Same(Encoding.UTF8.GetBytes(text.Replace("\"index\":0,", "\"index\":-1,", StringComparison.Ordinal)), expectAnswer: true);
        Same(Encoding.UTF8.GetBytes(text.Replace("\"index\":0,", "\"index\":\"0\",", StringComparison.Ordinal)), expectAnswer: true);
        Same(Encoding.UTF8.GetBytes(text.Replace("\"amount\":1000,", "\"amount\":01,", StringComparison.Ordinal)), expectAnswer: false); // invalid JSON
        // Times in other shapes go to the reader's own parser; a time that is not one is "absent".
        foreach (string time in new[] { "2023-11-14T22:13:20Z", "2023-11-14T23:13:20.042+01:00", "2023-11-14T22:13:20.0421234Z", "2023-02-29T22:13:20.042Z", "2024-02-29T22:13:20.042Z", "2023-11-14T24:13:20.042Z", "2023-11-14 22:13:20.042Z", "yesterday" })
        {
            int at = text.IndexOf("\"created_at\":\"", StringComparison.Ordinal) + "\"created_at\":\"".Length;
            Same(Encoding.UTF8.GetBytes(text[..at] + time + text[text.IndexOf('"', at)..]), expectAnswer: true);
        }
        Same(Encoding.UTF8.GetBytes(text.Replace("\"created_at\":\"", "\"created_at\":{\"a\":1},\"x\":\"", StringComparison.Ordinal)), expectAnswer: false); // the reader reads on inside it
        // Arrays and unknown members, where the reader skips them too.
        Same(Encoding.UTF8.GetBytes(text.Replace("\"client_id\":", "\"tags\":[1,\"a\",[],{\"b\":[null,true,false]}],\"client_id\":", StringComparison.Ordinal)), expectAnswer: true);
        // A name compared with every character escaped is the reader's, and still known (the longest type: 17 × 6 bytes).
        string escapedType = string.Concat("PaymentAuthorized".Select(c => $"\\u{(int)c:x4}"));
        byte[] escaped = Encoding.UTF8.GetBytes(text.Replace("\"PaymentApproved\"", $"\"{escapedType}\"", StringComparison.Ordinal));
        Same(escaped, expectAnswer: false);
        Assert.True(EventFields.TryRead(escaped, out var authorized));
        Assert.Equal(EventType.PaymentAuthorized, authorized.Type);
        // An unknown type keeps its name.
        Same(Encoding.UTF8.GetBytes(text.Replace("\"PaymentApproved\"", "\"PaymentTeleported\"", StringComparison.Ordinal)), expectAnswer: true);
        Assert.True(EventFields.TryRead(Encoding.UTF8.GetBytes(text.Replace("\"PaymentApproved\"", "\"PaymentTeleported\"", StringComparison.Ordinal)), out var unknown));
        Assert.Equal(("PaymentTeleported", (EventType)0), (unknown.TypeName, unknown.Type));
    }

    [Fact]
    public void Damaged_copies_are_read_the_same_or_left_to_the_reader()
    {
        var random = new Random(20261206);
        // Bytes JSON cares about, and some it refuses.
        byte[] alphabet = [.. "{}[]\",:\\ 0123456789-+.eEatfnruslxTZ/\n"u8, 0x01, 0x7f, 0xc3, 0xff];
        int answered = 0, valid = 0, cases = 0;
        foreach (byte[] json in Corpus.Value)
        {
            for (int n = 0; n < 400; n++)
            {
                byte[] damaged = Damage(json, random, alphabet);
                foreach (uint mask in Masks)
                {
                    cases++;
                    var fast = Start();
                    bool fastAnswered = EventFields.Scanner.TryRead(damaged, ref fast, mask);
                    bool readerValid = EventFields.TryReadWithReader(damaged, out var expected, mask);
                    if (readerValid) valid++;
                    if (fastAnswered)
                    {
                        answered++;
                        Assert.True(readerValid, $"the scanner read what the reader refuses: {Text(damaged)} (mask {mask:x})");
                        Assert.Equal(Describe(expected), Describe(fast));
                    }
                    Assert.Equal(readerValid, EventFields.TryRead(damaged, out var combined, mask));
                    if (readerValid) Assert.Equal(Describe(expected), Describe(combined));
                }
            }
        }
        // The damage must leave enough events readable for the comparison to mean something.
        Assert.True(answered > cases / 10, $"the scanner answered {answered} of {cases} damaged copies ({valid} valid)");
    }

    /// <summary>One random change: a byte replaced, removed or inserted, a run doubled, or the end cut off.</summary>
    private static byte[] Damage(byte[] json, Random random, byte[] alphabet)
    {
        var list = new List<byte>(json);
        int at = random.Next(list.Count);
        switch (random.Next(6))
        {
            case 0: list[at] = alphabet[random.Next(alphabet.Length)]; break;
            case 1: list.RemoveAt(at); break;
            case 2: list.Insert(at, alphabet[random.Next(alphabet.Length)]); break;
            case 3: list.InsertRange(at, list.GetRange(at, Math.Min(random.Next(1, 12), list.Count - at))); break;
            case 4: list.RemoveRange(at, list.Count - at); break;
            default:
                // A digit changed for another: still valid, different values (what a reading must follow).
                var digits = list.Select((b, i) => (b, i)).Where(x => x.b is >= (byte)'0' and <= (byte)'9').ToList();
                var d = digits[random.Next(digits.Count)];
                list[d.i] = (byte)('0' + random.Next(10));
                break;
        }
        return [.. list];
    }

    private static void Same(byte[] json, bool expectAnswer)
    {
        foreach (uint mask in Masks)
        {
            var fast = Start();
            bool answered = EventFields.Scanner.TryRead(json, ref fast, mask);
            bool valid = EventFields.TryReadWithReader(json, out var expected, mask);
            if (mask == EventFields.AllTypes) Assert.True(answered == expectAnswer, $"the scanner {(answered ? "answered" : "gave up")} on {Text(json)}");
            if (answered) Assert.Equal(Describe(expected), Describe(fast));
            Assert.Equal(valid, EventFields.TryRead(json, out var combined, mask));
            Assert.Equal(Describe(expected), Describe(combined));
        }
    }

    /// <summary>What a reading starts from (as <see cref="EventFields.TryRead(ReadOnlySpan{byte}, out EventFields, uint)"/> hands the scanner).</summary>
    private static EventFields Start() => EventFields.Empty;

    /// <summary>Every field by name: a difference names the field.</summary>
    private static string Describe(in EventFields f)
    {
        object boxed = f;
        return string.Join(", ", typeof(EventFields).GetFields(BindingFlags.Public | BindingFlags.Instance).Select(x => $"{x.Name}={x.GetValue(boxed) ?? "null"}"));
    }

    private static string Text(byte[] json) => Encoding.UTF8.GetString(json);
}
