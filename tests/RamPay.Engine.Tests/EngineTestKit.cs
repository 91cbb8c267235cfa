using System.Collections.Concurrent;
using RamPay.Core;
using RamPay.Engine;

namespace RamPay.Engine.Tests;

/// <summary>A temporary data directory, deleted when the test ends.</summary>
public sealed class TempDataDir : IDisposable
{
    public TempDataDir() => Path = Directory.CreateTempSubdirectory("rampay-engine-").FullName;
    public string Path { get; }
    public string Journal => System.IO.Path.Combine(Path, "journal");
    public string Snapshots => System.IO.Path.Combine(Path, "snapshots");
    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

/// <summary>Records every completion, in the order the output stage delivered them.</summary>
public sealed class RecordingCompletion : ICommandCompletion
{
    public readonly ConcurrentQueue<(long Sequence, long Correlation, CommandResult Result)> Completed = new();
    public Func<long, bool>? DurableCheck;
    public int NotDurableWhenCompleted;

    public void OnCompleted(long journalSequence, ref CommandSlot slot)
    {
        if (DurableCheck is not null && !DurableCheck(journalSequence)) Interlocked.Increment(ref NotDurableWhenCompleted);
        Completed.Enqueue((journalSequence, slot.Correlation, slot.Result));
    }
}

/// <summary>Builds commands for tests. Keys are derived from a counter, so every command is new unless a key is reused on purpose.</summary>
public sealed class Commands
{
    private long _next;
    public static readonly Currency Usd = Currency.USD;

    public static IdempotencyKey Key(string s) => IdempotencyKey.FromString(s);

    public Command Open(AccountFlags flags, long owner = 1, Currency? currency = null) => new()
    {
        Type = CommandType.OpenAccount, Flags = (byte)flags, Currency = currency ?? Usd, ClientId = 1, Key = NextKey(), Argument = owner,
    };

    public Command Move(CommandType type, long from, long to, long amount, Currency? currency = null) => new()
    {
        Type = type, Currency = currency ?? Usd, ClientId = 1, Key = NextKey(), FromAccount = from, ToAccount = to, Amount = amount,
    };

    public Command OnPayment(CommandType type, long paymentId, long amount = 0, Currency? currency = null) => new()
    {
        Type = type, Currency = currency ?? Usd, ClientId = 1, Key = NextKey(), PaymentId = paymentId, Amount = amount,
    };

    public IdempotencyKey NextKey() => Key("k-" + Interlocked.Increment(ref _next));

    /// <summary>
    /// A deterministic mixed workload over <paramref name="wallets"/> wallets and one funding account (id 1):
    /// deposits, transfers (some failing for funds), authorizations with captures, voids and refunds, freezes,
    /// repeated keys and ticks.
    /// </summary>
    public List<Command> Workload(int seed, int wallets, int count)
    {
        var rng = new Random(seed);
        var list = new List<Command> { Open(AccountFlags.Funding) };
        for (int i = 0; i < wallets; i++) list.Add(Open(AccountFlags.DebitsMustNotExceedCredits, owner: 100 + i));
        long Wallet() => 2 + rng.Next(wallets);
        long payments = 0;
        while (list.Count < count)
        {
            int roll = rng.Next(100);
            Command c;
            if (roll < 20) c = Move(CommandType.Deposit, 1, Wallet(), rng.Next(1, 10_000));
            else if (roll < 55) c = Move(CommandType.Transfer, Wallet(), Wallet(), rng.Next(1, 3_000));
            else if (roll < 65) c = Move(CommandType.Authorize, Wallet(), Wallet(), rng.Next(1, 3_000)) with { Argument = rng.Next(1, 5_000) };
            else if (roll < 75) c = OnPayment(CommandType.Capture, 1 + rng.NextInt64(Math.Max(1, payments)), rng.Next(0, 2_000));
            else if (roll < 80) c = OnPayment(CommandType.Void, 1 + rng.NextInt64(Math.Max(1, payments)));
            else if (roll < 88) c = OnPayment(CommandType.Refund, 1 + rng.NextInt64(Math.Max(1, payments)), rng.Next(1, 1_000));
            else if (roll < 90) c = new Command { Type = rng.Next(2) == 0 ? CommandType.Freeze : CommandType.Unfreeze, ClientId = 1, Key = NextKey(), FromAccount = Wallet() };
            else if (roll < 95 && list.Count > 10) c = list[rng.Next(1, list.Count)]; // a retry: same key and body
            else c = new Command { Type = CommandType.Tick };
            list.Add(c);
            payments += 1;
        }
        return list;
    }
}

/// <summary>A clock that advances a fixed step at each call: commands get distinct, reproducible timestamps.</summary>
public sealed class SteppingClock(long startMs = 1_700_000_000_000, long stepMs = 7)
{
    private long _now = startMs;
    public long Now() => Interlocked.Add(ref _now, stepMs);
}

/// <summary>Waits and listings the snapshot tests share.</summary>
public static class EngineTestWaits
{
    /// <summary>Polls <paramref name="condition"/> every 5 ms; fails the test after <paramref name="timeoutSeconds"/> (a failure bound, not a figure).</summary>
    public static void WaitFor(Func<bool> condition, string what, int timeoutSeconds = 180)
    {
        var deadline = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(timeoutSeconds), "timed out waiting for " + what);
            Thread.Sleep(5);
        }
    }

    /// <summary>The sequences of the snapshot files in <paramref name="directory"/>, ascending (none when it does not exist).</summary>
    public static long[] SnapshotSequences(string directory) => !Directory.Exists(directory) ? [] :
        [.. Directory.GetFiles(directory, RamPay.Journal.SnapshotFormat.FilePrefix + "*" + RamPay.Journal.SnapshotFormat.FileExtension)
            .Select(f => RamPay.Journal.SnapshotFormat.TryParseFileName(Path.GetFileName(f), out long s) ? s : -1).Order()];
}
