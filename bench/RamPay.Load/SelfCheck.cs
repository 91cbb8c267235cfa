using System.Globalization;
using RamPay.Client;
using RamPay.Contracts;

namespace RamPay.Load;

/// <summary>
/// After the run: does the server's ledger agree with the tool's own records? Every wallet's posted balance must be
/// its deposits plus the acknowledged payments into it minus those out of it, which holds only if every
/// acknowledged payment was applied exactly once and nothing else moved money; the balances must add up to the
/// deposits; and a random sample of acknowledged payments, fetched one by one, must say what was sent.
/// </summary>
internal static class SelfCheck
{
    public sealed record Result(bool Passed, IReadOnlyList<string> Problems, int WalletsChecked, int SampleChecked, long ExpectedTotal, long ServerTotal);

    /// <summary>What the tool's records say each wallet's posted balance must be.</summary>
    public static long[] ExpectedBalances(IReadOnlyList<long> deposited, IEnumerable<AckedPayment> acked)
    {
        long[] expected = deposited.ToArray();
        foreach (AckedPayment p in acked)
        {
            expected[p.From] -= p.Amount;
            expected[p.To] += p.Amount;
        }
        return expected;
    }

    /// <summary>The pure part of the check, given the server's balances: a list of disagreements, empty when all agree.</summary>
    public static List<string> CompareBalances(IReadOnlyList<long> deposited, IReadOnlyList<AckedPayment> acked, IReadOnlyList<Account> server, long unknownOutcomes)
    {
        var problems = new List<string>();
        if (unknownOutcomes > 0)
            problems.Add($"{unknownOutcomes} payments have an unknown outcome (the connection kept failing): the balances cannot be predicted exactly");
        long[] expected = ExpectedBalances(deposited, acked);
        for (int i = 0; i < expected.Length; i++)
        {
            Account a = server[i];
            if (a.Posted != expected[i])
                problems.Add($"wallet {i} (account {a.Id}): posted {a.Posted}, expected {expected[i]} (deposits {deposited[i]} + in − out): off by {a.Posted - expected[i]}");
            // No authorizations in this workload: nothing may be held.
            if (a.Pending != 0 || a.Available != a.Posted)
                problems.Add($"wallet {i} (account {a.Id}): pending {a.Pending}, available {a.Available}; no holds were made");
        }
        long serverTotal = server.Sum(a => a.Posted), depositTotal = deposited.Sum();
        if (serverTotal != depositTotal) problems.Add($"the wallets hold {serverTotal} in all, the deposits were {depositTotal}");

        var seen = new HashSet<long>();
        int duplicates = 0;
        foreach (AckedPayment p in acked)
        {
            if (!seen.Add(p.PaymentId) && duplicates++ < 5) problems.Add($"payment id {p.PaymentId} was acknowledged for two different payments");
        }
        return problems;
    }

    public static async Task<Result> RunAsync(WalletSetup setup, Wallet[] wallets, List<AckedPayment> acked, long unknownOutcomes, LoadOptions options, CancellationToken ct)
    {
        // Tokens may have expired during a long run; logging in again is cheap.
        await setup.LogInAllAsync(wallets, ct);
        var accounts = new Account[wallets.Length];
        await Parallel.ForEachAsync(wallets, new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = ct }, async (w, token) =>
        {
            using RamPayHttpClient client = setup.ClientFor(w);
            accounts[w.Index] = await WalletSetup.Retry(() => client.GetAccountAsync(w.AccountId, token), token);
        });
        long[] deposited = wallets.Select(w => w.Deposited).ToArray();
        List<string> problems = CompareBalances(deposited, acked, accounts, unknownOutcomes);

        int sampleSize = Math.Min(options.Sample, acked.Count);
        var random = new Random(options.Seed);
        // Distinct payments: draw indexes until there are enough different ones (the sample is small next to the run).
        var picked = new HashSet<int>();
        while (picked.Count < sampleSize) picked.Add(random.Next(acked.Count));
        AckedPayment[] sample = picked.Select(i => acked[i]).ToArray();
        var sampleProblems = new System.Collections.Concurrent.ConcurrentQueue<string>();
        await Parallel.ForEachAsync(sample, new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = ct }, async (p, token) =>
        {
            using RamPayHttpClient client = setup.ClientFor(wallets[p.From]);
            Payment server = await WalletSetup.Retry(() => client.GetPaymentAsync(p.PaymentId, token), token);
            string? problem = ComparePayment(p, server, wallets, options.Currency);
            if (problem is not null) sampleProblems.Enqueue(problem);
        });
        problems.AddRange(sampleProblems.Take(20));
        if (sampleProblems.Count > 20) problems.Add($"... and {sampleProblems.Count - 20} more sampled payments that disagree");

        long expectedTotal = deposited.Sum();
        return new Result(problems.Count == 0, problems, wallets.Length, sampleSize, expectedTotal, accounts.Sum(a => a.Posted));
    }

    public static string? ComparePayment(AckedPayment sent, Payment server, Wallet[] wallets, string currency)
    {
        long from = wallets[sent.From].AccountId, to = wallets[sent.To].AccountId;
        if (server.Id == sent.PaymentId && server.FromAccount == from && server.ToAccount == to && server.Amount == sent.Amount
            && server.Currency == currency && server.Kind == "transfer" && server.Status == "posted")
            return null;
        return string.Create(CultureInfo.InvariantCulture,
            $"payment {sent.PaymentId}: sent {from}→{to} {sent.Amount} {currency} transfer, server has {server.FromAccount}→{server.ToAccount} {server.Amount} {server.Currency} {server.Kind} {server.Status}");
    }
}
