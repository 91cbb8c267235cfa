using RamPay.Core;

namespace RamPay.Cli;

/// <summary>
/// A seeded stream of commands for <c>rampay simulate</c>: a funding account and wallets, deposits, transfers (some
/// failing for funds), authorizations with captures and voids, and refunds. Keys are derived from the journal
/// position the run starts at, so running it again on the same data directory adds new commands, not replays.
/// </summary>
public static class SimulatedWorkload
{
    public static Command[] Build(int count, int wallets, int seed, long startSequence)
    {
        var rng = new Random(seed);
        var commands = new Command[count];
        int n = 0;
        Command Next(CommandType type) => new()
        {
            Type = type, Currency = Currency.USD, ClientId = 1,
            Key = IdempotencyKey.FromString($"simulate-{startSequence}-{n}"),
        };

        // A fresh ledger gets the accounts (numbered 1 = funding, 2.. = wallets); a later run only moves money
        // between them, so it should be given the same --wallets.
        if (startSequence == 0)
        {
            commands[n] = Next(CommandType.OpenAccount) with { Flags = (byte)AccountFlags.Funding }; n++;
            for (int i = 0; i < wallets && n < count; i++) { commands[n] = Next(CommandType.OpenAccount) with { Flags = (byte)AccountFlags.DebitsMustNotExceedCredits, Argument = 1000 + i }; n++; }
        }
        long Wallet() => 2 + rng.Next(wallets);
        long paymentsGuess = 1;
        while (n < count)
        {
            int roll = rng.Next(100);
            Command c = roll switch
            {
                < 15 => Next(CommandType.Deposit) with { FromAccount = 1, ToAccount = Wallet(), Amount = rng.Next(1_000, 100_000) },
                < 75 => Next(CommandType.Transfer) with { FromAccount = Wallet(), ToAccount = Wallet(), Amount = rng.Next(1, 5_000) },
                < 85 => Next(CommandType.Authorize) with { FromAccount = Wallet(), ToAccount = Wallet(), Amount = rng.Next(1, 5_000) },
                < 92 => Next(CommandType.Capture) with { PaymentId = 1 + rng.NextInt64(paymentsGuess) },
                < 95 => Next(CommandType.Void) with { PaymentId = 1 + rng.NextInt64(paymentsGuess) },
                _ => Next(CommandType.Refund) with { PaymentId = 1 + rng.NextInt64(paymentsGuess), Amount = rng.Next(1, 1_000) },
            };
            commands[n++] = c;
            if (roll < 85) paymentsGuess++;
        }
        return commands;
    }
}
