using FsCheck;
using FsCheck.Fluent;
using Microsoft.FSharp.Core;

namespace RamPay.Core.Tests;

/// <summary>
/// One random step, interpreted by <see cref="Script.Build"/> into a command (shrinking drops ops).
/// </summary>
public readonly record struct Op(int Kind, int A, int B, int AmountSel, int KeySel, int TimeSel, int Rand);

/// <summary>Turns random ops into a command script over a fixed small world, with bogus ids, repeated keys and time jumps.</summary>
internal static class Script
{
    public static readonly Currency Usd = Currency.USD, Eur = Currency.EUR;

    /// <summary>Limits small enough that the random walk hits them: holds, key eviction, window, hold expiry.</summary>
    public static LedgerOptions Options => new()
    {
        MaxAccounts = 16,
        MaxPayments = 1 << 16,
        InitialPaymentCapacity = 0,
        MaxOpenHolds = 3,
        DefaultHoldTimeoutMs = 20_000,
        IdempotencyWindowMs = 5_000,
        IdempotencyMaxKeys = 40,
    };

    // Account ids of the fixed prefix (opened in this order): currency and kind of each.
    public const long FundUsd = 1, FundEur = 2;
    private static readonly Currency[] AccountCurrency = [default, Usd, Eur, Usd, Usd, Usd, Eur, Eur, Usd];
    public static readonly long[] Wallets = [3, 4, 5, 6, 7];
    private const int Accounts = 8;
    private const long T0 = 1_000_000;

    public static Command[] Prefix()
    {
        var cmds = new List<Command>
        {
            Cmd.Open(AccountFlags.Funding, Usd),
            Cmd.Open(AccountFlags.Funding, Eur),
            Cmd.Open(AccountFlags.DebitsMustNotExceedCredits, Usd),
            Cmd.Open(AccountFlags.DebitsMustNotExceedCredits, Usd),
            Cmd.Open(AccountFlags.DebitsMustNotExceedCredits, Usd),
            Cmd.Open(AccountFlags.DebitsMustNotExceedCredits, Eur),
            Cmd.Open(AccountFlags.DebitsMustNotExceedCredits, Eur),
            Cmd.Open(AccountFlags.None, Usd),
            Cmd.Deposit(FundUsd, 3, 1_000, Usd),
            Cmd.Deposit(FundUsd, 4, 500, Usd),
            Cmd.Deposit(FundEur, 6, 800, Eur),
        };
        return cmds.Select((c, i) => c.WithKey("setup-" + i).At(T0).By(1)).ToArray();
    }

    /// <summary>
    /// Builds the script while applying it to <paramref name="driver"/>: payment ids are picked among the ones the
    /// driver actually created (and some bogus ones), so captures, voids and refunds hit real authorizations.
    /// The commands returned are then fixed: applying them to another fresh ledger must give the same results.
    /// </summary>
    public static (Command[] Commands, CommandResult[] Results) Build(Op[] ops, Ledger driver, Action<Command, CommandResult, int>? afterEach = null)
    {
        var commands = new List<Command>();
        var results = new List<CommandResult>();
        var payments = new List<long>();
        var auths = new List<long>();
        void Apply(in Command c)
        {
            driver.Apply(in c, out var r);
            commands.Add(c);
            results.Add(r);
            afterEach?.Invoke(c, r, commands.Count - 1);
            if (r.IsOk && !r.Replayed && c.Type is CommandType.Deposit or CommandType.Transfer or CommandType.Authorize or CommandType.Refund)
            {
                payments.Add(r.Id);
                if (c.Type == CommandType.Authorize) auths.Add(r.Id);
            }
        }

        foreach (var c in Prefix()) Apply(c);
        var keyed = new List<Command>(); // commands that carried a key, for replays and key reuse
        long clock = T0;
        for (int i = 0; i < ops.Length; i++)
        {
            var op = ops[i];
            clock += (op.TimeSel & 15) switch { 12 => 1, 13 => 100, 14 => 2_000, 15 => 6_000, _ => 0 };
            long ts = (op.TimeSel & 16) != 0 ? clock - 500 : clock; // now and then a stale timestamp
            long client = (op.KeySel & 16) != 0 ? 2 : 1;
            int keyMode = (op.KeySel & 15) % 10;

            if (keyMode == 3 && keyed.Count > 0)
            {
                // The very same command again: a replay while its key is remembered.
                Apply(keyed[op.Rand % keyed.Count] with { TimestampMs = ts });
                continue;
            }

            long payment = (op.Rand % 4) switch
            {
                0 => op.Rand / 4 % (payments.Count + 4) - 1, // -1, 0, real ones, and a couple past the end
                1 when payments.Count > 0 => payments[op.Rand / 4 % payments.Count],
                _ when auths.Count > 0 => auths[auths.Count - 1 - op.Rand / 4 % Math.Min(4, auths.Count)],
                _ => 1,
            };
            var body = Body(op, payment);
            body.TimestampMs = ts;
            body.ClientId = client;
            if (body.Type != CommandType.Tick && keyMode != 0)
            {
                if (keyMode is 1 or 2 && keyed.Count > 0)
                {
                    var old = keyed[op.Rand % keyed.Count];
                    body.Key = old.Key; // same key, probably a different body: a conflict, or a new command once forgotten
                    body.ClientId = old.ClientId;
                }
                else
                {
                    body.Key = IdempotencyKey.FromString("op-" + i.ToString(System.Globalization.CultureInfo.InvariantCulture));
                }
                keyed.Add(body);
            }
            Apply(body); // keyMode 0: no key, idempotency_key_required
        }
        return (commands.ToArray(), results.ToArray());
    }

    private static long Account(int sel) => (sel % 12) switch
    {
        0 => 0,      // bogus
        9 => 99,     // bogus
        10 or 11 => Wallets[sel / 12 % Wallets.Length],
        var n => n,  // 1..8
    };

    private static Currency CurrencyFor(long account, int sel) => (sel % 16) switch
    {
        0 => Currency.GBP,
        1 => Currency.None,
        2 => Eur,
        _ => account >= 1 && account <= Accounts ? AccountCurrency[account] : Usd,
    };

    private static long Amount(int sel, int rand) => (sel % 16) switch
    {
        0 => 0,
        1 => -5,
        2 or 3 => 1_000 + rand % 5_000,
        15 => long.MaxValue / 2, // one can pass, a second overflows
        _ => 1 + rand % 300,
    };

    private static Command Body(Op op, long payment)
    {
        long a = Account(op.A), b = Account(op.B);
        switch (op.Kind % 16)
        {
            case 0:
                long from = op.A % 5 == 0 ? a : (op.A % 2 == 0 ? FundUsd : FundEur);
                return Cmd.Deposit(from, b, Amount(op.AmountSel, op.Rand), CurrencyFor(from, op.B));
            case 1: case 2: case 3:
                return Cmd.Transfer(a, b, Amount(op.AmountSel, op.Rand), CurrencyFor(a, op.B));
            case 4: case 5: case 6: case 7:
                long timeout = (op.B % 4) switch { 0 => 0, 1 => 50, 2 => 500, _ => 60_000 };
                return Cmd.Authorize(a, b, Amount(op.AmountSel, op.Rand), CurrencyFor(a, op.B), timeout);
            case 8: case 9:
                long amount = (op.AmountSel % 4) switch { 0 => 0, 1 => 1 + op.Rand % 200, 2 => 300 + op.Rand % 100, _ => Amount(op.AmountSel, op.Rand) };
                return Cmd.Capture(payment, amount, op.B % 3 == 0 ? CurrencyFor(a, op.B) : default);
            case 10:
                return Cmd.Void(payment);
            case 11: case 12:
                return Cmd.Refund(payment, Amount(op.AmountSel, op.Rand), CurrencyFor(a, op.B));
            case 13:
                return op.B % 3 == 0 ? Cmd.Freeze(a) : Cmd.Unfreeze(a);
            default:
                return Cmd.Tick(0);
        }
    }

    public static readonly Gen<Op> OpGen =
        from kind in Gen.Choose(0, 15)
        from a in Gen.Choose(0, 1_000)
        from b in Gen.Choose(0, 1_000)
        from amount in Gen.Choose(0, 1_000)
        from key in Gen.Choose(0, 31)
        from time in Gen.Choose(0, 31)
        from rand in Gen.Choose(0, 1_000_000)
        select new Op(kind, a, b, amount, key, time, rand);

    /// <summary>Sequences of 0..maxLength ops; shrinks by dropping halves and single ops.</summary>
    public static Arbitrary<Op[]> Ops(int maxLength) =>
        Arb.From(Gen.Choose(0, maxLength).SelectMany(n => Gen.ArrayOf(OpGen, n)), Shrink);

    private static IEnumerable<Op[]> Shrink(Op[] ops)
    {
        if (ops.Length == 0) yield break;
        yield return ops[..(ops.Length / 2)];
        yield return ops[(ops.Length / 2)..];
        for (int i = 0; i < ops.Length; i++) yield return [.. ops[..i], .. ops[(i + 1)..]];
    }

    /// <summary>Fixed seed: the same cases run every time; a failure prints the shrunk ops.</summary>
    public static Config Config(int maxTest, ulong seed) =>
        FsCheck.Config.QuickThrowOnFailure
            .WithMaxTest(maxTest)
            .WithQuietOnSuccess(true)
            .WithReplay(FSharpOption<Replay>.Some(new Replay(new Rnd(seed, 0x9E3779B97F4A7C15UL), FSharpOption<int>.None)));

    public static CommandResult[] ApplyAll(Ledger ledger, IEnumerable<Command> commands) =>
        commands.Select(c => c.ApplyTo(ledger)).ToArray();
}

public class PropertyTests
{
    private static void CheckStep(Ledger l, in Command c, in CommandResult r, int step)
    {
        string where = $"step {step} ({c.Type} from={c.FromAccount} to={c.ToAccount} pay={c.PaymentId} amount={c.Amount}) -> {r}";
        Assert.False(ResultCodes.Name(r.Code).StartsWith("unknown_", StringComparison.Ordinal), where);
        Assert.True(l.TotalDebitsPosted == l.TotalCreditsPosted, where);
        Assert.True(l.TotalDebitsPending == l.TotalCreditsPending, where);
        l.VerifyInvariants();
        for (long id = 1; id <= l.AccountCount; id++)
        {
            var a = l.GetAccount(id);
            if (a.IsWallet) Assert.True(a.Available >= 0 && a.Posted >= 0, $"{where}: wallet {id} at {a.Posted} available {a.Available}");
        }
        if (!r.IsOk) Assert.True(r.Id == 0, where);
        if (c.Type == CommandType.Tick) Assert.True(r.IsOk && !r.Replayed, where);
        if (c.Type != CommandType.Tick && c.Key.IsEmpty) Assert.True(r.Code == ResultCode.IdempotencyKeyRequired, where);
    }

    [Fact]
    public void Random_command_sequences_keep_every_invariant_after_every_command()
    {
        var seen = new HashSet<ResultCode>();
        int runs = 0, maxOpenHolds = 0;
        Prop.ForAll(Script.Ops(250), ops =>
        {
            runs++;
            var ledger = new Ledger(Script.Options);
            Script.Build(ops, ledger, (c, r, step) =>
            {
                CheckStep(ledger, c, r, step);
                seen.Add(r.Code);
                maxOpenHolds = Math.Max(maxOpenHolds, ledger.OpenHoldCount);
            });
        }).Check(Script.Config(120, seed: 0xC0FFEE));
        Assert.Equal(120, runs);
        Assert.Equal(Script.Options.MaxOpenHolds, maxOpenHolds);

        // The generator must actually reach the interesting outcomes, or the property proves little.
        Assert.Empty(new[]
                 {
                     ResultCode.Ok, ResultCode.InvalidAmount, ResultCode.InvalidCurrency, ResultCode.IdempotencyKeyRequired,
                     ResultCode.SameAccount, ResultCode.AccountNotFound, ResultCode.AccountFrozen, ResultCode.CurrencyMismatch,
                     ResultCode.InsufficientFunds, ResultCode.NotAFundingAccount, ResultCode.PaymentNotFound,
                     ResultCode.PaymentNotAuthorized, ResultCode.HoldExpired, ResultCode.AmountExceedsAuthorized,
                     ResultCode.AmountExceedsCaptured, ResultCode.PaymentNotCaptured, ResultCode.TooManyHolds, ResultCode.Overflow,
                     ResultCode.ExistsWithDifferentType, ResultCode.ExistsWithDifferentAmount,
                 }.Where(c => !seen.Contains(c)).Select(ResultCodes.Name));
    }

    [Fact]
    public void Every_command_applied_twice_is_replayed_the_second_time_without_state_change()
    {
        Prop.ForAll(Script.Ops(150), ops =>
        {
            var (commands, results) = Script.Build(ops, new Ledger(Script.Options));
            var twice = new Ledger(Script.Options);
            for (int i = 0; i < commands.Length; i++)
            {
                var c = commands[i];
                var first = c.ApplyTo(twice);
                Assert.Equal(results[i], first);
                var view = LedgerView.Of(twice);
                var second = c.ApplyTo(twice);
                if (c.Type == CommandType.Tick || c.Key.IsEmpty || first.Code >= ResultCode.ExistsWithDifferentType)
                    Assert.Equal(first, second); // not remembered: the same outcome again
                else
                    Assert.Equal(first with { Replayed = true }, second);
                Assert.Equal(view, LedgerView.Of(twice));
            }
            twice.VerifyInvariants();
        }).Check(Script.Config(60, seed: 0xBEEF));
    }

    [Fact]
    public void The_same_commands_on_two_fresh_ledgers_give_the_same_results_and_state()
    {
        Prop.ForAll(Script.Ops(250), ops =>
        {
            var a = new Ledger(Script.Options);
            var (commands, results) = Script.Build(ops, a);
            var b = new Ledger(Script.Options);
            Assert.Equal(results, Script.ApplyAll(b, commands));
            Assert.Equal(StateBytes.Write(a), StateBytes.Write(b));
            Assert.Equal(StateBytes.Hash(a), StateBytes.Hash(b));
            Assert.Equal(a.ComputeStateHash(), b.ComputeStateHash());
        }).Check(Script.Config(60, seed: 0xD5EED));
    }

    [Fact]
    public void Snapshot_at_any_point_then_the_same_further_commands_give_the_same_state()
    {
        var splitAndOps = Arb.From(
            from ops in Script.Ops(200).Generator
            from split in Gen.Choose(0, ops.Length)
            select (split, ops));
        Prop.ForAll(splitAndOps, input =>
        {
            var (split, ops) = input;
            int at = Script.Prefix().Length + split;
            var (commands, _) = Script.Build(ops, new Ledger(Script.Options));
            var original = new Ledger(Script.Options);
            Script.ApplyAll(original, commands[..at]);

            var bytes = StateBytes.Write(original);
            var restored = StateBytes.Read(bytes, Script.Options);
            Assert.Equal(bytes, StateBytes.Write(restored));
            Assert.Equal(StateBytes.Hash(original), StateBytes.Hash(restored));

            var rest = commands[at..];
            Assert.Equal(Script.ApplyAll(original, rest), Script.ApplyAll(restored, rest));
            Assert.Equal(StateBytes.Hash(original), StateBytes.Hash(restored));
            Assert.Equal(StateBytes.Write(original), StateBytes.Write(restored));
            Assert.Equal(original.ComputeStateHash(), restored.ComputeStateHash());
            restored.VerifyInvariants();
        }).Check(Script.Config(60, seed: 0x5EA1));
    }

    // ---------------------------------------------------------------- model-based: deposits and transfers

    /// <summary>A reference model of the spec for one-phase money movement, written independently of the ledger.</summary>
    private sealed class Model
    {
        private readonly Dictionary<long, (Currency Currency, AccountFlags Flags)> _accounts = new();
        public readonly Dictionary<long, long> Balance = new();

        public void Open(long id, Currency currency, AccountFlags flags)
        {
            _accounts[id] = (currency, flags);
            Balance[id] = 0;
        }

        public ResultCode Apply(CommandType type, long from, long to, long amount, Currency currency)
        {
            // The ledger asks whether a deposit's source may fund at all before anything else about the movement.
            if (type == CommandType.Deposit && _accounts.TryGetValue(from, out var source) && (source.Flags & AccountFlags.Funding) == 0)
                return ResultCode.NotAFundingAccount;
            if (amount <= 0) return ResultCode.InvalidAmount;
            if (currency.IsNone) return ResultCode.InvalidCurrency;
            if (!_accounts.TryGetValue(from, out var f) || !_accounts.TryGetValue(to, out var t)) return ResultCode.AccountNotFound;
            if (from == to) return ResultCode.SameAccount;
            if (f.Currency != currency || t.Currency != currency) return ResultCode.CurrencyMismatch;
            if ((f.Flags & AccountFlags.DebitsMustNotExceedCredits) != 0 && Balance[from] < amount) return ResultCode.InsufficientFunds;
            // Overflow: no account's debits or credits may pass long.MaxValue (amounts here stay far below it).
            Balance[from] -= amount;
            Balance[to] += amount;
            return ResultCode.Ok;
        }
    }

    public readonly record struct MoneyOp(bool Deposit, int From, int To, int Amount, int CurrencySel);

    [Fact]
    public void Deposits_and_transfers_match_a_reference_model()
    {
        var gen =
            from deposit in Gen.Elements(true, false, false)
            from f in Gen.Choose(0, 7)
            from t in Gen.Choose(0, 7)
            from amount in Gen.Frequency((1, Gen.Choose(-3, 0)), (8, Gen.Choose(1, 400)), (1, Gen.Choose(400, 5_000)))
            from cur in Gen.Choose(0, 9)
            select new MoneyOp(deposit, f, t, amount, cur);
        var ops = Arb.From(Gen.Choose(0, 300).SelectMany(n => Gen.ArrayOf(gen, n)));

        Prop.ForAll(ops, moneyOps =>
        {
            var t = new TestLedger(Script.Options);
            var model = new Model();
            (Currency, AccountFlags)[] accounts =
            [
                (Script.Usd, AccountFlags.Funding), (Script.Eur, AccountFlags.Funding),
                (Script.Usd, AccountFlags.DebitsMustNotExceedCredits), (Script.Usd, AccountFlags.DebitsMustNotExceedCredits),
                (Script.Eur, AccountFlags.DebitsMustNotExceedCredits), (Script.Usd, AccountFlags.None),
            ];
            foreach (var (currency, flags) in accounts)
            {
                long id = t.Ok(Cmd.Open(flags, currency));
                model.Open(id, currency, flags);
            }
            foreach (var op in moneyOps)
            {
                // 0 and 7 are bogus ids; the currency usually matches the payer's.
                var currency = op.CurrencySel switch
                {
                    0 => Currency.None,
                    1 => Currency.GBP,
                    2 => Script.Usd,
                    3 => Script.Eur,
                    _ => op.From is >= 1 and <= 6 ? accounts[op.From - 1].Item1 : Script.Usd,
                };
                var type = op.Deposit ? CommandType.Deposit : CommandType.Transfer;
                var expected = model.Apply(type, op.From, op.To, op.Amount, currency);
                var body = op.Deposit ? Cmd.Deposit(op.From, op.To, op.Amount, currency) : Cmd.Transfer(op.From, op.To, op.Amount, currency);
                var r = t.Run(body);
                Assert.Equal(ResultCodes.Name(expected), ResultCodes.Name(r.Code));
                foreach (var (id, balance) in model.Balance)
                    Assert.Equal(balance, t.Posted(id));
            }
        }).Check(Script.Config(100, seed: 0xA11CE));
    }
}

internal static class PropertyExtensions
{
    public static void Check(this Property property, Config config) => FsCheck.Check.One(config, property);
}
