namespace RamPay.Simulation.Tests;

/// <summary>The simulated file system keeps its promises: what was flushed survives a crash, the rest may not.</summary>
public class SimulatedFileSystemTests
{
    private const string Dir = "/t";

    private static SimulatedFileSystem Files(int seed)
    {
        var files = new SimulatedFileSystem(new Random(seed));
        files.CreateDirectory(Dir);
        return files;
    }

    [Fact]
    public void Flushed_data_and_directory_entries_survive_every_crash()
    {
        for (int seed = 0; seed < 50; seed++)
        {
            var files = Files(seed);
            using (var file = files.OpenWrite(Dir + "/a", create: true))
            {
                file.Write("hello"u8, 0);
                file.FlushData();
                file.Write(" world"u8, 5); // not flushed
            }
            files.FlushDirectory(Dir);
            files.Crash();
            byte[] after = files.ReadAll(Dir + "/a");
            Assert.True(after.Length >= 5 && after.AsSpan(0, 5).SequenceEqual("hello"u8), $"seed {seed}");
            // What survives of the unflushed write is a prefix of it, never other bytes.
            Assert.True(after.AsSpan(5).SequenceEqual(" world"u8[..(after.Length - 5)]), $"seed {seed}");
        }
    }

    [Fact]
    public void Unflushed_writes_are_lost_or_torn_across_seeds()
    {
        int whole = 0, none = 0, torn = 0;
        for (int seed = 0; seed < 200; seed++)
        {
            var files = Files(seed);
            using (var file = files.OpenWrite(Dir + "/a", create: true))
            {
                file.FlushAll();
                file.Write(new byte[100], 0);
            }
            files.FlushDirectory(Dir);
            files.Crash();
            int length = files.ReadAll(Dir + "/a").Length;
            if (length == 100) whole++;
            else if (length == 0) none++;
            else torn++;
        }
        Assert.True(whole > 0 && none > 0 && torn > 0, $"whole {whole}, none {none}, torn {torn}");
    }

    [Fact]
    public void Directory_changes_need_a_directory_flush()
    {
        var files = Files(1);
        using (var file = files.OpenWrite(Dir + "/old", create: true))
        {
            file.Write("x"u8, 0);
            file.FlushAll();
        }
        files.FlushDirectory(Dir);
        using (var file = files.OpenWrite(Dir + "/new", create: true)) file.FlushAll();
        files.Move(Dir + "/old", Dir + "/renamed", overwrite: false);
        files.Crash();
        // The creation and the rename were never made durable: the directory is as it was at its last flush.
        Assert.Equal([Dir + "/old"], files.ListFiles(Dir, "*"));

        files.Delete(Dir + "/old");
        files.Crash();
        Assert.True(files.FileExists(Dir + "/old"));
        files.Delete(Dir + "/old");
        files.FlushDirectory(Dir);
        files.Crash();
        Assert.False(files.FileExists(Dir + "/old"));
    }

    [Fact]
    public void A_failed_flush_throws_and_makes_nothing_durable()
    {
        var files = Files(2);
        var file = files.OpenWrite(Dir + "/a", create: true);
        files.FlushDirectory(Dir);
        file.Write("data"u8, 0);
        files.FlushFailureChance = 1;
        Assert.Throws<SimulatedIOException>(file.FlushData);
        Assert.Equal(1, files.FailedFlushes);
        files.FlushFailureChance = 0;
        files.Crash();
        // What the failed flush was flushing was never promised: here a crash kept some prefix of it, or none.
        Assert.True(files.ReadAll(Dir + "/a").AsSpan().SequenceEqual("data"u8[..files.ReadAll(Dir + "/a").Length]));

        // A disk that lies: its flushes "succeed" and still lose data at a crash, for some seeds.
        int lost = 0;
        for (int seed = 0; seed < 20; seed++)
        {
            var lying = Files(seed);
            lying.LieAboutFlushes = true;
            using (var f = lying.OpenWrite(Dir + "/a", create: true))
            {
                f.Write("data"u8, 0);
                f.FlushData();
            }
            lying.FlushDirectory(Dir);
            lying.Crash();
            if (lying.ReadAll(Dir + "/a").Length < 4) lost++;
        }
        Assert.True(lost > 0);
    }

    [Fact]
    public void A_scheduled_crash_stops_the_operation_and_old_handles_are_dead()
    {
        var files = Files(3);
        var file = files.OpenWrite(Dir + "/a", create: true);
        files.CrashAfterOperations = 2;
        file.Write("one"u8, 0);
        Assert.Throws<SimulatedCrashException>(() => file.Write("two"u8, 3));
        files.Crash();
        Assert.Throws<InvalidOperationException>(() => file.Write("three"u8, 0));
    }
}
