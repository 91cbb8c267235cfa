using RamPay.Cli;
using RamPay.Engine;
using RamPay.Server;
using RamPay.Server.Hosting;

namespace RamPay.Postgres.Tests;

/// <summary>
/// The <c>rampay</c> tools and the server take every path under a data directory from one type, <see cref="DataFolder"/>:
/// for the same directory they name the same journal, snapshots and cold tier, and a tool's run leaves nothing at the
/// top of the folder that the type does not name. (No PostgreSQL: this project is where the CLI and the server meet.)
/// </summary>
public sealed class CliDataFolderTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "rampay-cli-datafolder-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
    }

    [Theory]
    [InlineData("")] // the absolute temp path
    [InlineData("relative")] // a relative --data: both resolve it against the working directory once
    public void The_cli_and_the_server_give_the_engine_the_same_paths(string relative)
    {
        string dir = relative.Length == 0 ? _root : Path.GetRelativePath(Environment.CurrentDirectory, Path.Combine(_root, relative));
        var server = ServerComposition.EngineOptionsFrom(new ServerOptions { DataDirectory = dir }, new DataFolder(dir));
        var cli = RampayCli.EngineOptionsFor(RampayCli.Folder(new DirectoryInfo(dir)));
        Assert.Equal(server.DataDirectory, cli.DataDirectory);
        Assert.Equal(server.JournalDirectory, cli.JournalDirectory);
        Assert.Equal(server.SnapshotDirectory, cli.SnapshotDirectory);
        Assert.Equal(server.ColdDirectory, cli.ColdDirectory);
        Assert.True(Path.IsPathFullyQualified(cli.JournalDirectory), cli.JournalDirectory);
        // And every other path the server names, from the same type (the tools' events list reads DataFolder.EventLog).
        var data = RampayCli.Folder(new DirectoryInfo(dir));
        Assert.Equal(new DataFolder(dir).EventLog, data.EventLog);
        Assert.Equal(new DataFolder(dir).FraudModels, data.FraudModels);
    }

    [Fact]
    public void What_simulate_writes_is_where_the_server_looks_and_is_named_by_the_data_folder()
    {
        var output = new StringWriter();
        int exit = RampayCli.Run(["simulate", "--data", _root, "--count", "300", "--wallets", "4", "--cold-tier"], output);
        Assert.True(exit == RampayCli.ExitOk, output.ToString());

        var data = new DataFolder(_root);
        var named = typeof(DataFolder).GetProperties()
            .Where(p => p.PropertyType == typeof(string) && p.Name != nameof(DataFolder.Root))
            .Select(p => (string)p.GetValue(data)!)
            .ToHashSet();
        var written = Directory.EnumerateFileSystemEntries(data.Root).ToList();
        Assert.Contains(data.Journal, written);
        Assert.Contains(data.Snapshots, written); // the stop snapshot
        Assert.Contains(data.Cold, written); // --cold-tier: the server's default rules and tiers
        Assert.All(written, path => Assert.True(named.Contains(path), $"simulate wrote {path}, which DataFolder does not name"));
        Assert.NotEmpty(Directory.EnumerateFiles(data.Journal));
        Assert.NotEmpty(Directory.EnumerateFiles(data.Snapshots));

        // The server, given the same directory, looks exactly there.
        var server = ServerComposition.EngineOptionsFrom(new ServerOptions { DataDirectory = _root }, data);
        Assert.Equal((data.Journal, data.Snapshots, data.Cold), (server.JournalDirectory, server.SnapshotDirectory, server.ColdDirectory));
    }
}
