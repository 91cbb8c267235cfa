namespace RamPay.Core.Tests;

/// <summary>
/// Golden tests for everything persisted or put on the wire: the 80-byte command layout, currency packing,
/// idempotency key hashing and result code names. A failure here means a journal/snapshot format change.
/// </summary>
public class FormatTests
{
    // Worked out by hand from the layout in CommandCodec.cs (little-endian, field by field).
    private const string GoldenHex =
        "03" + "02" + "a836" + "00000000" // type=Transfer, flags=2, currency USD=13992=0x36A8, reserved
        + "0807060504030201"              // timestamp_ms = 0x0102030405060708
        + "2a00000000000000"              // client_id = 42
        + "8877665544332211"              // key_hi = 0x1122334455667788
        + "00ffeeddccbbaa99"              // key_lo = 0x99AABBCCDDEEFF00
        + "0100000000000000"              // from_account = 1
        + "feffffffffffffff"              // to_account = -2
        + "ffffffffffffff7f"              // payment_id = long.MaxValue
        + "3930000000000000"              // amount = 12345
        + "ffffffffffffffff";             // argument = -1

    private static Command GoldenCommand => new()
    {
        Type = CommandType.Transfer,
        Flags = 2,
        Currency = Currency.USD,
        TimestampMs = 0x0102030405060708,
        ClientId = 42,
        Key = new IdempotencyKey(0x1122334455667788, 0x99AABBCCDDEEFF00),
        FromAccount = 1,
        ToAccount = -2,
        PaymentId = long.MaxValue,
        Amount = 12345,
        Argument = -1,
    };

    [Fact]
    public void Command_size_is_80_bytes()
    {
        Assert.Equal(80, Command.Size);
        Assert.Equal(80, CommandCodec.Size);
        Assert.Equal(80, System.Runtime.CompilerServices.Unsafe.SizeOf<Command>());
        Command.AssertLayout();
    }

    [Fact]
    public void Command_encodes_to_the_golden_bytes()
    {
        var bytes = new byte[CommandCodec.Size];
        CommandCodec.Write(bytes, GoldenCommand);
        Assert.Equal(160, GoldenHex.Length);
        Assert.Equal(GoldenHex, Convert.ToHexStringLower(bytes));
    }

    [Fact]
    public void Golden_bytes_decode_to_the_command()
    {
        var bytes = Convert.FromHexString(GoldenHex);
        Assert.True(CommandCodec.TryRead(bytes, out var c));
        Assert.Equal(GoldenCommand, c);
        Assert.Equal(GoldenCommand, CommandCodec.Read(bytes));
        Assert.Equal(CommandType.Transfer, c.Type);
        Assert.Equal("USD", c.Currency.ToString());
        Assert.Equal(long.MaxValue, c.PaymentId);
        Assert.Equal(-2, c.ToAccount);
    }

    [Fact]
    public void Write_into_a_larger_buffer_touches_only_80_bytes_and_rejects_a_shorter_one()
    {
        var bytes = Enumerable.Repeat((byte)0xAB, 90).ToArray();
        CommandCodec.Write(bytes, GoldenCommand);
        Assert.Equal(GoldenHex, Convert.ToHexStringLower(bytes.AsSpan(0, 80)));
        Assert.All(bytes[80..], b => Assert.Equal(0xAB, b));
        Assert.Throws<ArgumentException>(() => CommandCodec.Write(new byte[79], GoldenCommand));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(79)]
    [InlineData(81)]
    [InlineData(160)]
    public void TryRead_rejects_a_wrong_length(int length)
    {
        var bytes = new byte[length];
        Convert.FromHexString(GoldenHex).AsSpan(0, Math.Min(80, length)).CopyTo(bytes);
        Assert.False(CommandCodec.TryRead(bytes, out var c));
        Assert.Equal(default, c);
        Assert.Throws<FormatException>(() => CommandCodec.Read(bytes));
    }

    [Theory]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(6)]
    [InlineData(7)]
    public void TryRead_rejects_a_non_zero_reserved_byte(int index)
    {
        var bytes = Convert.FromHexString(GoldenHex);
        bytes[index] = 1;
        Assert.False(CommandCodec.TryRead(bytes, out _));
        Assert.Throws<FormatException>(() => CommandCodec.Read(bytes));
    }

    [Fact]
    public void Default_command_encodes_to_zeros_and_back()
    {
        var bytes = new byte[80];
        CommandCodec.Write(bytes, default);
        Assert.All(bytes, b => Assert.Equal(0, b));
        Assert.Equal(default(Command), CommandCodec.Read(bytes));
    }

    // ---------------------------------------------------------------- currency

    [Theory]
    [InlineData("USD", 13992)] // (20*26 + 18)*26 + 3 + 1
    [InlineData("EUR", 3242)]  // (4*26 + 20)*26 + 17 + 1
    [InlineData("GBP", 4098)]  // (6*26 + 1)*26 + 15 + 1
    [InlineData("AAA", 1)]
    [InlineData("ZZZ", 17576)]
    public void Currency_packs_three_letters_and_round_trips(string code, int packed)
    {
        var c = Currency.Parse(code);
        Assert.Equal(packed, c.Code);
        Assert.Equal(code, c.ToString());
        Assert.True(Currency.TryParse(code, out var c2));
        Assert.Equal(c, c2);
        Assert.False(c.IsNone);
    }

    [Fact]
    public void Currency_statics_match_their_codes()
    {
        Assert.Equal(Currency.Parse("USD"), Currency.USD);
        Assert.Equal(Currency.Parse("EUR"), Currency.EUR);
        Assert.Equal(Currency.Parse("GBP"), Currency.GBP);
        Assert.True(Currency.None.IsNone);
        Assert.Equal("", Currency.None.ToString());
        Assert.NotEqual(Currency.USD, Currency.EUR);
    }

    [Theory]
    [InlineData("usd")]
    [InlineData("Usd")]
    [InlineData("US")]
    [InlineData("USDX")]
    [InlineData("")]
    [InlineData("U$D")]
    [InlineData("US1")]
    [InlineData("ÜSD")]
    public void Currency_rejects_anything_but_three_upper_case_letters(string code)
    {
        Assert.False(Currency.TryParse(code, out var c));
        Assert.True(c.IsNone);
        Assert.Throws<FormatException>(() => Currency.Parse(code));
    }

    [Fact]
    public void Every_three_letter_code_round_trips_to_a_distinct_value()
    {
        var seen = new HashSet<ushort>();
        Span<char> s = stackalloc char[3];
        for (char a = 'A'; a <= 'Z'; a++)
            for (char b = 'A'; b <= 'Z'; b++)
                for (char c = 'A'; c <= 'Z'; c++)
                {
                    s[0] = a; s[1] = b; s[2] = c;
                    Assert.True(Currency.TryParse(s, out var cur));
                    Assert.True(seen.Add(cur.Code));
                    if (cur.ToString() != new string(s)) Assert.Fail($"{new string(s)} -> {cur.Code} -> {cur}");
                }
        Assert.Equal(17576, seen.Count);
        Assert.Equal(1, seen.Min());
        Assert.Equal(17576, seen.Max());
    }

    // ---------------------------------------------------------------- idempotency key

    /// <summary>Pinned: persisted keys (journal, snapshots) must hash the same forever. SHA-256 of the UTF-8, first 16 bytes LE.</summary>
    [Fact]
    public void IdempotencyKey_of_order_42_is_pinned()
    {
        var k = IdempotencyKey.FromString("order-42");
        Assert.Equal("ef8e23c457b1f83b6b1ca8ec664aaee5", k.ToString());
        Assert.Equal(0xef8e23c457b1f83bUL, k.Hi);
        Assert.Equal(0x6b1ca8ec664aaee5UL, k.Lo);
    }

    [Fact]
    public void IdempotencyKey_is_deterministic_and_distinct_strings_differ()
    {
        Assert.Equal(IdempotencyKey.FromString("order-42"), IdempotencyKey.FromString("order-42"));
        var keys = new HashSet<IdempotencyKey>();
        foreach (string s in new[] { "order-42", "order-43", "Order-42", "order-42 ", "a", "b", "€", "e" })
        {
            var k = IdempotencyKey.FromString(s);
            Assert.False(k.IsEmpty);
            Assert.True(keys.Add(k), s);
        }
        for (int i = 0; i < 1000; i++) Assert.True(keys.Add(IdempotencyKey.FromString("k" + i.ToString(System.Globalization.CultureInfo.InvariantCulture))));
    }

    [Fact]
    public void IdempotencyKey_accepts_1_to_255_characters()
    {
        Assert.Equal(255, IdempotencyKey.MaxKeyLength);
        Assert.False(IdempotencyKey.FromString("x").IsEmpty);
        var k255 = IdempotencyKey.FromString(new string('x', 255));
        Assert.NotEqual(k255, IdempotencyKey.FromString(new string('x', 254)));
        // 255 three-byte UTF-8 characters still fit the encoder's buffer.
        Assert.False(IdempotencyKey.FromString(new string('€', 255)).IsEmpty);
    }

    [Fact]
    public void IdempotencyKey_rejects_empty_too_long_and_null()
    {
        Assert.Throws<ArgumentException>(() => IdempotencyKey.FromString(""));
        Assert.Throws<ArgumentException>(() => IdempotencyKey.FromString(new string('x', 256)));
        Assert.Throws<ArgumentNullException>(() => IdempotencyKey.FromString(null!));
    }

    [Fact]
    public void Default_idempotency_key_is_empty()
    {
        Assert.True(default(IdempotencyKey).IsEmpty);
        Assert.False(new IdempotencyKey(0, 1).IsEmpty);
        Assert.False(new IdempotencyKey(1, 0).IsEmpty);
        Assert.Equal("00000000000000010000000000000002", new IdempotencyKey(1, 2).ToString());
    }

    // ---------------------------------------------------------------- result codes

    [Theory]
    [InlineData(ResultCode.Ok, 0, "ok")]
    [InlineData(ResultCode.InsufficientFunds, 13, "insufficient_funds")]
    [InlineData(ResultCode.AccountNotFound, 10, "account_not_found")]
    [InlineData(ResultCode.CurrencyMismatch, 12, "currency_mismatch")]
    [InlineData(ResultCode.AccountFrozen, 11, "account_frozen")]
    [InlineData(ResultCode.AmountExceedsCaptured, 24, "amount_exceeds_captured")]
    [InlineData(ResultCode.HoldExpired, 22, "hold_expired")]
    [InlineData(ResultCode.ExistsWithDifferentAmount, 44, "exists_with_different_amount")]
    [InlineData(ResultCode.IdempotencyKeyRequired, 4, "idempotency_key_required")]
    [InlineData(ResultCode.TooManyHolds, 32, "too_many_holds")]
    [InlineData(ResultCode.NotAccountOwner, 16, "not_account_owner")]
    [InlineData(ResultCode.DepositLimitExceeded, 17, "deposit_limit_exceeded")]
    [InlineData(ResultCode.InvalidPaymentNote, 18, "invalid_payment_note")]
    [InlineData(ResultCode.ExistsWithDifferentArgument, 47, "exists_with_different_argument")]
    [InlineData(ResultCode.FraudSuspected, 19, "fraud_suspected")]
    [InlineData(ResultCode.PaymentNotHeld, 26, "payment_not_held")]
    [InlineData(ResultCode.AdminRequired, 52, "admin_required")]
    public void Result_code_values_and_names_are_pinned(ResultCode code, byte value, string name)
    {
        Assert.Equal(value, (byte)code);
        Assert.Equal(name, ResultCodes.Name(code));
    }

    [Fact]
    public void Every_result_code_has_a_distinct_snake_case_name_and_a_message()
    {
        var values = Enum.GetValues<ResultCode>();
        Assert.Equal(47, values.Length);
        var names = values.Select(ResultCodes.Name).ToList();
        Assert.Equal(names.Count, names.Distinct().Count());
        foreach (var v in values)
        {
            string name = ResultCodes.Name(v);
            Assert.DoesNotContain("unknown", name);
            Assert.Matches("^[a-z]+(_[a-z]+)*$", name);
            Assert.Equal(name.Replace("_", ""), v.ToString().ToLowerInvariant());
            Assert.NotEqual("Unknown result code.", ResultCodes.Message(v));
        }
        Assert.Equal(values.Length, values.Select(ResultCodes.Message).Distinct().Count());
    }

    [Fact]
    public void Unknown_result_codes_are_named_unknown()
    {
        Assert.Equal("unknown_99", ResultCodes.Name((ResultCode)99));
        Assert.Equal("Unknown result code.", ResultCodes.Message((ResultCode)99));
    }

    [Fact]
    public void Persisted_enum_values_are_pinned()
    {
        Assert.Equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19], Enum.GetValues<CommandType>().Select(v => (int)v));
        Assert.Equal((15, 16, 17, 18, 19), ((int)CommandType.DefineRewardRule, (int)CommandType.EndRewardRule, (int)CommandType.IssueReward, (int)CommandType.ReverseReward, (int)CommandType.OpenRewardsAccount));
        Assert.Equal((5, 6), ((int)PaymentKind.Reward, (int)PaymentKind.RewardReversal));
        Assert.Equal((1, 2), ((int)RewardStatus.Issued, (int)RewardStatus.Skipped));
        Assert.Equal((60, 61, 62, 63, 64, 65, 66, 67), ((int)ResultCode.RewardExists, (int)ResultCode.RewardNotEligible, (int)ResultCode.RewardSkipped, (int)ResultCode.RewardRuleNotFound,
            (int)ResultCode.InvalidRewardRule, (int)ResultCode.RewardNotFound, (int)ResultCode.RewardRuleEnded, (int)ResultCode.TooManyRewardRules));
        Assert.Equal(68, (int)ResultCode.RewardsAccountExists);
        Assert.Equal(CommandType.Review, (CommandType)12);
        Assert.Equal(CommandType.ConfigureFraud, (CommandType)13);
        Assert.Equal(CommandType.UpgradeRules, (CommandType)14);
        Assert.Equal((1, 2), (ReviewDecisions.Approve, ReviewDecisions.Decline));
        Assert.Equal(CommandType.Tick, (CommandType)10);
        Assert.Equal(CommandType.RegisterUser, (CommandType)11);
        Assert.Equal(1, (int)AccountFlags.DebitsMustNotExceedCredits);
        Assert.Equal(2, (int)AccountFlags.Funding);
        Assert.Equal([1, 2, 3, 4, 5, 6], Enum.GetValues<PaymentKind>().Select(v => (int)v));
        Assert.Equal((1, 2, 3, 4, 5), ((int)PaymentStatus.Posted, (int)PaymentStatus.Authorized, (int)PaymentStatus.Captured, (int)PaymentStatus.Voided, (int)PaymentStatus.Expired));
        Assert.Equal((6, 7), ((int)PaymentStatus.HeldForReview, (int)PaymentStatus.Declined));
        Assert.Equal([0, 1, 2, 4, 8, 16, 32, 64, 128], Enum.GetValues<RamPay.Fraud.FraudReasons>().Select(v => (int)v));
    }

    [Fact]
    public void Command_result_to_string_names_the_code()
    {
        Assert.Equal("insufficient_funds id=0", new CommandResult { Code = ResultCode.InsufficientFunds }.ToString());
        Assert.Equal("ok id=5 (replayed)", new CommandResult { Code = ResultCode.Ok, Id = 5, Replayed = true }.ToString());
    }
}
