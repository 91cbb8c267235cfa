using RamPay.Core;
using RamPay.Engine;
using RamPay.Events;
using RamPay.Sinks;

namespace RamPay.Kafka.Tests;

/// <summary>A temporary directory, deleted when the test ends.</summary>
public sealed class TempDir : IDisposable
{
    public TempDir() => Path = Directory.CreateTempSubdirectory("rampay-kafka-").FullName;
    public string Path { get; }
    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

/// <summary>A command and its attachment (a user profile, a payment note), as a host submits it.</summary>
public readonly record struct Submitted(Command Command, byte[]? Attachment = null);

/// <summary>
/// Real change streams: commands go through a real <see cref="RamPayEngine"/> (journal on disk, in a temporary
/// folder), then a real <see cref="LedgerFollower"/> turns that journal into changes, as the server's sinks get them.
/// </summary>
public static class LedgerChanges
{
    public const long StartMs = 1_700_000_000_000;
    public const long StepMs = 7;

    public static LedgerOptions LedgerOptions { get; } = new() { MaxAccounts = 100_000, MaxPayments = 1 << 22, InitialPaymentCapacity = 1 << 12, IdempotencyMaxKeys = 1 << 20 };

    public static Change[] Run(IReadOnlyList<Submitted> commands)
    {
        using var dir = new TempDir();
        long now = StartMs;
        var options = new EngineOptions
        {
            DataDirectory = dir.Path,
            Clock = () => now += StepMs, // the writer thread alone calls it
            Fsync = false,
            SnapshotEveryCommands = 0,
            SnapshotOnStop = false,
            TickIntervalMs = 0,
            Ledger = LedgerOptions,
        };
        using (var engine = RamPayEngine.Start(options))
        {
            foreach (var c in commands) engine.Submit(c.Command, 0, c.Attachment);
            engine.Stop();
            Assert.Null(engine.Fault);
        }
        var changes = new List<Change>(commands.Count + 16);
        using var follower = new LedgerFollower(options.SnapshotDirectory, options.JournalDirectory, options.Ledger, afterSequence: 0);
        while (true)
        {
            var batch = new ChangeBatch(4096);
            if (follower.Poll(commands.Count, 4096, batch) == 0) break;
            changes.AddRange(batch.Changes.ToArray());
        }
        Assert.Equal(commands.Count, follower.LastSequence);
        return [.. changes];
    }

    /// <summary>Splits changes into batches of about <paramref name="size"/> changes, never splitting one record's changes (as the hub does).</summary>
    public static List<(Change[] Changes, SinkCheckpoint Through)> Batches(Change[] changes, int size)
    {
        var batches = new List<(Change[], SinkCheckpoint)>();
        int start = 0;
        while (start < changes.Length)
        {
            int end = Math.Min(changes.Length, start + size);
            while (end < changes.Length && changes[end].Sequence == changes[end - 1].Sequence) end++;
            var last = changes[end - 1];
            batches.Add((changes[start..end], new SinkCheckpoint(last.Sequence, last.TimestampMs)));
            start = end;
        }
        return batches;
    }

    /// <summary>Every event of the changes, in stream order, with the change it came from.</summary>
    public static List<(Change Change, MappedEvent Event)> Events(IEnumerable<Change> changes)
    {
        var list = new List<(Change, MappedEvent)>();
        var events = new MappedEvent[EventMapper.MaxEventsPerChange];
        foreach (var change in changes)
        {
            int n = EventMapper.Map(change, events);
            for (int i = 0; i < n; i++) list.Add((change, events[i]));
        }
        return list;
    }
}

/// <summary>Builds commands with fresh idempotency keys.</summary>
public sealed class CommandBuilder
{
    private long _next;
    public static readonly Currency Usd = Currency.USD;

    public IdempotencyKey NextKey() => IdempotencyKey.FromString("kafka-test-" + ++_next);

    public Submitted Open(AccountFlags flags, long owner = 0) =>
        new(new Command { Type = CommandType.OpenAccount, Flags = (byte)flags, Currency = Usd, ClientId = 1, Key = NextKey(), Argument = owner });

    public Submitted Register(string email, string name, string passwordHash)
    {
        var (command, attachment) = new UserProfile(email, name, passwordHash).ToCommand(UserRole.User, Usd);
        command.ClientId = 1;
        command.Key = NextKey();
        return new(command, attachment);
    }

    public Submitted Move(CommandType type, long from, long to, long amount, long argument = 0, PaymentNote? note = null) =>
        new(new Command { Type = type, Currency = Usd, ClientId = 1, Key = NextKey(), FromAccount = from, ToAccount = to, Amount = amount, Argument = argument }, note?.Encode());

    public Submitted OnPayment(CommandType type, long paymentId, long amount = 0) =>
        new(new Command { Type = type, Currency = Usd, ClientId = 1, Key = NextKey(), PaymentId = paymentId, Amount = amount });

    public Submitted Account(CommandType type, long account) =>
        new(new Command { Type = type, ClientId = 1, Key = NextKey(), FromAccount = account });

    public static Submitted Tick() => new(new Command { Type = CommandType.Tick });

    /// <summary>
    /// A deterministic mixed workload over <paramref name="wallets"/> wallets (accounts 2..) and one funding account
    /// (1): deposits, transfers (some refused), authorizations with short holds (some expire), captures, voids,
    /// refunds, freezes, retries of earlier commands and ticks.
    /// </summary>
    public List<Submitted> Workload(int seed, int wallets, int count)
    {
        var rng = new Random(seed);
        // A shadow ledger, stamped as the engine of LedgerChanges.Run will stamp, tells which payments exist, so that
        // follow-ups (captures, voids, refunds) mostly aim at real ones.
        var shadow = new Ledger(LedgerChanges.LedgerOptions);
        var list = new List<Submitted>();
        var authorizations = new List<long>();
        var settled = new List<long>();
        void Add(Submitted c)
        {
            var command = c.Command;
            command.TimestampMs = LedgerChanges.StartMs + LedgerChanges.StepMs * (list.Count + 1);
            shadow.Apply(command, c.Attachment ?? [], out var result);
            list.Add(c);
            if (!result.IsOk || result.Replayed) return;
            if (command.Type == CommandType.Authorize) authorizations.Add(result.Id);
            else if (command.Type is CommandType.Transfer or CommandType.Deposit) settled.Add(result.Id);
            else if (command.Type == CommandType.Capture) settled.Add(command.PaymentId);
        }
        long Pick(List<long> ids) => ids.Count == 0 ? 1 : ids[Math.Max(0, ids.Count - 1 - rng.Next(60))];

        Add(Open(AccountFlags.Funding));
        for (int i = 0; i < wallets; i++) Add(Register($"user{i}@example.com", $"User {i}", "pbkdf2$" + i));
        long Wallet() => 2 + rng.Next(wallets);
        while (list.Count < count)
        {
            int roll = rng.Next(100);
            if (roll < 20) Add(Move(CommandType.Deposit, 1, Wallet(), rng.Next(1, 10_000)));
            else if (roll < 50) Add(Move(CommandType.Transfer, Wallet(), Wallet(), rng.Next(1, 3_000)));
            else if (roll < 65) Add(Move(CommandType.Authorize, Wallet(), Wallet(), rng.Next(1, 3_000), argument: rng.Next(1, 500)));
            else if (roll < 75) Add(OnPayment(CommandType.Capture, Pick(authorizations), rng.Next(0, 2_000)));
            else if (roll < 80) Add(OnPayment(CommandType.Void, Pick(authorizations)));
            else if (roll < 88) Add(OnPayment(CommandType.Refund, Pick(settled), rng.Next(1, 1_000)));
            else if (roll < 90) Add(Account(rng.Next(3) == 0 ? CommandType.Freeze : CommandType.Unfreeze, Wallet()));
            else if (roll < 95) Add(list[rng.Next(1, list.Count)]); // a retry: same key and body
            else Add(Tick());
        }
        return list;
    }
}

/// <summary>
/// One of every event, from real commands. The comments give each command's journal sequence; accounts: 1 funding,
/// 2 alice's wallet, 3 bob's; payments are numbered as the ledger makes them.
/// </summary>
public static class Scenario
{
    public const string AlicePasswordHash = "pbkdf2-sha256$100000$c2FsdA$secret-alice-hash";

    public static List<Submitted> Commands()
    {
        var b = new CommandBuilder();
        var list = new List<Submitted>
        {
            b.Open(AccountFlags.Funding),                                                   // 1  account 1
            b.Register("alice@example.com", "Alice Ånström", AlicePasswordHash),            // 2  user 1, wallet 2
            b.Register("bob@example.com", "Bob", "pbkdf2-sha256$100000$c2FsdA$secret-bob"), // 3  user 2, wallet 3
            b.Move(CommandType.Deposit, 1, 2, 10_000),                                      // 4  payment 1
            b.Move(CommandType.Deposit, 1, 3, 5_000),                                       // 5  payment 2
        };
        var transfer = b.Move(CommandType.Transfer, 2, 3, 1_000, note: new PaymentNote("Rent \"March\"", "https://example.com/hook"));
        list.Add(transfer);                                                                 // 6  payment 3
        list.Add(b.Move(CommandType.Transfer, 2, 3, 1_000_000));                            // 7  insufficient_funds
        list.Add(b.Move(CommandType.Authorize, 2, 3, 500, argument: 60_000));               // 8  payment 4
        list.Add(b.OnPayment(CommandType.Capture, 4, 300));                                 // 9
        list.Add(b.Move(CommandType.Authorize, 3, 2, 200));                                 // 10 payment 5
        list.Add(b.OnPayment(CommandType.Void, 5));                                         // 11
        list.Add(b.Move(CommandType.Authorize, 2, 3, 100, argument: 10));                   // 12 payment 6, a 10 ms hold
        list.Add(b.OnPayment(CommandType.Refund, 3, 400));                                  // 13 refund: payment 7
        list.Add(b.Account(CommandType.Freeze, 3));                                         // 14 payment 6 expired first
        list.Add(b.Move(CommandType.Transfer, 2, 3, 10));                                   // 15 account_frozen
        list.Add(b.Account(CommandType.Unfreeze, 3));                                       // 16
        list.Add(transfer);                                                                 // 17 replayed
        list.Add(transfer with { Command = transfer.Command with { Amount = 999 } });      // 18 exists_with_different_amount
        list.Add(b.OnPayment(CommandType.Capture, 999, 1));                                 // 19 payment_not_found
        list.Add(CommandBuilder.Tick());                                                    // 20
        list.Add(b.Move(CommandType.Deposit, 2, 3, 50));                                    // 21 not_a_funding_account
        return list;
    }

    /// <summary>RewardIssued and RewardReversed from real commands: funding 1, alice 2 (user 1) funded, bob 3 (user 2), rewards account 4 topped up, rule 1 (10 %): alice pays bob, a reward, a refund, a reversal.</summary>
    public static List<Submitted> RewardCommands()
    {
        var b = new CommandBuilder();
        var terms = new RewardRuleTerms("ten", 1_000, CommandBuilder.Usd, 0, 0, 0, 0, 0, []).Encode();
        return
        [
            b.Open(AccountFlags.Funding),
            b.Open(AccountFlags.DebitsMustNotExceedCredits, owner: 1),
            b.Open(AccountFlags.DebitsMustNotExceedCredits, owner: 2),
            new(new Command { Type = CommandType.OpenRewardsAccount, Currency = CommandBuilder.Usd, ClientId = 1, Key = b.NextKey() }),
            b.Move(CommandType.Deposit, 1, 2, 10_000),
            b.Move(CommandType.Deposit, 1, 4, 5_000),
            new(new Command { Type = CommandType.DefineRewardRule, ClientId = 1, Key = b.NextKey(), Amount = RewardRuleTerms.Digest(terms) }, terms),
            b.Move(CommandType.Transfer, 2, 3, 4_000), // payment 3
            new(new Command { Type = CommandType.IssueReward, ClientId = 1, Key = b.NextKey(), PaymentId = 3, Argument = 1 }),
            new(new Command { Type = CommandType.IssueReward, ClientId = 1, Key = b.NextKey(), PaymentId = 3, Argument = 1 }), // refused: reward_exists
            b.OnPayment(CommandType.Refund, 3, 1_000),
            new(new Command { Type = CommandType.ReverseReward, ClientId = 1, Key = b.NextKey(), PaymentId = 3, Argument = 1 }),
        ];
    }

    /// <summary>What <see cref="Commands"/> gives: (sequence, index, type, key, reason) of every event, in order.</summary>
    public static readonly (long Sequence, int Index, EventType Type, long Key, string? Reason)[] Expected =
    [
        (2, 0, EventType.UserRegistered, 2, null),
        (3, 0, EventType.UserRegistered, 3, null),
        (4, 0, EventType.PaymentCreated, 2, null),
        (4, 0, EventType.PaymentApproved, 2, null),
        (5, 0, EventType.PaymentCreated, 3, null),
        (5, 0, EventType.PaymentApproved, 3, null),
        (6, 0, EventType.PaymentCreated, 2, null),
        (6, 0, EventType.PaymentApproved, 2, null),
        (7, 0, EventType.PaymentFailed, 2, "insufficient_funds"),
        (8, 0, EventType.PaymentCreated, 2, null),
        (8, 0, EventType.PaymentAuthorized, 2, null),
        (9, 0, EventType.PaymentCaptured, 2, null),
        (10, 0, EventType.PaymentCreated, 3, null),
        (10, 0, EventType.PaymentAuthorized, 3, null),
        (11, 0, EventType.PaymentVoided, 3, "requested"),
        (12, 0, EventType.PaymentCreated, 2, null),
        (12, 0, EventType.PaymentAuthorized, 2, null),
        (13, 0, EventType.PaymentRefunded, 2, null),
        (14, 0, EventType.PaymentVoided, 2, "expired"),
        (14, 1, EventType.AccountFrozen, 3, null),
        (15, 0, EventType.PaymentFailed, 2, "account_frozen"),
        (16, 0, EventType.AccountUnfrozen, 3, null),
        (21, 0, EventType.PaymentFailed, 3, "not_a_funding_account"),
    ];
}
