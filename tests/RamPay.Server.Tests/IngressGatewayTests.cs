using RamPay.Core;
using RamPay.Engine;
using RamPay.Server.Auth;
using RamPay.Server.Hosting;
using RamPay.Server.Http;
using RamPay.Server.Ingress;

namespace RamPay.Server.Tests;

/// <summary>The ingress gateway's rules on their own, without a server (IngressParityTests runs them over both protocols).</summary>
public class IngressGatewayTests
{
    private static readonly Currency Usd = Currency.USD;
    private static readonly Dictionary<Currency, long> Funding = new() { [Currency.USD] = 1, [Currency.EUR] = 2 };
    private const long MaxDeposit = 1_000;
    private static readonly IdempotencyKey Key = IdempotencyKey.FromString("k");

    private static IngressRefusal Check(Command c) => CommandRules.Check(ref c, Funding, MaxDeposit);

    private static Command Transfer(long amount = 100) => new()
    {
        Type = CommandType.Transfer, Key = Key, FromAccount = 10, ToAccount = 11, Amount = amount, Currency = Usd,
    };

    private static Command Deposit(long amount = 100, Currency? currency = null, long from = 0) => new()
    {
        Type = CommandType.Deposit, Key = Key, FromAccount = from, ToAccount = 10, Amount = amount, Currency = currency ?? Usd,
    };

    [Fact]
    public void Ownership_flags_a_users_command_and_not_an_admins()
    {
        Assert.Equal(CommandFlags.OwnerOnly, Ownership.FlagsFor(new Caller(5, IsAdmin: false)));
        Assert.Equal(0, Ownership.FlagsFor(new Caller(1, IsAdmin: true)));
    }

    [Fact]
    public void A_valid_transfer_passes_unchanged()
    {
        var c = Transfer();
        var before = c;
        Assert.False(CommandRules.Check(ref c, Funding, MaxDeposit).IsRefused);
        Assert.Equal(before, c);
    }

    [Fact]
    public void The_rules_refuse_in_one_order_key_amount_currency_hold_timeout()
    {
        var everything = Transfer(amount: 0) with { Key = default, Currency = Currency.None, Argument = 5 };
        Assert.Equal(new IngressRefusal(ResultCode.IdempotencyKeyRequired, IngressInput.IdempotencyKey), Check(everything));
        Assert.Equal(new IngressRefusal(ResultCode.InvalidAmount, IngressInput.Amount), Check(everything with { Key = Key }));
        Assert.Equal(new IngressRefusal(ResultCode.InvalidCurrency, IngressInput.Currency), Check(everything with { Key = Key, Amount = 1 }));
        Assert.Equal(new IngressRefusal(ResultCode.InvalidHoldTimeout, IngressInput.HoldTimeout), Check(everything with { Key = Key, Amount = 1, Currency = Usd }));
        Assert.False(Check(everything with { Key = Key, Amount = 1, Currency = Usd, Argument = 0 }).IsRefused);
    }

    [Theory]
    [InlineData(CommandType.Transfer, -1, true)]
    [InlineData(CommandType.Transfer, 0, true)]
    [InlineData(CommandType.Authorize, 0, true)]
    [InlineData(CommandType.Refund, 0, true)]
    [InlineData(CommandType.Capture, 0, false)] // the whole authorization
    [InlineData(CommandType.Capture, -1, true)]
    [InlineData(CommandType.Void, 0, false)]
    public void Amounts(CommandType type, long amount, bool refused)
    {
        var c = new Command { Type = type, Key = Key, FromAccount = 10, ToAccount = 11, PaymentId = 3, Amount = amount, Currency = Usd };
        Assert.Equal(refused ? ResultCode.InvalidAmount : ResultCode.Ok, Check(c).Code);
    }

    [Fact]
    public void Capture_void_and_refund_may_leave_the_currency_out_but_not_send_a_bad_one()
    {
        var refund = new Command { Type = CommandType.Refund, Key = Key, PaymentId = 3, Amount = 1 };
        Assert.False(Check(refund).IsRefused);
        Assert.Equal(ResultCode.InvalidCurrency, Check(refund with { Currency = new Currency(Currency.MaxCode + 1) }).Code);
        Assert.Equal(ResultCode.InvalidCurrency, Check(Transfer() with { Currency = Currency.None }).Code);
    }

    [Fact]
    public void Only_an_authorization_carries_a_hold_timeout_and_never_a_negative_one()
    {
        var authorize = Transfer() with { Type = CommandType.Authorize, Argument = 60_000 };
        Assert.False(Check(authorize).IsRefused);
        Assert.Equal(ResultCode.InvalidHoldTimeout, Check(authorize with { Argument = -1 }).Code);
        Assert.Equal(ResultCode.InvalidHoldTimeout, Check(authorize with { Type = CommandType.Transfer }).Code);
        Assert.Equal(ResultCode.InvalidHoldTimeout, Check(authorize with { Type = CommandType.Capture, Amount = 0 }).Code);
    }

    [Fact]
    public void A_deposit_comes_from_the_funding_account_of_its_currency()
    {
        var c = Deposit();
        Assert.False(CommandRules.Check(ref c, Funding, MaxDeposit).IsRefused);
        Assert.Equal(1, c.FromAccount);
        var eur = Deposit(currency: Currency.EUR);
        Assert.False(CommandRules.Check(ref eur, Funding, MaxDeposit).IsRefused);
        Assert.Equal(2, eur.FromAccount);
        // Naming it is allowed; any other account, the other currency's funding account included, is not.
        Assert.False(Check(Deposit(from: 1)).IsRefused);
        Assert.Equal(new IngressRefusal(ResultCode.NotAFundingAccount, IngressInput.FromAccount), Check(Deposit(from: 2)));
        Assert.Equal(new IngressRefusal(ResultCode.NotAFundingAccount, IngressInput.FromAccount), Check(Deposit(from: 10)));
        Assert.Equal(new IngressRefusal(ResultCode.InvalidCurrency, IngressInput.Currency), Check(Deposit(currency: Currency.GBP)));
    }

    [Fact]
    public void A_deposit_above_the_maximum_is_refused_and_at_it_is_not()
    {
        Assert.False(Check(Deposit(amount: MaxDeposit)).IsRefused);
        Assert.Equal(new IngressRefusal(ResultCode.DepositLimitExceeded, IngressInput.Amount), Check(Deposit(amount: MaxDeposit + 1)));
        // The amount's validity comes before the currency's, as over HTTP.
        Assert.Equal(ResultCode.InvalidAmount, Check(Deposit(amount: 0, currency: Currency.GBP)).Code);
    }

    [Theory]
    [InlineData(null, IdempotencyKeys.Problem.Missing)]
    [InlineData("", IdempotencyKeys.Problem.Missing)]
    [InlineData("order-42", IdempotencyKeys.Problem.None)]
    [InlineData("caf\u00e9", IdempotencyKeys.Problem.NotAscii)]
    public void Idempotency_key_headers(string? header, IdempotencyKeys.Problem problem)
    {
        Assert.Equal(problem, IdempotencyKeys.TryParse(header, out var key));
        if (problem == IdempotencyKeys.Problem.None) Assert.Equal(IdempotencyKey.FromString(header!), key);
        else Assert.True(key.IsEmpty);
    }

    [Fact]
    public void Idempotency_keys_are_at_most_255_characters_and_a_batch_items_key_is_derived_as_before()
    {
        Assert.Equal(IdempotencyKeys.Problem.None, IdempotencyKeys.TryParse(new string('a', 255), out _));
        Assert.Equal(IdempotencyKeys.Problem.TooLong, IdempotencyKeys.TryParse(new string('a', 256), out _));
        // Journaled keys depend on the derivation: the hash of the batch key's hex, "#" and the index.
        var batch = IdempotencyKey.FromString("batch-1");
        Assert.Equal(IdempotencyKey.FromString(batch.ToString() + "#3"), IdempotencyKeys.ForBatchItem(batch, 3));
        Assert.NotEqual(IdempotencyKeys.ForBatchItem(batch, 3), IdempotencyKeys.ForBatchItem(batch, 4));
    }

    [Theory]
    [InlineData(ResultCode.Ok, 200)]
    [InlineData(ResultCode.InvalidAmount, 400)]
    [InlineData(ResultCode.IdempotencyKeyRequired, 400)]
    [InlineData(ResultCode.InvalidHoldTimeout, 400)]
    [InlineData(ResultCode.NotAccountOwner, 403)]
    [InlineData(ResultCode.AccountNotFound, 404)]
    [InlineData(ResultCode.PaymentNotFound, 404)]
    [InlineData(ResultCode.ExistsWithDifferentAmount, 409)]
    [InlineData(ResultCode.InsufficientFunds, 422)]
    [InlineData(ResultCode.DepositLimitExceeded, 422)]
    [InlineData(ResultCode.NotAFundingAccount, 422)]
    [InlineData(ResultCode.FraudSuspected, 422)]
    [InlineData(ResultCode.TooManyPayments, 503)]
    public void Result_codes_map_to_the_documented_status(ResultCode code, int status)
    {
        Assert.Equal(status, IngressGateway.HttpStatusOf(code));
        Assert.Equal(status, ApiError.StatusOf(code));
    }

    private static (IngressGateway Gateway, EngineHost Engine, string Folder) BareGateway()
    {
        string folder = Path.Combine(Path.GetTempPath(), "rampay-gateway-" + Guid.NewGuid().ToString("N"));
        var engine = new EngineHost(new EngineOptions { DataDirectory = folder }, TimeSpan.FromSeconds(1));
        var platform = new Platform(engine, new ServerOptions(), tokens: null!, tcpLimiter: null!);
        return (platform.Gateway, engine, folder);
    }

    [Fact]
    public void Prepare_makes_the_command_the_callers()
    {
        var (gateway, engine, _) = BareGateway();
        using var __ = engine;
        var c = Transfer() with { ClientId = 99, Flags = 0 };
        Assert.False(gateway.Prepare(ref c, new Caller(7, IsAdmin: false)).IsRefused);
        Assert.Equal(7, c.ClientId);
        Assert.Equal(CommandFlags.OwnerOnly, c.Flags);
        var a = Transfer() with { ClientId = 99, Flags = CommandFlags.OwnerOnly };
        Assert.False(gateway.Prepare(ref a, new Caller(1, IsAdmin: true)).IsRefused);
        Assert.Equal(1, a.ClientId);
        Assert.Equal(0, a.Flags);
    }

    [Fact]
    public async Task Back_pressure_refuses_HTTP_and_holds_TCP_until_it_clears()
    {
        var (gateway, engine, _) = BareGateway();
        using var __ = engine;
        Assert.Null(gateway.BackPressureReason());
        await gateway.WaitWhileBackPressuredAsync(CancellationToken.None); // no lag: returns at once
        string? lag = "postgres is 9000 records behind";
        engine.BackPressure = () => lag;
        var refused = Assert.Throws<BackPressureException>(gateway.ThrowIfBackPressured);
        Assert.Equal(lag, refused.Message);
        // The single-command path refuses before it asks the engine (which is not even started here).
        await Assert.ThrowsAsync<BackPressureException>(() => gateway.ExecuteAsync(Transfer()));
        var waiting = gateway.WaitWhileBackPressuredAsync(CancellationToken.None).AsTask();
        await Task.Delay(50);
        Assert.False(waiting.IsCompleted, "TCP must wait while the sinks lag");
        lag = null;
        await waiting.WaitAsync(TimeSpan.FromSeconds(5));
    }
}
