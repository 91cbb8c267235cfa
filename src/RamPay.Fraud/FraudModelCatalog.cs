namespace RamPay.Fraud;

/// <summary>Finds a model by the SHA-256 of its file: how a journaled ConfigureFraud command, which names a model by hash, gets the model.</summary>
public interface IFraudModelCatalog
{
    FraudModel? Find(ReadOnlySpan<byte> sha256);

    /// <summary>
    /// Sees every payment scored by a ledger built with this catalog (null: none, as for every host). Only tools set
    /// it: <c>rampay fraud shadow</c> reads the facts and features the writer computed, in its order.
    /// </summary>
    IFraudScoreObserver? Observer => null;
}

/// <summary>
/// Told of each payment the writer scores, on the writer's thread, right after its verdict: the facts, the features
/// as they stood before the payment (the span is valid only during the call), the settings and model in force. It
/// cannot change the verdict and must not change anything the ledger owns. An exception from it leaves the command
/// half applied, so only a tool that then discards the ledger may throw (the shadow replay does, to stop).
/// </summary>
public interface IFraudScoreObserver
{
    void OnScored(in PaymentFacts payment, ReadOnlySpan<double> features, FraudSettings settings, FraudModel model, in FraudVerdict verdict);
}

/// <summary>An immutable set of models by hash. The embedded default is always in <see cref="WithDefault"/>.</summary>
public sealed class FraudModelCatalog : IFraudModelCatalog
{
    private readonly Dictionary<string, FraudModel> _models;

    private FraudModelCatalog(Dictionary<string, FraudModel> models) => _models = models;

    public static readonly FraudModelCatalog Empty = new([]);

    /// <summary>The embedded default model, and nothing else.</summary>
    public static FraudModelCatalog WithDefault() => Empty.With(FraudModel.Default);

    public FraudModelCatalog With(FraudModel model)
    {
        var copy = new Dictionary<string, FraudModel>(_models) { [model.Sha256Hex] = model };
        return new FraudModelCatalog(copy);
    }

    public IEnumerable<FraudModel> Models => _models.Values;
    public int Count => _models.Count;

    public FraudModel? Find(ReadOnlySpan<byte> sha256) => _models.GetValueOrDefault(Convert.ToHexStringLower(sha256));
}

/// <summary>A journal or snapshot names a fraud model the catalog does not hold: the state cannot be rebuilt as it was.</summary>
public sealed class FraudModelNotFoundException(string sha256Hex)
    : Exception($"fraud model {sha256Hex} is named by the journal but is not in the model catalog; put its file into the data directory's fraud-models folder")
{
    public string Sha256Hex { get; } = sha256Hex;
}
