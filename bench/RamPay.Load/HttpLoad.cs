using System.Diagnostics;
using System.Globalization;
using System.Net;
using RamPay.Client;
using RamPay.Contracts;

namespace RamPay.Load;

/// <summary>
/// HTTP load: worker c owns one HTTP/1.1 connection (its own handler, at most one connection to the server) and the
/// wallets whose index is c modulo the connection count, and sends one <c>POST /v1/payments</c> at a time from one
/// of its wallets, as that wallet's user, to a random other wallet.
/// </summary>
internal sealed class HttpLoad(LoadOptions options, Wallet[] wallets, RunControl run)
{
    private const int MaxAttempts = 20;

    /// <summary>One per connection.</summary>
    public SenderStats[] Stats { get; } = Enumerable.Range(0, options.Connections).Select(_ => new SenderStats()).ToArray();

    public Task RunAsync(CancellationToken ct) =>
        Task.WhenAll(Stats.Select((s, c) => Task.Run(() => WorkAsync(c, s, ct), ct)));

    private async Task WorkAsync(int c, SenderStats stats, CancellationToken ct)
    {
        using var handler = new SocketsHttpHandler
        {
            MaxConnectionsPerServer = 1,
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            UseCookies = false,
            AutomaticDecompression = DecompressionMethods.None,
        };
        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(60) };
        Wallet[] own = wallets.Where(w => w.Index % options.Connections == c).ToArray();
        RamPayHttpClient[] clients = own.Select(w => new RamPayHttpClient(http, options.HttpAddress) { AccessToken = w.Token }).ToArray();
        var random = new Random(unchecked(options.Seed * 1_000_003 + c * 1_009));
        var pacer = new Pacer(run.StartTimestamp, options.Rate / options.Connections);
        long sequence = 0;
        while (!ct.IsCancellationRequested && run.Take(1) == 1)
        {
            await pacer.WaitTurnAsync(ct);
            int payer = random.Next(own.Length);
            Wallet from = own[payer];
            int payee = random.Next(wallets.Length - 1);
            if (payee >= from.Index) payee++; // any wallet but the payer's
            long amount = random.Next(1, options.MaxAmount + 1);
            var payment = new PaymentRequest(from.AccountId, wallets[payee].AccountId, amount, options.Currency);
            string key = string.Create(CultureInfo.InvariantCulture, $"load-{options.RunId}-h{c}-{sequence++}");

            long sentAt = Stopwatch.GetTimestamp();
            stats.Sending();
            (RamPayResponse<Payment>? paid, string? failure) = await PayWithRetriesAsync(clients[payer], payment, key, stats, ct);
            long answeredAt = Stopwatch.GetTimestamp();
            if (paid is not null)
                stats.RecordPayment(sentAt, answeredAt, run, new AckedPayment(paid.Value.Id, from.Index, payee, amount), null, paid.Replayed);
            else if (failure == SenderStats.UnknownOutcome) stats.RecordUnknown(1);
            else stats.RecordPayment(sentAt, answeredAt, run, null, failure, replayed: false);
        }
        foreach (RamPayHttpClient client in clients) client.Dispose();
    }

    /// <summary>
    /// Pays, retrying with the same key after anything that may pass (429, 503, a timeout, a dropped connection):
    /// if the first attempt was applied the retry returns it replayed, so a payment is never made twice. Returns
    /// the payment, or the API's error code for a refusal, or "unknown" when every attempt failed in transit.
    /// </summary>
    private static async Task<(RamPayResponse<Payment>?, string?)> PayWithRetriesAsync(RamPayHttpClient client, PaymentRequest payment, string key, SenderStats stats, CancellationToken ct)
    {
        bool mayHaveBeenApplied = false;
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                return (await client.CreatePaymentAsync(payment, key, ct), null);
            }
            catch (RamPayApiException e) when (!WalletSetup.IsTransient(e, ct))
            {
                return (null, e.Code);
            }
            catch (Exception e) when (WalletSetup.IsTransient(e, ct))
            {
                // Rate limiting refuses before the ledger; a timeout, a 503 or a lost connection may come after it.
                mayHaveBeenApplied |= e is not RamPayApiException { StatusCode: HttpStatusCode.TooManyRequests };
                if (attempt == MaxAttempts) return (null, mayHaveBeenApplied ? SenderStats.UnknownOutcome : ((e as RamPayApiException)?.Code ?? "transport_error"));
                stats.Retrying();
                TimeSpan wait = e is RamPayApiException { RetryAfter: { } after } ? after : TimeSpan.FromMilliseconds(Math.Min(1_000, 5 << Math.Min(attempt, 8)));
                await Task.Delay(wait, ct);
            }
        }
    }
}
