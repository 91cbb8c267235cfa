using Xunit.Abstractions;

namespace RamPay.Simulation.Tests;

/// <summary>
/// The seeded fault simulation (<see cref="Simulator"/>). A few seeds run in CI; any number on demand:
/// <code>
/// RAMPAY_SIM_SEED=123 dotnet test tests/RamPay.Simulation.Tests -c Release --filter Seed_from_the_environment
/// RAMPAY_SIM_SEED=1 RAMPAY_SIM_SEEDS=500 RAMPAY_SIM_STEPS=4000 dotnet test ... --filter Seed_from_the_environment
/// RAMPAY_SIM_COLD=1 RAMPAY_SIM_SEED=1 RAMPAY_SIM_SEEDS=200 dotnet test ... --filter Seed_from_the_environment   (the cold key tier)
/// RAMPAY_SIM_RULES3=1 RAMPAY_SIM_SEED=1 RAMPAY_SIM_SEEDS=200 dotnet test ... --filter Seed_from_the_environment (rules 3: payments' tier too)
/// </code>
/// A failure names its seed and step; the same seed replays the same run exactly.
/// </summary>
public class SimulationTests(ITestOutputHelper output)
{
    private const int CiSteps = 1500;
    private const int CiSeeds = 6;

    /// <summary>Seeds 1..6, in CI: each must pass, and together they must have met every fault the simulation injects.</summary>
    [Fact]
    public void Ci_seeds()
    {
        var results = new List<SimulationResult>();
        for (int seed = 1; seed <= CiSeeds; seed++)
        {
            results.Add(Simulator.Run(seed, CiSteps));
            output.WriteLine(results[^1].ToString());
        }
        Assert.Contains(results, r => r.FailedFlushes > 0);
        Assert.Contains(results, r => r.TornWrites > 0);
        Assert.Contains(results, r => r.LostUnacknowledged > 0);
        Assert.Contains(results, r => r.Archive && r.SegmentsRetired > 0 && r.ArchiveChecks > 0);
        Assert.Contains(results, r => !r.Archive && r.SegmentsRetired > 0);
        Assert.True(results.Sum(r => r.Crashes) >= 100, $"{results.Sum(r => r.Crashes)} crashes");
        Assert.All(results, r => Assert.True(r.Recoveries > 10 && r.Snapshots > 10 && r.LastSequence > 1000, r.ToString()));
    }

    /// <summary>
    /// Seeds 1..4 with the cold key tier (rules version 2, 128 keys in memory, the real segment store): the state hash after every
    /// recovery equals the all-in-memory reference's, and together the seeds met cold hits, torn segment tails and collection.
    /// </summary>
    [Fact]
    public void Ci_seeds_with_the_cold_key_tier()
    {
        var results = new List<SimulationResult>();
        for (int seed = 1; seed <= 4; seed++)
        {
            results.Add(Simulator.Run(seed, CiSteps, coldTier: true));
            output.WriteLine(results[^1].ToString());
        }
        Assert.All(results, r => Assert.True(r.ColdTier && r.Recoveries > 10 && r.Snapshots > 10 && r.LastSequence > 1000, r.ToString()));
        Assert.True(results.Sum(r => r.ColdHits) > 100, $"{results.Sum(r => r.ColdHits)} keys answered from the cold tier");
        Assert.Contains(results, r => r.ColdTornTails > 0);
        Assert.Contains(results, r => r.ColdSegmentsDropped > 0);
        Assert.True(results.Sum(r => r.Crashes) >= 60, $"{results.Sum(r => r.Crashes)} crashes");
        // The store's writer runs on its own thread, held to seeded points: a seed still replays exactly.
        Assert.Equal(Simulator.Run(9, 600, coldTier: true), Simulator.Run(9, 600, coldTier: true));
    }

    /// <summary>
    /// Seeds 1..4 under rules version 3 (the server's default until version 4 added the fraud stage): the cold key tier and the payments' cold tier (16 payments hot in
    /// chunks of 16, the real payment log, written only at seeded points): crashes at any journal or snapshot file operation,
    /// the log behind (generations not let write are lost) and ahead (written after the snapshot recovery starts from), torn
    /// log tails; after every recovery the state hash equals the all-in-memory ledger's (which under rules 3 keeps every payment).
    /// </summary>
    [Fact]
    public void Ci_seeds_with_the_payments_cold_tier()
    {
        var results = new List<SimulationResult>();
        for (int seed = 1; seed <= 4; seed++)
        {
            results.Add(Simulator.Run(seed, CiSteps, rules3: true));
            output.WriteLine(results[^1].ToString());
        }
        Assert.All(results, r => Assert.True(r.ColdPayments && r.Recoveries > 10 && r.Snapshots > 10 && r.LastSequence > 1000, r.ToString()));
        // The cold path, not a bigger hot one: most payments left memory, and commands on old ones came back from the log.
        Assert.All(results, r => Assert.True(r.Payments > 20 * ColdTierWorld.HotPayments, r.ToString()));
        Assert.True(results.Sum(r => r.PaymentColdLoads) > 100, $"{results.Sum(r => r.PaymentColdLoads)} old payments brought back from the log");
        Assert.Contains(results, r => r.PaymentTornTails > 0);
        Assert.True(results.Sum(r => r.Crashes) >= 60, $"{results.Sum(r => r.Crashes)} crashes");
        Assert.Equal(Simulator.Run(9, 600, rules3: true), Simulator.Run(9, 600, rules3: true));
    }

    /// <summary>RAMPAY_SIM_SEED (default 1000), RAMPAY_SIM_SEEDS (how many seeds from there, default 1), RAMPAY_SIM_STEPS (default 1,500), RAMPAY_SIM_COLD=1 (the cold key tier), RAMPAY_SIM_RULES3=1 (and the payments').</summary>
    [Fact]
    public void Seed_from_the_environment()
    {
        int first = int.TryParse(Environment.GetEnvironmentVariable("RAMPAY_SIM_SEED"), out int s) ? s : 1000;
        int count = int.TryParse(Environment.GetEnvironmentVariable("RAMPAY_SIM_SEEDS"), out int c) ? c : 1;
        int steps = int.TryParse(Environment.GetEnvironmentVariable("RAMPAY_SIM_STEPS"), out int n) ? n : CiSteps;
        var totals = new long[4];
        for (int seed = first; seed < first + count; seed++)
        {
            SimulationResult result = Simulator.Run(seed, steps, coldTier: Environment.GetEnvironmentVariable("RAMPAY_SIM_COLD") == "1",
                rules3: Environment.GetEnvironmentVariable("RAMPAY_SIM_RULES3") == "1");
            totals[0] += result.Crashes;
            totals[1] += result.FailedFlushes;
            totals[2] += result.TornWrites;
            totals[3] += result.SegmentsRetired;
            if (count <= 20) output.WriteLine(result.ToString());
        }
        output.WriteLine($"{count} seeds from {first}, {steps} steps each: {totals[0]} crashes, {totals[1]} failed flushes, {totals[2]} torn writes, {totals[3]} segments retired");
    }

    [Fact]
    public void A_seed_replays_exactly()
    {
        SimulationResult first = Simulator.Run(77, 800);
        Assert.Equal(first, Simulator.Run(77, 800));
        Assert.NotEqual(first, Simulator.Run(78, 800));
    }

    /// <summary>The checks can fail: a disk whose flushes make nothing durable loses acknowledged commands, and the simulation says so with its seed.</summary>
    [Fact]
    public void A_disk_that_lies_about_fsync_is_caught()
    {
        var failure = Assert.Throws<SimulationFailure>(() => new Simulator(5, lyingDisk: true).Run(CiSteps));
        output.WriteLine(failure.Message);
        Assert.Contains("simulation seed 5 failed", failure.Message);
        Assert.Contains("RAMPAY_SIM_SEED=5", failure.Message);
    }
}
