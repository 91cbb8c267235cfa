using BenchmarkDotNet.Attributes;
using RamPay.Core;

namespace RamPay.Benchmarks;

/// <summary>
/// The business logic on one thread: <see cref="Ledger.Apply"/> of one-phase transfers between 10,000 funded
/// wallets, each with its own idempotency key (a lookup that misses, then an insert), and the same commands again
/// (a lookup that hits: the stored result is returned). Time and allocation are per command.
/// The ledger is rebuilt before each iteration so that every iteration sees the same state.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
[SimpleJob(launchCount: 1, warmupCount: 2, iterationCount: 9, invocationCount: 1)]
public class LedgerApplyBenchmarks
{
    public const int Commands = 1_000_000;
    private const int Wallets = 10_000;
    private Command[] _transfers = [];
    private Ledger _ledger = null!;

    [GlobalSetup]
    public void GlobalSetup() => _transfers = LedgerWorkload.Transfers(Commands, Wallets, seed: 42);

    [IterationSetup(Target = nameof(TransferWithNewKey))]
    public void FreshLedger() => _ledger = LedgerWorkload.FundedLedger(Wallets, Commands);

    [IterationSetup(Target = nameof(TransferReplayedKey))]
    public void LedgerThatSawEveryKey()
    {
        _ledger = LedgerWorkload.FundedLedger(Wallets, Commands);
        foreach (ref readonly var c in _transfers.AsSpan()) _ledger.Apply(c, out _);
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Commands)]
    public long TransferWithNewKey() => ApplyAll();

    [Benchmark(OperationsPerInvoke = Commands)]
    public long TransferReplayedKey() => ApplyAll();

    private long ApplyAll()
    {
        long ok = 0;
        foreach (ref readonly var c in _transfers.AsSpan())
        {
            _ledger.Apply(c, out var r);
            if (r.Code == ResultCode.Ok) ok++;
        }
        return ok;
    }
}

/// <summary>Commands and ledgers shared by the benchmarks: one place, so every figure measures the same workload.</summary>
public static class LedgerWorkload
{
    public const long StartMs = 1_700_000_000_000;

    /// <summary>Ledger options large enough that nothing in a run of <paramref name="commands"/> grows or evicts.</summary>
    public static LedgerOptions Options(int wallets, int commands) => new()
    {
        MaxAccounts = wallets + 1,
        MaxPayments = wallets + commands + 1,
        InitialPaymentCapacity = wallets + commands + 1,
        IdempotencyMaxKeys = wallets + commands + 1,
    };

    /// <summary>Account 1 funds wallets 2..wallets+1 with 1,000,000,000 minor units each.</summary>
    public static List<Command> Setup(int wallets)
    {
        var list = new List<Command>(2 * wallets + 1)
        {
            new() { Type = CommandType.OpenAccount, Flags = (byte)AccountFlags.Funding, Currency = Currency.USD, ClientId = 1, Key = new(1, 1), TimestampMs = StartMs },
        };
        for (int i = 0; i < wallets; i++)
            list.Add(new() { Type = CommandType.OpenAccount, Flags = (byte)AccountFlags.DebitsMustNotExceedCredits, Currency = Currency.USD, ClientId = 1, Key = new(2, (ulong)i + 1), TimestampMs = StartMs });
        for (int i = 0; i < wallets; i++)
            list.Add(new() { Type = CommandType.Deposit, Currency = Currency.USD, ClientId = 1, Key = new(3, (ulong)i + 1), FromAccount = 1, ToAccount = 2 + i, Amount = 1_000_000_000, TimestampMs = StartMs });
        return list;
    }

    public static Ledger FundedLedger(int wallets, int commands)
    {
        var ledger = new Ledger(Options(wallets, commands));
        foreach (var c in Setup(wallets)) ledger.Apply(c, out _);
        return ledger;
    }

    /// <summary>Transfers of 1..1,000 units between random distinct wallets, one per millisecond, each with a fresh key.</summary>
    public static Command[] Transfers(int count, int wallets, int seed)
    {
        var rng = new Random(seed);
        var commands = new Command[count];
        for (int i = 0; i < count; i++)
        {
            long from = 2 + rng.Next(wallets);
            long to = 2 + (from - 2 + 1 + rng.Next(wallets - 1)) % wallets;
            commands[i] = new Command
            {
                Type = CommandType.Transfer, Currency = Currency.USD, ClientId = 7, Key = new((ulong)rng.NextInt64(), (ulong)i + 1),
                FromAccount = from, ToAccount = to, Amount = 1 + rng.Next(1_000), TimestampMs = StartMs + 1 + i,
            };
        }
        return commands;
    }
}
