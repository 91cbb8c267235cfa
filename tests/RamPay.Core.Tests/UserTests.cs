namespace RamPay.Core.Tests;

public class UserTests
{
    private readonly TestLedger _t = new();

    private static (Command Command, byte[] Attachment) Register(string email, string name = "Ada", string hash = "pbkdf2$1$salt$hash", UserRole role = UserRole.User, Currency? currency = null) =>
        new UserProfile(email, name, hash).ToCommand(role, currency ?? Currency.USD);

    private CommandResult Run((Command Command, byte[] Attachment) registration, string? key = null)
    {
        var c = registration.Command;
        c.TimestampMs = _t.Now;
        c.ClientId = 9;
        c.Key = IdempotencyKey.FromString(key ?? _t.NextKey());
        _t.Ledger.Apply(c, registration.Attachment, out var result);
        _t.Ledger.VerifyInvariants();
        return result;
    }

    [Fact]
    public void Registering_creates_the_user_and_their_wallet_in_one_command()
    {
        var r = Run(Register("Ada@Example.com", role: UserRole.Admin, currency: Currency.EUR));
        Assert.True(r.IsOk);
        Assert.Equal(1, r.Id);
        var user = _t.Ledger.GetUser(1)!;
        Assert.Equal(("ada@example.com", "Ada", "pbkdf2$1$salt$hash", UserRole.Admin, r.SecondaryId), (user.Email, user.Name, user.PasswordHash, user.Role, user.WalletAccountId));
        var wallet = _t.Ledger.GetAccount(r.SecondaryId);
        Assert.Equal((1L, Currency.EUR, true), (wallet.Owner, wallet.Currency, wallet.IsWallet));
        Assert.Same(user, _t.Ledger.FindUserByEmail("  ADA@example.COM "));
        Assert.Null(_t.Ledger.FindUserByEmail("bob@example.com"));
        Assert.Null(_t.Ledger.GetUser(2));
    }

    [Fact]
    public void A_second_registration_of_an_email_in_any_case_is_email_taken_and_opens_no_account()
    {
        Assert.True(Run(Register("ada@example.com")).IsOk);
        var r = Run(Register("ADA@example.com", name: "Someone else"));
        Assert.Equal(ResultCode.EmailTaken, r.Code);
        Assert.Equal(1, _t.Ledger.UserCount);
        Assert.Equal(1, _t.Ledger.AccountCount);
    }

    [Fact]
    public void The_same_key_and_profile_replays_and_the_same_key_with_another_profile_is_a_conflict()
    {
        var first = Run(Register("ada@example.com"), key: "signup-ada");
        var again = Run(Register("ada@example.com"), key: "signup-ada");
        Assert.True(again.Replayed);
        Assert.Equal((first.Id, first.SecondaryId), (again.Id, again.SecondaryId));
        var other = Run(Register("ada@example.com", hash: "another-hash"), key: "signup-ada");
        Assert.Equal(ResultCode.ExistsWithDifferentArgument, other.Code);
        Assert.Equal("pbkdf2$1$salt$hash", _t.Ledger.GetUser(1)!.PasswordHash);
    }

    [Theory]
    [InlineData("no-at-sign", "Ada", "h")]
    [InlineData("a@", "Ada", "h")]
    [InlineData("ada@example.com", "", "h")]
    [InlineData("ada@example.com", "Ada", "")]
    public void A_malformed_profile_is_invalid_profile_and_changes_nothing(string email, string name, string hash)
    {
        var r = Run(Register(email, name, hash));
        Assert.Equal(ResultCode.InvalidProfile, r.Code);
        Assert.Equal((0, 0), (_t.Ledger.UserCount, _t.Ledger.AccountCount));
    }

    [Fact]
    public void An_attachment_that_does_not_match_the_digest_or_does_not_decode_is_invalid_profile()
    {
        var (command, attachment) = Register("ada@example.com");
        var tampered = (byte[])attachment.Clone();
        tampered[^1] ^= 1;
        Assert.Equal(ResultCode.InvalidProfile, Run((command, tampered)).Code);
        Assert.Equal(ResultCode.InvalidProfile, Run((command, attachment[..5])).Code);
        Assert.Equal(ResultCode.InvalidProfile, Run((command, [])).Code);
        Assert.Equal(ResultCode.InvalidProfile, Run((command, [.. attachment, 0])).Code);
        Assert.Equal(0, _t.Ledger.UserCount);
    }

    [Fact]
    public void An_unknown_role_is_invalid_command_and_a_bad_currency_opens_nothing()
    {
        var (command, attachment) = Register("ada@example.com");
        Assert.Equal(ResultCode.InvalidCommand, Run((command with { Flags = 7 }, attachment)).Code);
        Assert.Equal(ResultCode.InvalidCurrency, Run(Register("bob@example.com", currency: Currency.None)).Code);
        Assert.Equal((0, 0), (_t.Ledger.UserCount, _t.Ledger.AccountCount));
    }

    [Fact]
    public void Profiles_round_trip_and_reject_invalid_utf8()
    {
        var profile = new UserProfile("zoë@example.com", "Zoë Ünal", "hash$with$dollars");
        Assert.Equal(profile, UserProfile.TryDecode(profile.Encode()));
        byte[] bad = [1, 0, 0xFF, 1, 0, (byte)'a', 1, 0, (byte)'b'];
        Assert.Null(UserProfile.TryDecode(bad));
    }

    [Fact]
    public void Users_survive_a_state_round_trip_with_the_same_hash()
    {
        Assert.True(Run(Register("ada@example.com")).IsOk);
        Assert.True(Run(Register("bob@example.com", name: "Bob", role: UserRole.Admin)).IsOk);
        using var stream = new MemoryStream();
        _t.Ledger.WriteState(stream);
        stream.Position = 0;
        var restored = Ledger.ReadState(stream, TestLedger.SmallOptions);
        Assert.Equal(_t.Ledger.ComputeStateHash(), restored.ComputeStateHash());
        Assert.Equal(_t.Ledger.GetUser(2), restored.GetUser(2));
        Assert.Equal(2, restored.FindUserByEmail("BOB@example.com")!.Id);
        // The restored email index still refuses a duplicate.
        var (command, attachment) = Register("bob@example.com");
        command.Key = IdempotencyKey.FromString("another");
        command.ClientId = 9;
        command.TimestampMs = _t.Now;
        restored.Apply(command, attachment, out var r);
        Assert.Equal(ResultCode.EmailTaken, r.Code);
    }
}
