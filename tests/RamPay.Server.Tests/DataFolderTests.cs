using System.Reflection;
using RamPay.Engine;
using RamPay.Server.Hosting;

namespace RamPay.Server.Tests;

/// <summary>
/// <see cref="DataFolder"/> owns every path under the data directory: the engine receives its paths from it, and a
/// running server writes nothing at the top of its data directory that the type does not name.
/// </summary>
public sealed class DataFolderTests
{
    [Fact]
    public void The_engine_takes_its_paths_from_the_data_folder()
    {
        var data = new DataFolder(Path.Combine(Path.GetTempPath(), "rampay-datafolder-" + Guid.NewGuid().ToString("N")));
        var engine = ServerComposition.EngineOptionsFrom(new ServerOptions { DataDirectory = data.Root }, data);
        Assert.Equal(data.Root, engine.DataDirectory);
        Assert.Equal(data.Journal, engine.JournalDirectory);
        Assert.Equal(data.Snapshots, engine.SnapshotDirectory);
        Assert.Equal(data.Cold, engine.ColdDirectory);

        // The engine uses what it is given, not a path of its own under DataDirectory.
        var moved = new EngineOptions { DataDirectory = data.Root, JournalDirectory = "/elsewhere/j", SnapshotDirectory = "/elsewhere/s", ColdDirectory = "/elsewhere/c" };
        Assert.Equal(("/elsewhere/j", "/elsewhere/s", "/elsewhere/c"), (moved.JournalDirectory, moved.SnapshotDirectory, moved.ColdDirectory));
        // A configured cold-tier directory still wins over the data folder's.
        Assert.Equal("/cold-disk", (engine with { ColdTier = new ColdTierOptions { Directory = "/cold-disk" } }).ColdDirectory);
    }

    [Fact]
    public void The_data_folder_and_the_libraries_name_the_same_files()
    {
        var data = new DataFolder("/data");
        Assert.Equal("/data/jwt-keys.json", data.JwtKeys);
        Assert.Equal("/data/jwt-keys.json.lock", data.JwtKeysLock);
        Assert.Equal("/data/jwt-signing.key", data.LegacyJwtKey);
        Assert.Equal("/data/auth-sessions.log", data.AuthSessions);
        Assert.Equal("/data/cold/payments", data.ColdPayments);
        Assert.Equal("/data/events/events.db", data.EventLog);
        Assert.Equal("/data/webhooks/webhooks.db", data.WebhookStore);
        Assert.Equal("/data/notifications/notifications.db", data.NotificationStore);
        var engine = new EngineOptions { DataDirectory = "/data" };
        Assert.Equal((engine.JournalDirectory, engine.SnapshotDirectory, engine.ColdDirectory), (data.Journal, data.Snapshots, data.Cold));
    }

    [Fact]
    public void Every_file_name_the_data_folder_holds_is_the_writing_library_s_own()
    {
        // DataFolder lives in RamPay.Engine, below the libraries that write these files and keep their names as
        // constants; the two must never drift apart.
        var data = new DataFolder("/data");
        Assert.Equal(Path.Combine(data.Root, RamPay.Server.Auth.SigningKeyRing.FileName), data.JwtKeys);
        Assert.Equal(Path.Combine(data.Root, RamPay.Server.Auth.SigningKeyRing.LegacyFileName), data.LegacyJwtKey);
        Assert.Equal(Path.Combine(data.Root, RamPay.Server.Auth.SessionStore.FileName), data.AuthSessions);
        Assert.Equal(Path.Combine(data.Root, RamPay.Redis.FencingTokenFile.FileName), data.WriterFence);
        Assert.Equal(Path.Combine(data.Sinks, RamPay.Kafka.KafkaCheckpointFile.FileName), data.KafkaCheckpoint);
        Assert.Equal(Path.Combine(data.Events, RamPay.Events.EventLog.FileName), data.EventLog);
        Assert.Equal(Path.Combine(data.Webhooks, RamPay.Webhooks.WebhookStore.FileName), data.WebhookStore);
        Assert.Equal(Path.Combine(data.Notifications, RamPay.Notifications.NotificationStore.FileName), data.NotificationStore);
        Assert.Equal(FraudModelStore.Folder(data.Root), data.FraudModels);
    }

    [Fact]
    public async Task Everything_a_running_server_writes_at_the_top_of_its_data_folder_is_named_by_the_data_folder()
    {
        await using var server = await ServerProcess.StartInProcessAsync([.. ServerFixture.TestSettings]);
        var api = new Api(server);
        // Sign-up, log-in (a session), a deposit and a payment: the journal, the key ring and the session log are written.
        var payer = await api.SignUpAsync(deposit: 500);
        var payee = await api.SignUpAsync();
        await api.PayAsync(payer, payee.WalletId, 200);
        await api.LoginAsync(payer.Email, Api.Password);

        var data = new DataFolder(server.DataDirectory);
        var named = typeof(DataFolder).GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.PropertyType == typeof(string) && p.Name != nameof(DataFolder.Root))
            .Select(p => (string)p.GetValue(data)!)
            .Where(path => Path.GetDirectoryName(path) == data.Root)
            .ToHashSet();
        var written = Directory.EnumerateFileSystemEntries(data.Root).ToList();
        Assert.NotEmpty(written);
        Assert.All(written, path => Assert.True(named.Contains(path), $"{path} is not named by DataFolder (it names: {string.Join(", ", named.Order())})"));
        Assert.True(File.Exists(data.JwtKeys), "no key ring at " + data.JwtKeys);
        Assert.True(File.Exists(data.AuthSessions), "no session log at " + data.AuthSessions);
        Assert.NotEmpty(Directory.EnumerateFiles(data.Journal));
    }
}
