using RamPay.Engine;
using RamPay.Kafka;
using RamPay.Redis;

namespace RamPay.Server.Hosting;

/// <summary>
/// Every path under the server's data directory (<c>RamPay:DataDirectory</c>), named once:
/// <code>
/// journal/                 segment files (RamPay.Journal)
/// snapshots/               state snapshots
/// sinks/                   the sinks' state: kafka.checkpoint, NAME.checkpoint-hint
/// fraud-models/            every fraud model ever put in force, by hash (replay needs them)
/// writer-fence             the highest fencing token that wrote here (with Redis)
/// jwt-signing.key (+.lock) the generated HS256 key (when RamPay:Jwt:SigningKey is empty)
/// </code>
/// The libraries keep their file names as constants (FencingTokenFile.FileName, KafkaCheckpointFile.FileName,
/// FraudModelStore.FolderName); the engine still derives journal/ and snapshots/ from the root it is given
/// (EngineOptions), and a test holds the two to the same paths. Files that must survive a power loss are written with
/// <see cref="RamPay.Journal.AtomicFile"/>.
/// </summary>
public sealed class DataFolder(string root)
{
    public string Root { get; } = Path.GetFullPath(root);

    public string Journal => Path.Combine(Root, "journal");
    public string Snapshots => Path.Combine(Root, "snapshots");
    public string Sinks => Path.Combine(Root, "sinks");
    public string KafkaCheckpoint => Path.Combine(Sinks, KafkaCheckpointFile.FileName);
    public string FraudModels => Path.Combine(Root, FraudModelStore.FolderName);
    public string WriterFence => Path.Combine(Root, FencingTokenFile.FileName);
    public string JwtKey => Path.Combine(Root, "jwt-signing.key");
    public string JwtKeyLock => JwtKey + ".lock";
}
