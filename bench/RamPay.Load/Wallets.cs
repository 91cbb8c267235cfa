using System.Globalization;
using System.Net;
using RamPay.Client;
using RamPay.Contracts;

namespace RamPay.Load;

/// <summary>A user the run registered, their wallet, and what the run deposited into it.</summary>
internal sealed class Wallet(int index, string email, long userId, long accountId)
{
    public int Index { get; } = index;
    public string Email { get; } = email;
    public long UserId { get; } = userId;
    public long AccountId { get; } = accountId;
    public string Token { get; set; } = "";
    /// <summary>Sum of the deposits the server acknowledged.</summary>
    public long Deposited { get; set; }
    public int Deposits { get; set; }
}

/// <summary>Sign-up, log-in and deposits over HTTP, before the load starts (and log-in again before the check).</summary>
internal sealed class WalletSetup(HttpClient http, LoadOptions options)
{
    private const int Parallelism = 8;
    private const int MaxAttempts = 10;
    /// <summary>Largest single deposit tried; halved whenever the server says deposit_limit_exceeded, and shared by all wallets.</summary>
    private long _depositChunk = options.DepositPerWallet;

    public string Password => "load-pw-" + options.RunId;

    public RamPayHttpClient ClientFor(Wallet? wallet) => new(http, options.HttpAddress) { AccessToken = wallet?.Token };

    public async Task<Wallet[]> CreateAsync(CancellationToken ct)
    {
        var wallets = new Wallet[options.Wallets];
        await Parallel.ForEachAsync(Enumerable.Range(0, wallets.Length), new ParallelOptions { MaxDegreeOfParallelism = Parallelism, CancellationToken = ct },
            async (i, token) =>
            {
                string email = string.Create(CultureInfo.InvariantCulture, $"load-{options.RunId}-{i}@rampay.test");
                RamPayHttpClient client = ClientFor(null);
                User user = await Retry(() => client.RegisterAsync(email, Password, $"load {i}", options.Currency, token), token);
                var wallet = new Wallet(i, email, user.UserId, user.WalletAccountId);
                await LogInAsync(wallet, token);
                await DepositAsync(wallet, token);
                wallets[i] = wallet;
            });
        return wallets;
    }

    public Task LogInAllAsync(IEnumerable<Wallet> wallets, CancellationToken ct) =>
        Parallel.ForEachAsync(wallets, new ParallelOptions { MaxDegreeOfParallelism = Parallelism, CancellationToken = ct }, LogInAsync);

    private async ValueTask LogInAsync(Wallet wallet, CancellationToken ct)
    {
        RamPayHttpClient client = ClientFor(null);
        TokenResponse token = await Retry(() => client.LoginAsync(wallet.Email, Password, ct), ct);
        wallet.Token = token.AccessToken;
    }

    private async Task DepositAsync(Wallet wallet, CancellationToken ct)
    {
        RamPayHttpClient client = ClientFor(wallet);
        while (wallet.Deposited < options.DepositPerWallet)
        {
            long amount = Math.Min(options.DepositPerWallet - wallet.Deposited, Volatile.Read(ref _depositChunk));
            string key = string.Create(CultureInfo.InvariantCulture, $"load-{options.RunId}-deposit-{wallet.Index}-{wallet.Deposits}-{amount}");
            try
            {
                await Retry(() => client.DepositAsync(wallet.AccountId, amount, options.Currency, key, ct), ct);
            }
            catch (RamPayApiException e) when (e.Code == "deposit_limit_exceeded" && amount > 1)
            {
                // The server's RamPay:MaxDepositAmount is not published: find a size under it by halving.
                long smaller = amount / 2;
                long seen;
                while ((seen = Volatile.Read(ref _depositChunk)) > smaller && Interlocked.CompareExchange(ref _depositChunk, smaller, seen) != seen) { }
                continue;
            }
            wallet.Deposited += amount;
            wallet.Deposits++;
        }
    }

    /// <summary>
    /// Retries what may succeed later (rate limiting, not ready, a timeout, a dropped connection) with the same
    /// request, so with the same idempotency key where there is one: a retry never moves money twice.
    /// </summary>
    public static async Task<T> Retry<T>(Func<Task<T>> call, CancellationToken ct)
    {
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                return await call();
            }
            catch (Exception e) when (attempt < MaxAttempts && IsTransient(e, ct))
            {
                TimeSpan wait = e is RamPayApiException { RetryAfter: { } after } ? after : TimeSpan.FromMilliseconds(50 << Math.Min(attempt, 6));
                await Task.Delay(wait, ct);
            }
        }
    }

    public static bool IsTransient(Exception e, CancellationToken ct) => e switch
    {
        RamPayApiException api => api.StatusCode is HttpStatusCode.TooManyRequests or HttpStatusCode.ServiceUnavailable or HttpStatusCode.BadGateway or HttpStatusCode.GatewayTimeout
            && api.Code is not ("too_many_accounts" or "too_many_payments" or "too_many_holds"),
        HttpRequestException => true,
        // HttpClient's own timeout, not the caller's cancellation.
        TaskCanceledException => !ct.IsCancellationRequested,
        IOException => true,
        _ => false,
    };
}
