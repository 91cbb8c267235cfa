namespace RamPay.Fraud;

/// <summary>
/// The feature vector a payment is scored on: what each index means. A model file names the schema it was trained
/// on (<see cref="SchemaId"/>) and is refused for any other, so a change here (a new feature, another window) is a new
/// schema id, and models are retrained. docs/fraud.md defines every feature.
/// </summary>
public static class Features
{
    public const string SchemaId = "rampay.fraud.features/1";
    public const int Count = 21;

    /// <summary>log2(1 + amount in minor units).</summary>
    public const int AmountLog2 = 0;
    /// <summary>(AmountLog2 − the sender's running mean of it) / sqrt(its running variance + 0.25); 0 for a first payment.</summary>
    public const int AmountZ = 1;
    /// <summary>log2(1 + payments the sender made before this one).</summary>
    public const int SenderPaymentsLog2 = 2;
    /// <summary>The sender's payments in the last minute (six 10-second buckets), before this one.</summary>
    public const int SenderCount1m = 3;
    /// <summary>log2(1 + their sum).</summary>
    public const int SenderSum1mLog2 = 4;
    /// <summary>The sender's payments in the last hour (six 10-minute buckets).</summary>
    public const int SenderCount1h = 5;
    public const int SenderSum1hLog2 = 6;
    /// <summary>The sender's payments in the last 24 hours (twelve 2-hour buckets).</summary>
    public const int SenderCount24h = 7;
    public const int SenderSum24hLog2 = 8;
    /// <summary>Of the sender's payments in the last hour, how many went to a payee new to them.</summary>
    public const int SenderNewPayees1h = 9;
    public const int SenderNewPayees24h = 10;
    /// <summary>log2(1 + seconds since the sender's previous payment, or since their account opened when there was none).</summary>
    public const int SecondsSinceLastLog2 = 11;
    /// <summary>1 when the receiver is not among the sender's last <see cref="FeatureStore.RecentPayees"/> distinct payees.</summary>
    public const int ReceiverNewToSender = 12;
    /// <summary>Payments the receiver got in the last hour / 24 hours (fan-in), before this one.</summary>
    public const int ReceiverCount1h = 13;
    public const int ReceiverCount24h = 14;
    /// <summary>Of those in the last 24 hours, how many came from a sender paying them for the first time (distinct new senders).</summary>
    public const int ReceiverNewSenders24h = 15;
    /// <summary>Hour of the day of the journaled time, UTC, 0..23.</summary>
    public const int HourOfDay = 16;
    /// <summary>1 when the hour is 0..5 UTC.</summary>
    public const int Night = 17;
    /// <summary>log2(1 + hours since the sender's account opened).</summary>
    public const int SenderAgeLog2 = 18;
    public const int ReceiverAgeLog2 = 19;
    /// <summary>amount / the sender's available balance before it, in [0, 1]; 1 when nothing was available (an account that may go negative).</summary>
    public const int DrainFraction = 20;

    private static readonly string[] NameTable =
    [
        "amount_log2", "amount_z", "sender_payments_log2",
        "sender_count_1m", "sender_sum_1m_log2", "sender_count_1h", "sender_sum_1h_log2", "sender_count_24h", "sender_sum_24h_log2",
        "sender_new_payees_1h", "sender_new_payees_24h", "seconds_since_last_log2", "receiver_new_to_sender",
        "receiver_count_1h", "receiver_count_24h", "receiver_new_senders_24h", "hour_of_day", "night",
        "sender_age_log2", "receiver_age_log2", "drain_fraction",
    ];

    public static IReadOnlyList<string> Names => NameTable;

    public static string Name(int index) => (uint)index < (uint)Count ? NameTable[index] : "feature_" + index.ToString(System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>
/// What the writer knows about a payment when it scores it: who pays whom, how much, when (journaled time), when
/// both accounts opened, and what the sender could spend before it. Account ids are the ledger's (1-based).
/// </summary>
public readonly record struct PaymentFacts(int From, int To, long Amount, long NowMs, long FromCreatedMs, long ToCreatedMs, long FromAvailable);
