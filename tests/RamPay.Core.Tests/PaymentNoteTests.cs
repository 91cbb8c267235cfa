using System.Buffers.Binary;

namespace RamPay.Core.Tests;

/// <summary>
/// Payment notes (description, webhook URL): the attachment encoding and its refusals, what the ledger keeps and
/// refuses, idempotency ignoring the note, and the notes in the state encoding (snapshots, state hash).
/// </summary>
public class PaymentNoteTests
{
    private static readonly Currency Usd = Currency.USD;

    private static readonly PaymentNote Dinner = new("dinner", "https://example.com/hooks/42");

    /// <summary>The largest valid note: 500 three-byte chars and a 2,000-char URL.</summary>
    private static readonly PaymentNote Largest = new(new string('€', PaymentNote.MaxDescriptionLength),
        "https://example.com/" + new string('a', PaymentNote.MaxWebhookUrlLength - "https://example.com/".Length));

    // ---------------------------------------------------------------- encoding

    /// <summary>Pinned: notes are journaled and snapshotted, so these bytes must decode the same forever. Worked out by hand.</summary>
    [Fact]
    public void A_note_encodes_to_the_golden_bytes_and_back()
    {
        const string golden = "01"              // encoding version 1
            + "0600" + "64696e6e6572"            // description: 6 bytes, "dinner"
            + "0e00" + "68747470733a2f2f782e696f2f68"; // webhook URL: 14 bytes, "https://x.io/h"
        var note = new PaymentNote("dinner", "https://x.io/h");
        Assert.Equal(golden, Convert.ToHexStringLower(note.Encode()));
        Assert.Equal(note, PaymentNote.TryDecode(Convert.FromHexString(golden)));
        // An absent field is a zero length.
        Assert.Equal("01" + "0000" + "0e00" + "68747470733a2f2f782e696f2f68", Convert.ToHexStringLower(new PaymentNote(null, "https://x.io/h").Encode()));
        Assert.Equal("01" + "0100" + "78" + "0000", Convert.ToHexStringLower(new PaymentNote("x", null).Encode()));
    }

    public static TheoryData<string?, string?> ValidNotes => new()
    {
        { "dinner", null },
        { null, "https://example.com/hook" },
        { "Zoë's café, 2 × 🍕", "http://localhost:8080/h?x=1&y=%C3%A9#frag" },
        { " spaces around ", "HTTPS://EXAMPLE.COM/UPPER" },
        { new string('x', PaymentNote.MaxDescriptionLength), "https://xn--bcher-kva.example/" },
        { null, null },
    };

    [Theory]
    [MemberData(nameof(ValidNotes))]
    public void Valid_notes_round_trip_and_their_encoding_is_canonical(string? description, string? webhookUrl)
    {
        var note = new PaymentNote(description, webhookUrl);
        Assert.True(note.IsValid);
        Assert.Equal(description is null && webhookUrl is null, note.IsEmpty);
        byte[] bytes = note.Encode();
        var decoded = PaymentNote.TryDecode(bytes);
        Assert.Equal(note, decoded);
        Assert.Equal(bytes, decoded!.Encode());
    }

    [Fact]
    public void The_largest_valid_note_encodes_to_exactly_the_bound()
    {
        Assert.True(Largest.IsValid);
        Assert.Equal(PaymentNote.MaxWebhookUrlLength, Largest.WebhookUrl!.Length);
        byte[] bytes = Largest.Encode();
        Assert.Equal(PaymentNote.MaxEncodedBytes, bytes.Length);
        Assert.Equal(3505, PaymentNote.MaxEncodedBytes);
        Assert.Equal(Largest, PaymentNote.TryDecode(bytes));
        // A description of surrogate pairs is 4 bytes for 2 chars: smaller than three-byte chars, so not the worst case.
        Assert.True(new PaymentNote(string.Concat(Enumerable.Repeat("🍕", 250)), Largest.WebhookUrl).Encode().Length < PaymentNote.MaxEncodedBytes);
    }

    [Fact]
    public void Invalid_notes_are_not_valid()
    {
        var cases = new (string? Description, string? WebhookUrl, string Why)[]
        {
            (new string('x', PaymentNote.MaxDescriptionLength + 1), null, "description too long"),
            ("", null, "empty description (absent is null)"),
            ("line\nbreak", null, "newline"),
            ("tab\there", null, "tab"),
            ("nul\0", null, "NUL"),
            ("del\u007f", null, "DEL"),
            ("next line\u0085", null, "C1 control (NEL)"),
            ("lone \ud800 surrogate", null, "lone high surrogate"),
            ("\udc00", null, "lone low surrogate"),
            (null, "", "empty URL"),
            (null, "https://example.com/" + new string('a', PaymentNote.MaxWebhookUrlLength - 19), "URL too long"),
            (null, "ftp://example.com/hook", "not http"),
            (null, "file:///etc/passwd", "file URL"),
            (null, "javascript:alert(1)", "javascript URL"),
            (null, "mailto:ops@example.com", "mailto URL"),
            (null, "example.com/hook", "not absolute"),
            (null, "/hook", "a path"),
            (null, "https://", "no host"),
            (null, "http:///path", "empty host"),
            (null, "https://exa mple.com/", "space"),
            (null, "https://example.com/\t", "tab"),
            (null, "https://exämple.com/", "non-ASCII (IRI, not URL)"),
            (null, "https://example.com:99999/", "port out of range"),
        };
        foreach (var (description, url, why) in cases)
            Assert.False(new PaymentNote(description, url).IsValid, why);
    }

    [Fact]
    public void Encode_refuses_what_the_format_cannot_carry()
    {
        // Larger than the bound (valid or not: this one is too long to be valid too).
        var tooLarge = new PaymentNote(new string('x', PaymentNote.MaxEncodedBytes), null);
        Assert.Throws<ArgumentException>(() => tooLarge.Encode());
        // No UTF-8 form: encoding it would journal U+FFFD instead of what the host sent.
        Assert.Throws<System.Text.EncoderFallbackException>(() => new PaymentNote("\ud800", null).Encode());
        // Invalid but encodable: the ledger, not the encoder, refuses it.
        Assert.Equal(1 + 2 + 501 + 2, new PaymentNote(new string('x', 501), null).Encode().Length);
    }

    [Fact]
    public void TryDecode_refuses_every_truncation_and_any_trailing_byte()
    {
        byte[] bytes = Dinner.Encode();
        for (int length = 0; length < bytes.Length; length++)
            Assert.True(PaymentNote.TryDecode(bytes.AsSpan(0, length)) is null, $"a prefix of {length} bytes decoded");
        Assert.Null(PaymentNote.TryDecode([.. bytes, 0]));
        Assert.Null(PaymentNote.TryDecode([.. bytes, .. bytes]));
    }

    [Fact]
    public void TryDecode_refuses_other_versions_invalid_utf8_and_more_than_the_bound()
    {
        byte[] bytes = Dinner.Encode();
        foreach (byte version in new byte[] { 0, 2, 0xFF })
        {
            byte[] other = [.. bytes];
            other[0] = version;
            Assert.Null(PaymentNote.TryDecode(other));
        }
        byte[] notUtf8 = [.. bytes];
        notUtf8[3] = 0xFF; // the first byte of "dinner"
        Assert.Null(PaymentNote.TryDecode(notUtf8));
        byte[] overlong = [1, 2, 0, 0xC0, 0xAF, 0, 0]; // "/" as an overlong two-byte form: not UTF-8
        Assert.Null(PaymentNote.TryDecode(overlong));

        // Well-formed encodings of one long description: at the bound it decodes, one byte past it it is refused.
        Assert.NotNull(PaymentNote.TryDecode(DescriptionOnly(PaymentNote.MaxEncodedBytes - 5)));
        Assert.Null(PaymentNote.TryDecode(DescriptionOnly(PaymentNote.MaxEncodedBytes - 4)));
    }

    /// <summary>Version, a description of <paramref name="length"/> x's, no URL: <paramref name="length"/> + 5 bytes.</summary>
    private static byte[] DescriptionOnly(int length)
    {
        byte[] bytes = new byte[length + 5];
        bytes[0] = PaymentNote.EncodingVersion;
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(1), (ushort)length);
        bytes.AsSpan(3, length).Fill((byte)'x');
        return bytes;
    }

    // ---------------------------------------------------------------- the ledger

    private readonly TestLedger _t = new();
    private readonly long _fund, _alice, _bob;

    public PaymentNoteTests() => (_fund, _alice, _bob) = _t.OpenFundedPair(Usd, deposit: 10_000);

    [Fact]
    public void Transfers_and_authorizations_keep_their_notes_and_other_payments_have_none()
    {
        long pay = _t.Ok(Cmd.Transfer(_alice, _bob, 100, Usd), note: Dinner);
        long hold = _t.Ok(Cmd.Authorize(_alice, _bob, 200, Usd), note: new PaymentNote(null, "https://example.com/h"));
        long plain = _t.Ok(Cmd.Transfer(_alice, _bob, 1, Usd));
        long largest = _t.Ok(Cmd.Transfer(_alice, _bob, 1, Usd), note: Largest);

        Assert.Equal(Dinner, _t.Ledger.GetPaymentNote(pay));
        Assert.Equal(new PaymentNote(null, "https://example.com/h"), _t.Ledger.GetPaymentNote(hold));
        Assert.Equal(Largest, _t.Ledger.GetPaymentNote(largest));
        Assert.Null(_t.Ledger.GetPaymentNote(plain));
        Assert.Null(_t.Ledger.GetPaymentNote(1)); // the deposit
        Assert.Null(_t.Ledger.GetPaymentNote(0));
        Assert.Null(_t.Ledger.GetPaymentNote(999));

        // Capturing, refunding and voiding neither change a note nor give the new refund one, attachment or not.
        _t.Ok(Cmd.Capture(hold, 150));
        var refund = _t.Run(Cmd.Refund(pay, 10, Usd), attachment: new PaymentNote("refund note", null).Encode());
        Assert.True(refund.IsOk);
        Assert.Null(_t.Ledger.GetPaymentNote(refund.Id));
        Assert.Equal(Dinner, _t.Ledger.GetPaymentNote(pay));
        Assert.Equal(new PaymentNote(null, "https://example.com/h"), _t.Ledger.GetPaymentNote(hold));
    }

    [Fact]
    public void Other_commands_ignore_an_attachment_even_one_that_is_not_a_note()
    {
        var deposit = _t.Run(Cmd.Deposit(_fund, _alice, 5, Usd), attachment: [0xFF, 0xFF]);
        Assert.True(deposit.IsOk);
        Assert.Null(_t.Ledger.GetPaymentNote(deposit.Id));
        var noted = _t.Run(Cmd.Deposit(_fund, _alice, 5, Usd), attachment: Dinner.Encode());
        Assert.True(noted.IsOk);
        Assert.Null(_t.Ledger.GetPaymentNote(noted.Id)); // a deposit keeps no note, even a valid one
        long hold = _t.Ok(Cmd.Authorize(_alice, _bob, 5, Usd));
        Assert.True(_t.Run(Cmd.Void(hold), attachment: [1, 2, 3]).IsOk);
        Assert.True(_t.Run(Cmd.Freeze(_bob), attachment: Dinner.Encode()).IsOk);
    }

    public static TheoryData<string, byte[]> BadAttachments => new()
    {
        { "not a note", [0xFF, 0x00, 0x01] },
        { "cut short", Dinner.Encode()[..^1] },
        { "trailing byte", [.. Dinner.Encode(), 0] },
        { "an empty note", new PaymentNote(null, null).Encode() },
        { "description too long", new PaymentNote(new string('x', 501), null).Encode() },
        { "control character", new PaymentNote("two\nlines", null).Encode() },
        { "not an http URL", new PaymentNote("ok", "ftp://example.com/").Encode() },
        { "relative URL", new PaymentNote(null, "/hook").Encode() },
    };

    [Theory]
    [MemberData(nameof(BadAttachments))]
    public void A_bad_note_is_invalid_payment_note_and_changes_nothing(string why, byte[] attachment)
    {
        _ = why; // names the case in the test output
        // Rejects also checks that nothing observable changed (balances, payments, holds, notes) but the remembered key.
        _t.Rejects(ResultCode.InvalidPaymentNote, Cmd.Transfer(_alice, _bob, 100, Usd), attachment: attachment);
        _t.Rejects(ResultCode.InvalidPaymentNote, Cmd.Authorize(_alice, _bob, 100, Usd), attachment: attachment);
        // Checked before anything else: this transfer would otherwise fail for funds.
        _t.Rejects(ResultCode.InvalidPaymentNote, Cmd.Transfer(_alice, _bob, 1_000_000, Usd), attachment: attachment);
        Assert.Equal(1, _t.Ledger.PaymentCount);
    }

    [Fact]
    public void A_replayed_key_returns_the_same_payment_whatever_its_note_and_keeps_the_first_note()
    {
        var first = _t.Run(Cmd.Transfer(_alice, _bob, 100, Usd), key: "pay", attachment: Dinner.Encode());
        var before = LedgerView.Of(_t.Ledger);

        var sameNote = _t.Run(Cmd.Transfer(_alice, _bob, 100, Usd), key: "pay", attachment: Dinner.Encode());
        var otherNote = _t.Run(Cmd.Transfer(_alice, _bob, 100, Usd), key: "pay", attachment: new PaymentNote("lunch", null).Encode());
        var noNote = _t.Run(Cmd.Transfer(_alice, _bob, 100, Usd), key: "pay");
        var badNote = _t.Run(Cmd.Transfer(_alice, _bob, 100, Usd), key: "pay", attachment: [0xFF]);

        foreach (var again in new[] { sameNote, otherNote, noNote, badNote })
            Assert.Equal(first with { Replayed = true }, again);
        Assert.Equal(before, LedgerView.Of(_t.Ledger));
        Assert.Equal(Dinner, _t.Ledger.GetPaymentNote(first.Id));
        // The body is still compared as ever.
        Assert.Equal(ResultCode.ExistsWithDifferentAmount, _t.Run(Cmd.Transfer(_alice, _bob, 101, Usd), key: "pay", attachment: Dinner.Encode()).Code);
    }

    [Fact]
    public void A_key_first_used_with_a_bad_note_replays_the_rejection_even_with_a_good_note()
    {
        // The consequence of leaving the note out of the comparison: the host validates notes before it submits (as it
        // does amounts), so only a client that bypasses it meets this.
        _t.Rejects(ResultCode.InvalidPaymentNote, Cmd.Transfer(_alice, _bob, 100, Usd), key: "pay", attachment: [0xFF]);
        var retry = _t.Run(Cmd.Transfer(_alice, _bob, 100, Usd), key: "pay", attachment: Dinner.Encode());
        Assert.Equal(new CommandResult { Code = ResultCode.InvalidPaymentNote, Replayed = true }, retry);
    }

    // ---------------------------------------------------------------- the state encoding

    /// <summary>Deposit 1 (no note), transfers 2 and 3 with notes, a hold 4 with a note, and a remembered key.</summary>
    private (long Pay, long Second, long Hold) Notes()
    {
        long pay = _t.Ok(Cmd.Transfer(_alice, _bob, 100, Usd), note: Dinner);
        long second = _t.Ok(Cmd.Transfer(_alice, _bob, 100, Usd), note: Largest);
        long hold = _t.Ok(Cmd.Authorize(_alice, _bob, 100, Usd), note: new PaymentNote("hold ✓", null));
        return (pay, second, hold);
    }

    /// <summary>Where the notes section starts: after the fixed header (108 bytes, see SnapshotTests), the accounts and the payments.</summary>
    private int NotesOffset()
    {
        const int accountSize = StateBytes.AccountSize, paymentSize = StateBytes.PaymentSize;
        return 108 + _t.Ledger.AccountCount * accountSize + 8 + (int)_t.Ledger.PaymentCount * paymentSize;
    }

    [Fact]
    public void A_state_round_trip_keeps_the_notes_and_the_hash()
    {
        var (pay, second, hold) = Notes();
        byte[] bytes = StateBytes.Write(_t.Ledger);
        var restored = StateBytes.Read(bytes, _t.Ledger.Options);

        Assert.Equal(bytes, StateBytes.Write(restored));
        Assert.Equal(StateBytes.Hash(_t.Ledger), StateBytes.Hash(restored));
        Assert.Equal(LedgerView.Of(_t.Ledger), LedgerView.Of(restored));
        Assert.Equal(Dinner, restored.GetPaymentNote(pay));
        Assert.Equal(Largest, restored.GetPaymentNote(second));
        Assert.Equal(new PaymentNote("hold ✓", null), restored.GetPaymentNote(hold));
        Assert.Null(restored.GetPaymentNote(1));
    }

    [Fact]
    public void The_note_is_part_of_the_state_hash()
    {
        // The same commands, keys and times on fresh ledgers; only the transfer's note differs.
        static TestLedger Paid(PaymentNote? note)
        {
            var t = new TestLedger();
            var (_, a, b) = t.OpenFundedPair(Usd, deposit: 10_000);
            t.Ok(Cmd.Transfer(a, b, 100, Usd), note: note);
            return t;
        }
        string dinner = StateBytes.Hash(Paid(Dinner).Ledger);
        Assert.Equal(dinner, StateBytes.Hash(Paid(Dinner).Ledger));
        Assert.NotEqual(dinner, StateBytes.Hash(Paid(Dinner with { Description = "lunch" }).Ledger));
        Assert.NotEqual(dinner, StateBytes.Hash(Paid(null).Ledger));
    }

    /// <summary>Pinned: the notes section of state version 2, after the payments. Worked out from the layout.</summary>
    [Fact]
    public void The_notes_section_is_a_count_then_each_payment_id_and_its_encoding_in_id_order()
    {
        var (pay, second, hold) = Notes();
        byte[] bytes = StateBytes.Write(_t.Ledger);
        int at = NotesOffset();
        var expected = new MemoryStream();
        using (var w = new BinaryWriter(expected))
        {
            w.Write(3);
            foreach (var (id, note) in new[] { (pay, Dinner), (second, Largest), (hold, new PaymentNote("hold ✓", null)) })
            {
                byte[] encoded = note.Encode();
                w.Write(id); w.Write((ushort)encoded.Length); w.Write(encoded);
            }
        }
        byte[] section = expected.ToArray(); // still readable once the writer has closed it
        Assert.Equal(section, bytes.AsSpan(at, section.Length).ToArray());
        // Then the open holds: one, the authorization.
        Assert.Equal(1, BitConverter.ToInt32(bytes, at + section.Length));
        Assert.Equal(hold, BitConverter.ToInt64(bytes, at + section.Length + 4));
    }

    [Fact]
    public void Read_state_refuses_a_bad_notes_section()
    {
        var (pay, _, _) = Notes();
        byte[] good = StateBytes.Write(_t.Ledger);
        int firstId = NotesOffset() + 4, firstNote = firstId + 8 + 2;
        Assert.Equal(pay, BitConverter.ToInt64(good, firstId));

        byte[] Patched(Action<byte[]> patch)
        {
            byte[] b = [.. good];
            patch(b);
            return b;
        }
        var options = _t.Ledger.Options;
        void Refused<TException>(string why, Action<byte[]> patch) where TException : Exception
        {
            var e = Record.Exception(() => StateBytes.Read(Patched(patch), options));
            Assert.True(e is TException, $"{why}: {e?.GetType().Name ?? "no exception"}");
        }

        Refused<InvalidDataException>("more notes than payments", b => BitConverter.TryWriteBytes(b.AsSpan(firstId - 4), 5));
        Refused<InvalidDataException>("negative count", b => BitConverter.TryWriteBytes(b.AsSpan(firstId - 4), -1));
        Refused<InvalidDataException>("a payment id beyond the payments", b => BitConverter.TryWriteBytes(b.AsSpan(firstId), 99L));
        Refused<InvalidDataException>("ids out of order", b => BitConverter.TryWriteBytes(b.AsSpan(firstId), pay + 1));
        Refused<InvalidDataException>("another encoding version", b => b[firstNote] = 2);
        Refused<InvalidDataException>("an invalid note (a newline in the description)", b => b[firstNote + 3] = (byte)'\n');
        Refused<InvariantViolationException>("a note on the deposit", b => BitConverter.TryWriteBytes(b.AsSpan(firstId), 1L));
        Assert.Equal(Dinner, StateBytes.Read(good, options).GetPaymentNote(pay));
    }

    [Fact]
    public void Read_state_refuses_a_truncation_anywhere_in_the_notes_section()
    {
        Notes();
        byte[] bytes = StateBytes.Write(_t.Ledger);
        int start = NotesOffset();
        int end = start + 4 + new[] { Dinner, Largest, new PaymentNote("hold ✓", null) }.Sum(n => 8 + 2 + n.Encode().Length);
        for (int cut = start; cut <= end; cut++)
        {
            var e = Record.Exception(() => StateBytes.Read(bytes[..cut], _t.Ledger.Options));
            Assert.True(e is EndOfStreamException, $"cut at {cut}: {e?.GetType().Name ?? "no exception"}");
        }
    }

    /// <summary>A snapshot written before notes (state version 1: no notes section) still loads, as a state without notes.</summary>
    [Fact]
    public void A_version_1_state_loads_as_one_without_notes()
    {
        // Payments, an open hold and remembered keys after where the notes would be, so a reader that looked for a
        // notes section in version 1 would read them out of place.
        _t.Ok(Cmd.Transfer(_alice, _bob, 100, Usd));
        _t.Ok(Cmd.Authorize(_alice, _bob, 200, Usd));
        byte[] current = StateBytes.Write(_t.Ledger);
        byte[] v2 = StateBytes.AsVersion2(current, _t.Ledger);
        // In version 2 the notes section follows payments without fraud fields.
        int at = NotesOffset() - (int)_t.Ledger.PaymentCount * (StateBytes.PaymentSize - StateBytes.PaymentSizeVersion2);
        Assert.Equal(0, BitConverter.ToInt32(v2, at));
        byte[] v1 = [.. v2[..at], .. v2[(at + 4)..]];
        BitConverter.TryWriteBytes(v1.AsSpan(4), 1);

        var restored = StateBytes.Read(v1, _t.Ledger.Options);
        Assert.Equal(current, StateBytes.Write(restored)); // written back in the current version
        Assert.Equal(LedgerView.Of(_t.Ledger), LedgerView.Of(restored));
    }
}
