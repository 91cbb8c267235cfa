using System.Globalization;

namespace RamPay.Load;

public enum LoadMode { Tcp, Http }

/// <summary>Everything a run is told on the command line (see Program.cs for each option's help).</summary>
public sealed record LoadOptions
{
    public LoadMode Mode { get; init; }
    public Uri HttpAddress { get; init; } = new("http://127.0.0.1:8080");
    public string TcpHost { get; init; } = "127.0.0.1";
    public int TcpPort { get; init; } = 7070;
    public int Connections { get; init; } = 4;
    /// <summary>Target payments per second over all connections; 0 = as fast as the server answers.</summary>
    public double Rate { get; init; }
    public int Batch { get; init; } = 100;
    public int Pipeline { get; init; } = 8;
    public double DurationSeconds { get; init; } = 10;
    /// <summary>Payments to send after the warm-up; 0 = run for <see cref="DurationSeconds"/> instead.</summary>
    public long Count { get; init; }
    /// <summary>Wallets; 0 = one per connection.</summary>
    public int Users { get; init; }
    public string Currency { get; init; } = "USD";
    public int Seed { get; init; } = 1;
    public double WarmupSeconds { get; init; } = 1;
    public string? JsonPath { get; init; }
    public long DepositPerWallet { get; init; } = 10_000_000;
    public int MaxAmount { get; init; } = 100;
    public int Sample { get; init; } = 1_000;
    /// <summary>Makes emails and keys unique to this run, so runs can follow each other on one server.</summary>
    public string RunId { get; init; } = NewRunId();

    public int Wallets => Users > 0 ? Users : Connections;

    /// <summary>Payments per request: a TCP frame carries a batch, an HTTP request one payment.</summary>
    public int PaymentsPerRequest => Mode == LoadMode.Tcp ? Batch : 1;

    /// <summary>Requests one connection keeps in flight: HTTP/1.1 answers one at a time.</summary>
    public int RequestsInFlightPerConnection => Mode == LoadMode.Tcp ? Pipeline : 1;

    public static string NewRunId() =>
        DateTime.UtcNow.ToString("yyyyMMddHHmmss", CultureInfo.InvariantCulture) + "-" + Random.Shared.Next(0x10000).ToString("x4", CultureInfo.InvariantCulture);

    public IEnumerable<string> Problems()
    {
        if (Connections is < 1 or > 65_535) yield return "--connections must be 1..65535"; // TCP keys give the connection 16 bits
        // A TCP connection authenticates as one user and may only pay from that user's wallet, so each needs its own;
        // HTTP workers get disjoint sets of wallets so that no two of them race on one wallet's balance.
        if (Users != 0 && Users < Connections) yield return "--users must be at least --connections: each connection pays from wallets of its own";
        if (Wallets < 2) yield return "at least two wallets are needed to pay between";
        if (Rate < 0) yield return "--rate must not be negative";
        if (Batch < 1) yield return "--batch must be at least 1";
        if (Pipeline < 1) yield return "--pipeline must be at least 1";
        if (Count < 0) yield return "--count must not be negative";
        if (Count == 0 && DurationSeconds <= 0) yield return "--duration must be positive (or give --count)";
        if (WarmupSeconds < 0) yield return "--warmup must not be negative";
        if (DepositPerWallet < 1) yield return "--deposit must be positive";
        if (MaxAmount < 1) yield return "--max-amount must be at least 1";
        if (Sample < 0) yield return "--sample must not be negative";
        if (!RamPay.Core.Currency.TryParse(Currency, out _)) yield return "--currency must be a three-letter upper-case ISO 4217 code";
    }
}
