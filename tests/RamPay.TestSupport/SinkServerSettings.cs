using System.Globalization;
using RamPay.Core;

namespace RamPay.Postgres.Tests;

/// <summary>
/// How the sink tests run the real server (RamPay.Postgres.Tests and RamPay.Kafka.Tests, through RamPay.TestSupport), and
/// the ledger options those settings amount to, so that an offline replay of its journal (<c>db verify</c>, the
/// expected Kafka events) uses the same limits. One list, so the two cannot drift apart.
/// </summary>
public static class SinkServerSettings
{
    private const int MaxAccounts = 10_000;
    private const long MaxPayments = 1 << 20;
    private const int MaxOpenHolds = 1 << 16;
    private const int IdempotencyMaxKeys = 1 << 16;

    /// <summary>The ledger limits the tests give the server (small: less memory).</summary>
    public static readonly LedgerOptions Ledger = new()
    {
        MaxAccounts = MaxAccounts, MaxPayments = MaxPayments, InitialPaymentCapacity = 1 << 16, MaxOpenHolds = MaxOpenHolds, IdempotencyMaxKeys = IdempotencyMaxKeys,
    };

    /// <summary>The common settings, then <paramref name="more"/> (the sink's connection, test-specific limits).</summary>
    public static string[] With(params string[] more) =>
    [
        "Auth:PasswordHashIterations=1000",
        "RateLimit:RequestsPerSecond=1000000",
        "RateLimit:Burst=1000000",
        "Currencies=USD,EUR",
        string.Create(CultureInfo.InvariantCulture, $"Engine:MaxAccounts={MaxAccounts}"),
        string.Create(CultureInfo.InvariantCulture, $"Engine:MaxPayments={MaxPayments}"),
        string.Create(CultureInfo.InvariantCulture, $"Engine:MaxOpenHolds={MaxOpenHolds}"),
        string.Create(CultureInfo.InvariantCulture, $"Engine:IdempotencyMaxKeys={IdempotencyMaxKeys}"),
        // Scoring stays on (each payment carries a score and model version into the sinks), but with thresholds
        // above 1 the model never holds or declines: these tests pay from accounts opened a moment ago, which the
        // default model finds suspicious. ServerSinkTests holds and declines payments by rules instead.
        "Fraud:ReviewThreshold=2",
        "Fraud:DeclineThreshold=2",
        .. more,
    ];
}
