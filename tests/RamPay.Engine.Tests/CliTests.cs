using RamPay.Cli;
using RamPay.Engine;

namespace RamPay.Engine.Tests;

public class CliTests
{
    private static (int Exit, string Output) Run(params string[] args)
    {
        var output = new StringWriter();
        int exit = RampayCli.Build(output).Parse(args).Invoke();
        return (exit, output.ToString());
    }

    private static string Field(string output, string name) =>
        output.Split('\n').Select(l => l.Trim()).First(l => l.StartsWith(name + " ", StringComparison.Ordinal))[name.Length..].Trim();

    private static string WriteJournal(TempDataDir dir, int count)
    {
        var commands = new Commands().Workload(seed: 21, wallets: 8, count: count);
        using var engine = RamPayEngine.Start(new EngineOptions
        {
            DataDirectory = dir.Path, Clock = new SteppingClock().Now, SnapshotEveryCommands = 0, SnapshotOnStop = false, TickIntervalMs = 0,
        });
        foreach (var c in commands) engine.Submit(c);
        engine.Stop();
        return engine.LedgerAfterStop.ComputeStateHash();
    }

    [Fact]
    public void Replay_prints_the_live_state_hash_and_counts()
    {
        using var dir = new TempDataDir();
        string hash = WriteJournal(dir, 500);
        var (exit, output) = Run("replay", "--data", dir.Path);
        Assert.Equal(0, exit);
        Assert.Equal(hash, Field(output, "state_hash"));
        Assert.Equal("500", Field(output, "last_sequence"));
        Assert.Equal("500", Field(output, "records_replayed"));
        Assert.Equal("9", Field(output, "accounts"));
    }

    [Fact]
    public void Verify_is_clean_on_a_good_journal_and_exits_2_naming_the_problem_on_a_damaged_one()
    {
        using var dir = new TempDataDir();
        WriteJournal(dir, 300);
        var (exit, output) = Run("verify", "--data", dir.Path);
        Assert.Equal(0, exit);
        Assert.Equal("300", Field(output, "records"));
        Assert.Equal("0", Field(output, "problems"));

        string segment = Directory.GetFiles(dir.Journal, "*.seg").Single();
        using (var f = new FileStream(segment, FileMode.Open)) f.SetLength(f.Length - 7);
        (exit, output) = Run("verify", "--data", dir.Path);
        Assert.Equal(2, exit);
        Assert.Equal("299", Field(output, "records"));
        Assert.Contains(Path.GetFileName(segment), output);
        // Replay refuses to guess on a damaged journal.
        Assert.Equal(2, Run("replay", "--data", dir.Path).Exit);
    }

    [Fact]
    public void Inspect_prints_the_decoded_records_of_a_range()
    {
        using var dir = new TempDataDir();
        WriteJournal(dir, 100);
        var (exit, output) = Run("inspect", "--data", dir.Path, "--from", "1", "--to", "3");
        Assert.Equal(0, exit);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, lines.Length);
        Assert.Contains("OpenAccount", lines[0]);
        Assert.StartsWith("1 ", lines[0].TrimStart());
        Assert.StartsWith("3 ", lines[2].TrimStart());
    }

    [Fact]
    public void Missing_data_directory_and_missing_option_are_usage_errors()
    {
        Assert.Equal(1, Run("verify", "--data", "/nonexistent/rampay").Exit);
        Assert.NotEqual(0, Run("replay").Exit);
    }
}

public class CliSimulateTests
{
    [Fact]
    public void Simulate_writes_a_journal_whose_replay_gives_the_printed_state_hash_and_a_second_run_continues_it()
    {
        using var dir = new TempDataDir();
        var output = new StringWriter();
        Assert.Equal(0, RampayCli.Build(output).Parse(["simulate", "--data", dir.Path, "--count", "3000", "--wallets", "50"]).Invoke());
        string Field(string text, string name) =>
            text.Split('\n').Select(l => l.Trim()).Last(l => l.StartsWith(name + " ", StringComparison.Ordinal))[name.Length..].Trim();
        string first = output.ToString();
        Assert.Equal("3000", Field(first, "commands"));
        Assert.True(long.Parse(Field(first, "ok"), System.Globalization.CultureInfo.InvariantCulture) > 1000);
        Assert.True(long.Parse(Field(first, "rejected"), System.Globalization.CultureInfo.InvariantCulture) > 0);

        var replay = new StringWriter();
        Assert.Equal(0, RampayCli.Build(replay).Parse(["replay", "--data", dir.Path, "--no-snapshot"]).Invoke());
        Assert.Equal(Field(first, "state_hash"), Field(replay.ToString(), "state_hash"));

        var second = new StringWriter();
        Assert.Equal(0, RampayCli.Build(second).Parse(["simulate", "--data", dir.Path, "--count", "1000", "--wallets", "50", "--seed", "2"]).Invoke());
        Assert.Equal("4000", Field(second.ToString(), "last_sequence"));
        var replay2 = new StringWriter();
        Assert.Equal(0, RampayCli.Build(replay2).Parse(["replay", "--data", dir.Path]).Invoke());
        Assert.Equal(Field(second.ToString(), "state_hash"), Field(replay2.ToString(), "state_hash"));
    }

    /// <summary>
    /// Which keys a ledger still remembers is part of its state, so every tool that rebuilds one must assume the
    /// capacity the journal was written with: one option, defaulting to the server's, for simulate, replay and db.
    /// </summary>
    [Fact]
    public void The_idempotency_capacity_is_part_of_the_state_and_simulate_and_replay_both_take_it()
    {
        using var dir = new TempDataDir();
        string Field(string text, string name) =>
            text.Split('\n').Select(l => l.Trim()).Last(l => l.StartsWith(name + " ", StringComparison.Ordinal))[name.Length..].Trim();
        string Run(params string[] args)
        {
            var output = new StringWriter();
            int exit = RampayCli.Build(output).Parse(args).Invoke();
            Assert.True(exit == 0, output.ToString());
            return output.ToString();
        }
        string written = Field(Run("simulate", "--data", dir.Path, "--count", "600", "--wallets", "20", "--idempotency-max-keys", "100"), "state_hash");
        Assert.Equal(written, Field(Run("replay", "--data", dir.Path, "--no-snapshot", "--idempotency-max-keys", "100"), "state_hash"));
        // The server's default remembers all 600 keys: another state.
        Assert.NotEqual(written, Field(Run("replay", "--data", dir.Path, "--no-snapshot"), "state_hash"));
        Assert.Equal(EngineOptions.ServerIdempotencyMaxKeys.ToString(System.Globalization.CultureInfo.InvariantCulture),
            RampayCli.Build(TextWriter.Null).Parse(["replay", "--data", dir.Path]).GetValue<int>("--idempotency-max-keys").ToString(System.Globalization.CultureInfo.InvariantCulture));

        var refused = new StringWriter();
        Assert.Equal(RampayCli.ExitUsage, RampayCli.Build(refused).Parse(["replay", "--data", dir.Path, "--idempotency-max-keys", "0"]).Invoke());
        Assert.Contains("--idempotency-max-keys must be at least 1", refused.ToString(), StringComparison.Ordinal);
    }
}
