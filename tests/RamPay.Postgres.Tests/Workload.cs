using RamPay.Core;

namespace RamPay.Postgres.Tests;

/// <summary>One step of a scripted run: a command (with its attachment), submitted after moving the engine clock forward.</summary>
public readonly record struct Step(Command Command, byte[]? Attachment = null, long AdvanceMs = 0);

/// <summary>Builds commands with fresh idempotency keys (unless a test reuses one on purpose).</summary>
public sealed class Commands(string prefix = "k")
{
    public const long SystemClient = 1;
    private long _next;

    public IdempotencyKey NextKey() => IdempotencyKey.FromString($"{prefix}-{Interlocked.Increment(ref _next)}");

    public Command Open(AccountFlags flags, Currency currency, long owner = 0) => new()
    {
        Type = CommandType.OpenAccount, Flags = (byte)flags, Currency = currency, ClientId = SystemClient, Key = NextKey(), Argument = owner,
    };

    public (Command Command, byte[] Attachment) Register(string email, string name, Currency currency, UserRole role = UserRole.User)
    {
        var (command, attachment) = new UserProfile(email, name, "pbkdf2-sha256$1000$c2FsdA$aGFzaA").ToCommand(role, currency);
        command.ClientId = SystemClient;
        command.Key = NextKey();
        return (command, attachment);
    }

    public Command Move(CommandType type, long from, long to, long amount, Currency currency, long holdMs = 0) => new()
    {
        Type = type, Currency = currency, ClientId = SystemClient, Key = NextKey(), FromAccount = from, ToAccount = to, Amount = amount, Argument = holdMs,
    };

    public Command OnPayment(CommandType type, long paymentId, long amount = 0) => new()
    {
        Type = type, ClientId = SystemClient, Key = NextKey(), PaymentId = paymentId, Amount = amount,
    };

    public Command SetFrozen(long account, bool frozen) => new()
    {
        Type = frozen ? CommandType.Freeze : CommandType.Unfreeze, ClientId = SystemClient, Key = NextKey(), FromAccount = account,
    };

    public static Command Tick() => new() { Type = CommandType.Tick };

    public static byte[] Note(string? description, string? webhook) => new PaymentNote(description, webhook).Encode();
}

/// <summary>
/// Seeded random command streams over every command type: users registered (and e-mails taken twice), accounts in
/// two currencies (so some movements mismatch), deposits, transfers (some for more than the balance), holds with
/// short timeouts and jumps of the clock (so Ticks and later commands expire them), captures (full and partial),
/// voids, refunds (partial, repeated, too large), freezes, notes, retries with the same key (replays) and keys
/// reused for another body (conflicts). A shadow ledger, stamped with the times <see cref="EngineRun"/>'s clock will
/// give, picks live holds to capture or void and settled payments to refund, so the stream reaches those paths.
/// </summary>
public static class RandomWorkload
{
    public static List<Step> Build(int seed, int count)
    {
        var rng = new Random(seed);
        var c = new Commands($"seed{seed}");
        var steps = new List<Step>();
        var shadow = new Ledger(EngineRun.LedgerOptions);
        long now = EngineRun.StartClockMs;
        var accounts = new List<(long Id, Currency Currency)>();
        var emails = new List<string>();
        var holds = new List<long>();
        var settled = new List<long>();

        CommandResult Add(in Command command, byte[]? attachment = null, long advanceMs = 0)
        {
            now += advanceMs + 1;
            var stamped = command;
            stamped.TimestampMs = now;
            shadow.Apply(stamped, attachment ?? [], out var result);
            steps.Add(new Step(command, attachment, advanceMs));
            if (result is { Code: ResultCode.Ok, Replayed: false })
            {
                switch (command.Type)
                {
                    case CommandType.OpenAccount: accounts.Add((result.Id, command.Currency)); break;
                    case CommandType.RegisterUser: accounts.Add((result.SecondaryId, command.Currency)); break;
                    case CommandType.Authorize: holds.Add(result.Id); break;
                    case CommandType.Transfer: settled.Add(result.Id); break;
                    case CommandType.Capture: settled.Add(result.Id); break;
                }
            }
            return result;
        }
        void Register(Currency currency)
        {
            string email = $"user{emails.Count}-{seed}@example.com";
            var (command, attachment) = c.Register(email, $"User {emails.Count}", currency);
            emails.Add(email);
            Add(command, attachment);
        }

        Add(c.Open(AccountFlags.Funding, Currency.USD)); // 1
        Add(c.Open(AccountFlags.Funding, Currency.EUR)); // 2
        for (int i = 0; i < 8; i++) Register(i % 4 == 3 ? Currency.EUR : Currency.USD);
        (long Id, Currency Currency) Wallet() => accounts[2 + rng.Next(accounts.Count - 2)];
        long AnyPayment() => 1 + rng.NextInt64(Math.Max(1, shadow.PaymentCount + 2));
        long LiveHold()
        {
            // A hold still open, mostly; now and then any payment (not found, not an authorization, expired...).
            for (int tries = 0; tries < 8 && holds.Count > 0 && rng.Next(8) != 0; tries++)
            {
                long id = holds[Math.Max(0, holds.Count - 1 - rng.Next(Math.Min(holds.Count, 30)))];
                if (shadow.GetPayment(id).Status == PaymentStatus.Authorized) return id;
            }
            return AnyPayment();
        }
        byte[]? MaybeNote() => rng.Next(4) == 0 ? Commands.Note($"order {rng.Next(1000)}", rng.Next(2) == 0 ? $"https://shop.example/hooks/{rng.Next(100)}" : null) : null;

        while (steps.Count < count)
        {
            int roll = rng.Next(1000);
            long advance = rng.Next(25) == 0 ? rng.Next(1, 3_000) : 0;
            if (roll < 150)
            {
                var to = Wallet();
                long funding = to.Currency == Currency.EUR ? 2 : 1;
                if (rng.Next(20) == 0) funding = 3 - funding; // a currency mismatch
                Add(c.Move(CommandType.Deposit, funding, to.Id, rng.Next(1, 20_000), to.Currency), null, advance);
            }
            else if (roll < 420)
            {
                var from = Wallet();
                var to = Wallet();
                long amount = rng.Next(10) == 0 ? rng.Next(20_000, 100_000) : rng.Next(1, 3_000); // some for more than the balance
                Add(c.Move(CommandType.Transfer, from.Id, to.Id, amount, from.Currency), MaybeNote(), advance);
            }
            else if (roll < 560)
            {
                var from = Wallet();
                var to = Wallet();
                long hold = rng.Next(3) == 0 ? 0 : rng.Next(500, 10_000);
                Add(c.Move(CommandType.Authorize, from.Id, to.Id, rng.Next(1, 3_000), from.Currency, hold), MaybeNote(), advance);
            }
            else if (roll < 650)
            {
                long id = LiveHold();
                long authorized = shadow.PaymentExists(id) ? shadow.GetPayment(id).Amount : 1_000;
                long amount = rng.Next(4) switch { 0 => 0, 1 => authorized + 1, _ => 1 + rng.NextInt64(authorized) }; // all, too much, part
                Add(c.OnPayment(CommandType.Capture, id, amount), null, advance);
            }
            else if (roll < 700)
            {
                Add(c.OnPayment(CommandType.Void, LiveHold()), null, advance);
            }
            else if (roll < 800)
            {
                long id = settled.Count > 0 && rng.Next(6) != 0 ? settled[rng.Next(settled.Count)] : AnyPayment();
                long left = shadow.PaymentExists(id) ? Math.Max(1, shadow.GetPayment(id).Captured - shadow.GetPayment(id).Refunded) : 1_000;
                long amount = rng.Next(5) == 0 ? left + 1 : 1 + rng.NextInt64(Math.Max(1, left / 2)); // too much, or part of what is left
                Add(c.OnPayment(CommandType.Refund, id, amount), null, advance);
            }
            else if (roll < 825)
            {
                Add(c.SetFrozen(Wallet().Id, rng.Next(3) != 0), null, advance);
            }
            else if (roll < 840)
            {
                if (rng.Next(4) == 0)
                {
                    // An e-mail taken before: refused, no user, no wallet.
                    var (command, attachment) = c.Register(emails[rng.Next(emails.Count)], "Again", Currency.USD);
                    Add(command, attachment, advance);
                }
                else
                {
                    Register(rng.Next(4) == 0 ? Currency.EUR : Currency.USD);
                }
            }
            else if (roll < 850)
            {
                Add(c.Open(AccountFlags.DebitsMustNotExceedCredits, rng.Next(4) == 0 ? Currency.EUR : Currency.USD, owner: 1 + rng.Next(emails.Count)), null, advance);
            }
            else if (roll < 930 && steps.Count > 20)
            {
                // A retry: the same key and body (and attachment), replayed; sometimes the key for another amount, a conflict.
                var earlier = steps[rng.Next(steps.Count)];
                if (earlier.Command.Type == CommandType.Tick) continue;
                var command = earlier.Command;
                if (rng.Next(5) == 0 && command.Type is CommandType.Transfer or CommandType.Deposit) command.Amount += 1;
                Add(command, earlier.Attachment, advance);
            }
            else
            {
                Add(Commands.Tick(), null, rng.Next(2) == 0 ? rng.Next(1, 5_000) : 0);
            }
        }
        return steps;
    }

    /// <summary>Submits the steps to the engine in order, moving its clock before each as the step says; waits for the last.</summary>
    public static void Run(EngineRun run, IEnumerable<Step> steps)
    {
        long ticket = -1;
        foreach (var step in steps)
        {
            if (step.AdvanceMs > 0) run.AdvanceClock(step.AdvanceMs);
            ticket = run.Engine.Submit(step.Command, 0, step.Attachment);
        }
        if (ticket >= 0 && !run.Engine.WaitForCompletion(ticket, TimeSpan.FromSeconds(60))) throw new TimeoutException("the engine did not complete the workload within 60 s");
    }
}
