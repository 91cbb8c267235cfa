using RamPay.Fraud;

namespace RamPay.Engine;

/// <summary>
/// Fraud settings and model the host wants in force. At start the engine compares them with the ledger's (as
/// recovered from snapshot and journal) and journals a ConfigureFraud command when they differ, so a change of
/// configuration is a journaled event at a definite place: replay decides every payment as the live run did.
/// </summary>
public sealed record FraudConfiguration
{
    /// <summary>Thresholds and rules; the model hash is taken from <see cref="Model"/>.</summary>
    public required FraudSettings Settings { get; init; }
    /// <summary>The model to score with (null: none, allowed only when <see cref="FraudSettings.Enabled"/> is false).</summary>
    public FraudModel? Model { get; init; }

    /// <summary>The settings with the model's hash filled in: what the ConfigureFraud command carries.</summary>
    public FraudSettings Effective => Settings with { ModelSha256 = Model?.Sha256 ?? new byte[32] };

    public void Validate()
    {
        if (Model is { FitsFeatureSchema: false } m)
            throw new ArgumentException($"fraud model {m.Version} reads feature schema '{m.SchemaId}' ({m.FeatureCount} features); this RamPay computes {Features.SchemaId} ({Features.Count})");
        if (Effective.Problem() is { } problem) throw new ArgumentException("fraud settings: " + problem);
    }
}

/// <summary>
/// The data directory's <c>fraud-models</c> folder: every model the journal has named, as <c>&lt;sha256&gt;.rpfm</c>.
/// A ConfigureFraud record names its model by hash only, so replaying the journal from its start needs every model it
/// ever named; the engine copies the configured model here (durably) before it journals the command that names it.
/// </summary>
public static class FraudModelStore
{
    public const string FolderName = "fraud-models";

    public static string Folder(string dataDirectory) => Path.Combine(dataDirectory, FolderName);

    /// <summary>The embedded default model and every model kept in the data directory.</summary>
    public static FraudModelCatalog Load(string dataDirectory)
    {
        var catalog = FraudModelCatalog.WithDefault();
        string folder = Folder(dataDirectory);
        if (!Directory.Exists(folder)) return catalog;
        foreach (string file in Directory.GetFiles(folder, "*.rpfm").Order(StringComparer.Ordinal))
        {
            FraudModel model;
            try
            {
                model = FraudModel.Load(file);
            }
            catch (InvalidDataException e)
            {
                throw new InvalidDataException($"fraud model file {file} is damaged: {e.Message}", e);
            }
            if (Path.GetFileNameWithoutExtension(file) != model.Sha256Hex)
                throw new InvalidDataException($"fraud model file {file} holds the model {model.Sha256Hex}: the file name must be its SHA-256");
            catalog = catalog.With(model);
        }
        return catalog;
    }

    /// <summary>Writes the model into the folder unless it is there: a temporary file, fsynced, renamed, and the folder fsynced.</summary>
    public static void Keep(string dataDirectory, FraudModel model)
    {
        string folder = Folder(dataDirectory);
        Directory.CreateDirectory(folder);
        string path = Path.Combine(folder, model.Sha256Hex + ".rpfm");
        if (File.Exists(path)) return;
        RamPay.Journal.AtomicFile.Write(path, model.ToBytes());
    }
}
