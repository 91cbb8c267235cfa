using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace RamPay.Journal.Tests;

/// <summary>
/// <see cref="AtomicFile"/> under crashes, as numbered steps. (a) A model of a file system that keeps what is durable
/// apart from what is only in the page cache, with power cut after each step: the target holds the old content or
/// the new, whole, and once <see cref="AtomicFile.Write(string, ReadOnlySpan{byte}, UnixFileMode?)"/> has returned,
/// the new. The same model shows what the writer-fence token and the JWT key used to lose (no fsync of the folder),
/// and what a rename before the fsync would tear. (b) A real process killed (SIGKILL) while it rewrites a file in a loop.
/// </summary>
public class AtomicFileTests
{
    private static readonly byte[] Old = Encoding.ASCII.GetBytes("old content, 7\n");
    private static readonly byte[] New = Encoding.ASCII.GetBytes("new content, a little longer: 8\n");

    [Fact]
    public void The_steps_go_write_fsync_rename_fsync_of_the_folder_in_that_order()
    {
        var fs = new PowerLossFileSystem();
        fs.Seed("/data/writer-fence", Old);
        AtomicFile.Write(fs, "/data/writer-fence", New);
        Assert.Equal(
            ["create /data/writer-fence.tmp", "write /data/writer-fence.tmp", "fsync /data/writer-fence.tmp", "rename /data/writer-fence.tmp /data/writer-fence", "fsync-dir /data"],
            fs.Calls);
    }

    [Fact]
    public void Power_lost_after_any_step_leaves_the_old_content_or_the_new_and_after_the_last_step_the_new()
    {
        int steps = Record(new PowerLossFileSystem()).Calls.Count;
        for (int cut = 0; cut <= steps; cut++)
        {
            // 1. The file holds the old content, durably (written, fsynced, its name fsynced).
            var fs = new PowerLossFileSystem { CutPowerAfter = cut };
            fs.Seed("/data/writer-fence", Old);
            // 2. Replace it; the power goes out after `cut` calls (the call in progress then does not happen).
            bool returned = Attempt(fs);
            // 3. Power back: only what was durable is there.
            byte[]? after = fs.AfterPowerLoss("/data/writer-fence");
            // 4. Never missing, never torn; new once the write returned.
            Assert.NotNull(after);
            Assert.True(after.AsSpan().SequenceEqual(Old) || after.AsSpan().SequenceEqual(New), $"power cut after {cut} calls: the file holds '{Encoding.ASCII.GetString(after)}'");
            if (returned) Assert.Equal(New, after);
            if (cut < steps) Assert.False(returned);
        }
    }

    [Fact]
    public void Without_the_fsync_of_the_folder_a_power_loss_brings_back_the_old_token_after_the_write_returned()
    {
        // What FencingTokenFile and the JWT key did before AtomicFile: the model must catch it, or the test above proves nothing.
        // 1.
        var fs = new PowerLossFileSystem();
        fs.Seed("/data/writer-fence", Old);
        // 2. Write, fsync, rename; no fsync of /data. The write "returned".
        using (var file = fs.Create("/data/writer-fence.tmp", null))
        {
            file.Write(New);
            file.Flush();
        }
        fs.Rename("/data/writer-fence.tmp", "/data/writer-fence");
        // 3, 4. The power goes out: the rename is lost, the older token is back.
        Assert.Equal(Old, fs.AfterPowerLoss("/data/writer-fence"));
    }

    [Fact]
    public void A_rename_before_the_fsync_of_the_file_can_leave_an_empty_file()
    {
        // 1.
        var fs = new PowerLossFileSystem();
        fs.Seed("/data/jwt-signing.key", Old);
        // 2. Write, rename and fsync the folder, but cut the power before the file's own fsync.
        var file = fs.Create("/data/jwt-signing.key.tmp", null);
        file.Write(New);
        fs.Rename("/data/jwt-signing.key.tmp", "/data/jwt-signing.key");
        fs.FlushDirectory("/data");
        // 3, 4. The name is durable, its data is not: an empty key.
        Assert.Equal([], fs.AfterPowerLoss("/data/jwt-signing.key") ?? throw new InvalidOperationException("the name was lost"));
        file.Dispose();
    }

    [Fact]
    public void On_the_real_file_system_the_new_content_replaces_the_old_and_no_temporary_is_left()
    {
        string dir = Directory.CreateTempSubdirectory("rampay-atomic-").FullName;
        try
        {
            string path = Path.Combine(dir, "key");
            AtomicFile.Write(path, Old, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            AtomicFile.Write(path, New, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            Assert.Equal(New, File.ReadAllBytes(path));
            Assert.False(File.Exists(path + AtomicFile.TemporarySuffix));
            if (!OperatingSystem.IsWindows()) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void A_process_killed_while_it_rewrites_a_file_leaves_a_whole_version_at_least_as_new_as_the_last_acknowledged()
    {
        string dir = Directory.CreateTempSubdirectory("rampay-atomic-kill-").FullName;
        try
        {
            string path = Path.Combine(dir, "writer-fence");
            for (int round = 0; round < 3; round++)
            {
                // 1. A child process rewrites the file in a loop (version N: a header and 64 KiB that all say N, so a
                //    torn file shows), and prints "wrote N" after each AtomicFile.Write returned.
                long before = File.Exists(path) ? AtomicFileChild.Verify(File.ReadAllBytes(path)) : 0;
                using var child = Process.Start(ChildStart(path))!;
                // 2. Let it write a while (a different number of versions each round), then SIGKILL it mid-loop.
                long acknowledged = 0, killAt = before + 40 + 37 * round;
                while (acknowledged < killAt && child.StandardOutput.ReadLine() is { } line)
                    acknowledged = Acknowledged(line, acknowledged);
                child.Kill(entireProcessTree: true);
                Assert.True(child.WaitForExit(30_000), "the killed child did not exit");
                // The pipe holds what the child printed before it died: the last acknowledgement is its last line.
                foreach (var line in child.StandardOutput.ReadToEnd().Split('\n')) acknowledged = Acknowledged(line, acknowledged);
                Assert.True(acknowledged >= killAt, $"the child acknowledged only {acknowledged} writes: {child.StandardError.ReadToEnd()}");
                // 3. The file is there and whole: one version, from the last acknowledged on (the next may have landed).
                long version = AtomicFileChild.Verify(File.ReadAllBytes(path));
                Assert.InRange(version, acknowledged, acknowledged + 1);
                // 4. No temporary is mistaken for the file; the next round goes on from this version.
                Assert.True(version > before);
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static long Acknowledged(string line, long previous) =>
        line.StartsWith("wrote ", StringComparison.Ordinal) ? long.Parse(line.AsSpan(6).Trim(), CultureInfo.InvariantCulture) : previous;

    private static ProcessStartInfo ChildStart(string path)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(typeof(AtomicFileChild).Assembly.Location);
        start.ArgumentList.Add(AtomicFileChild.Verb);
        start.ArgumentList.Add(path);
        return start;
    }

    private static PowerLossFileSystem Record(PowerLossFileSystem fs)
    {
        fs.Seed("/data/writer-fence", Old);
        AtomicFile.Write(fs, "/data/writer-fence", New);
        return fs;
    }

    private static bool Attempt(PowerLossFileSystem fs)
    {
        try
        {
            AtomicFile.Write(fs, "/data/writer-fence", New);
            return true;
        }
        catch (PowerLossFileSystem.PowerCutException)
        {
            return false;
        }
    }
}

/// <summary>
/// A file system that keeps two states: what a reader sees now (the page cache), and what is on stable storage. A file's
/// data becomes durable at its fsync; a name (creation, rename) at the fsync of its directory, as POSIX promises and
/// no more. <see cref="AfterPowerLoss"/> reads the durable state. <see cref="CutPowerAfter"/> makes the call after that
/// many calls throw instead of happening.
/// </summary>
internal sealed class PowerLossFileSystem : IAtomicFileSteps
{
    public sealed class PowerCutException() : Exception("the power went out");

    private sealed class Inode
    {
        public List<byte> Cached = [];
        public byte[] Durable = [];
    }

    private readonly Dictionary<string, Inode> _names = [];
    private readonly Dictionary<string, Inode> _durableNames = [];

    public List<string> Calls { get; } = [];
    public int CutPowerAfter { get; init; } = int.MaxValue;

    /// <summary>A file that is already durable, name and data.</summary>
    public void Seed(string path, byte[] content)
    {
        var inode = new Inode { Cached = [.. content], Durable = content };
        _names[path] = inode;
        _durableNames[path] = inode;
    }

    public byte[]? AfterPowerLoss(string path) => _durableNames.TryGetValue(path, out var inode) ? inode.Durable : null;

    private void Call(string what)
    {
        if (Calls.Count >= CutPowerAfter) throw new PowerCutException();
        Calls.Add(what);
    }

    public IAtomicFileBeingWritten Create(string path, UnixFileMode? mode)
    {
        Call("create " + path);
        var inode = new Inode();
        _names[path] = inode;
        return new File(this, path, inode);
    }

    public void Rename(string from, string to)
    {
        Call($"rename {from} {to}");
        _names[to] = _names[from];
        _names.Remove(from);
    }

    public void FlushDirectory(string directory)
    {
        Call("fsync-dir " + directory);
        foreach (var name in _durableNames.Keys.Where(n => Path.GetDirectoryName(n) == directory).ToList()) _durableNames.Remove(name);
        foreach (var (name, inode) in _names.Where(n => Path.GetDirectoryName(n.Key) == directory)) _durableNames[name] = inode;
    }

    private sealed class File(PowerLossFileSystem fs, string path, Inode inode) : IAtomicFileBeingWritten
    {
        public void Write(ReadOnlySpan<byte> bytes)
        {
            fs.Call("write " + path);
            inode.Cached.AddRange(bytes.ToArray());
        }

        public void Flush()
        {
            fs.Call("fsync " + path);
            inode.Durable = [.. inode.Cached];
        }

        public void Dispose() { }
    }
}
