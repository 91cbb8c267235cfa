using System.Text;

namespace RamPay.Fraud;

/// <summary>
/// Everything the writer needs to score payments and what scoring has learnt: the settings in force, the model, the
/// feature store and the list of model versions that scored payments (a payment records an index into it). Owned by
/// the ledger, mutated only on its thread, written into its snapshots. Scoring allocates nothing.
/// </summary>
public sealed class FraudState
{
    /// <summary>At most this many distinct models over a ledger's life (a payment keeps a 16-bit index).</summary>
    public const int MaxModels = ushort.MaxValue;
    private const int StateFormatVersion = 1;

    private readonly IFraudModelCatalog _catalog;
    // A tool's tap on every scored payment (rampay fraud shadow); null in every host, where it costs one test per payment.
    private readonly IFraudScoreObserver? _observer;
    private readonly List<(string Version, byte[] Sha256)> _models = [("", new byte[32])]; // index 0: not scored
    private FeatureStore _features;
    private FraudModel? _model;
    private ushort _modelIndex;
    private double _review, _decline;

    public FraudState(int maxAccounts, IFraudModelCatalog catalog)
    {
        _catalog = catalog;
        _observer = catalog.Observer;
        _features = new FeatureStore(maxAccounts);
        Apply(FraudSettings.Disabled, null);
    }

    public FraudSettings Settings { get; private set; } = FraudSettings.Disabled;
    public FraudModel? Model => _model;
    /// <summary>Payments are scored: the settings say so and name a model.</summary>
    public bool Enabled { get; private set; }
    public FeatureStore Features => _features;
    public int ModelCount => _models.Count - 1;

    /// <summary>The version of the model behind a payment's model index (index 0: the payment was not scored).</summary>
    public string ModelVersion(ushort index) => index < _models.Count ? _models[index].Version : "";

    /// <summary>
    /// Puts new settings in force (a ConfigureFraud command's attachment). False when the bytes do not decode to
    /// consistent settings, or a ledger has used its <see cref="MaxModels"/>. A model the catalog does not hold throws
    /// <see cref="FraudModelNotFoundException"/>: the journal then cannot be replayed as it was written.
    /// </summary>
    public bool TryConfigure(ReadOnlySpan<byte> encoded) => TryConfigure(encoded, openAccounts: 0);

    /// <summary>As <see cref="TryConfigure(ReadOnlySpan{byte})"/>; switching scoring on reserves feature memory for accounts 1..<paramref name="openAccounts"/>.</summary>
    public bool TryConfigure(ReadOnlySpan<byte> encoded, int openAccounts)
    {
        var settings = FraudSettings.TryDecode(encoded);
        if (settings is null) return false;
        FraudModel? model = null;
        if (settings.ModelSha256.AsSpan().IndexOfAnyExcept((byte)0) >= 0)
        {
            model = _catalog.Find(settings.ModelSha256) ?? throw new FraudModelNotFoundException(Convert.ToHexStringLower(settings.ModelSha256));
            if (!model.FitsFeatureSchema) return false;
        }
        if (model is not null && IndexOf(model) < 0 && _models.Count > MaxModels) return false;
        Apply(settings, model);
        if (Enabled) ReserveAccounts(1, openAccounts);
        return true;
    }

    /// <summary>An account opened: when scoring is on, its feature memory is allocated now rather than on its first payment.</summary>
    public void AccountOpened(int accountId)
    {
        if (Enabled) _features.Reserve(accountId);
    }

    private void ReserveAccounts(int first, int last)
    {
        for (int id = first; id <= last; id += 1024) _features.Reserve(id);
        if (last >= first) _features.Reserve(last);
    }

    private int IndexOf(FraudModel model)
    {
        for (int i = 1; i < _models.Count; i++)
            if (_models[i].Version == model.Version && _models[i].Sha256.AsSpan().SequenceEqual(model.Sha256)) return i;
        return -1;
    }

    private void Apply(FraudSettings settings, FraudModel? model)
    {
        Settings = settings;
        _model = model;
        if (model is not null)
        {
            int index = IndexOf(model);
            if (index < 0)
            {
                _models.Add((model.Version, model.Sha256));
                index = _models.Count - 1;
            }
            _modelIndex = (ushort)index;
        }
        else
        {
            _modelIndex = 0;
        }
        Enabled = settings.Enabled && model is not null;
        _review = settings.ReviewThresholdPpm / 1_000_000.0;
        _decline = settings.DeclineThresholdPpm / 1_000_000.0;
    }

    /// <summary>
    /// Scores a payment the ledger is about to make (its checks all passed) and records it into the features: the
    /// model's score, every rule that fires, and the decision. Declining rules and a score at the decline threshold
    /// decline; the amount rule and a score at the review threshold hold for review; otherwise it proceeds.
    /// </summary>
    public FraudVerdict Score(in PaymentFacts p)
    {
        var model = _model;
        if (!Enabled || model is null) throw new InvalidOperationException("fraud scoring is not enabled");
        Span<double> f = stackalloc double[Fraud.Features.Count];
        _features.ComputeAndRecord(p, f);
        // The decision is taken on the score as stored (a float), so a payment never shows a score that contradicts it.
        float score = (float)model.Score(f);
        var reasons = FraudRules.Evaluate(Settings, p, f);
        if (score >= _decline) reasons |= FraudReasons.ModelDecline;
        else if (score >= _review) reasons |= FraudReasons.ModelReview;
        var verdict = new FraudVerdict(score, reasons, FraudRules.Decide(reasons), _modelIndex);
        _observer?.OnScored(p, f, Settings, model, verdict);
        return verdict;
    }

    // ---- state encoding ----

    /// <summary>Settings, the model's file bytes, the model version list and the feature store.</summary>
    public void Write(BinaryWriter w)
    {
        w.Write(StateFormatVersion);
        byte[] settings = Settings.Encode();
        w.Write((ushort)settings.Length);
        w.Write(settings);
        var model = _model;
        w.Write(model?.ByteLength ?? 0);
        if (model is not null) w.Write(model.Bytes);
        w.Write((ushort)(_models.Count - 1));
        for (int i = 1; i < _models.Count; i++)
        {
            byte[] version = Encoding.UTF8.GetBytes(_models[i].Version);
            w.Write((ushort)version.Length);
            w.Write(version);
            w.Write(_models[i].Sha256);
        }
        _features.Write(w);
    }

    public static FraudState Read(BinaryReader r, int maxAccounts, IFraudModelCatalog catalog)
    {
        int version = r.ReadInt32();
        if (version != StateFormatVersion) throw new InvalidDataException($"fraud state version {version} is not known (this RamPay knows {StateFormatVersion})");
        var settings = FraudSettings.TryDecode(ReadExactly(r, r.ReadUInt16())) ?? throw new InvalidDataException("fraud state: the settings do not decode");
        int modelBytes = r.ReadInt32();
        if (modelBytes < 0 || modelBytes > 256 << 20) throw new InvalidDataException("fraud state: model size out of range");
        FraudModel? model = modelBytes == 0 ? null : FraudModel.Parse(ReadExactly(r, modelBytes));
        bool named = settings.ModelSha256.AsSpan().IndexOfAnyExcept((byte)0) >= 0;
        if (named != model is not null || (model is not null && !model.Sha256.AsSpan().SequenceEqual(settings.ModelSha256)))
            throw new InvalidDataException("fraud state: the model kept does not match the settings' model hash");
        if (model is not null && !model.FitsFeatureSchema) throw new InvalidDataException("fraud state: the model does not read this RamPay's features");

        var state = new FraudState(maxAccounts, catalog);
        int models = r.ReadUInt16();
        for (int i = 0; i < models; i++)
        {
            string v = Encoding.UTF8.GetString(ReadExactly(r, r.ReadUInt16()));
            state._models.Add((v, ReadExactly(r, 32)));
        }
        if (model is not null && state.IndexOf(model) < 0) throw new InvalidDataException("fraud state: the model in force is missing from the model list");
        state.Apply(settings, model);
        state._features = FeatureStore.Read(r, maxAccounts);
        return state;
    }

    /// <summary>After a state load: feature memory for every open account, as if each had opened with scoring on.</summary>
    public void ReserveOpenAccounts(int openAccounts)
    {
        if (Enabled) ReserveAccounts(1, openAccounts);
    }

    private static byte[] ReadExactly(BinaryReader r, int n)
    {
        var bytes = new byte[n];
        r.BaseStream.ReadExactly(bytes);
        return bytes;
    }
}
