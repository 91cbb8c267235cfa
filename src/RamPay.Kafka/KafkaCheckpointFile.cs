using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using RamPay.Sinks;

namespace RamPay.Kafka;

/// <summary>
/// The Kafka sink's checkpoint: the last journal record whose events the brokers acknowledged, in one small text
/// file, <c>kafka.checkpoint</c>: <c>rampay-kafka-checkpoint 1 SEQUENCE TIMESTAMP_MS TOPIC</c> and a newline.
/// Written whole to a temporary file, fsynced, renamed over the old one, and the directory fsynced: a crash leaves
/// either the old checkpoint or the new one, never a torn one. It names the topic so that a sink pointed at another
/// topic does not skip what that topic never received.
/// </summary>
public sealed partial class KafkaCheckpointFile(string directory, string topic)
{
    public const string FileName = "kafka.checkpoint";
    private const string Magic = "rampay-kafka-checkpoint";
    private const int FormatVersion = 1;

    public string Path { get; } = System.IO.Path.Combine(directory, FileName);
    public string Topic { get; } = topic;

    /// <summary>The checkpoint, or <see cref="SinkCheckpoint.None"/> when there is no file yet. Throws on a malformed file or another topic's.</summary>
    public SinkCheckpoint Read()
    {
        string text;
        try
        {
            text = File.ReadAllText(Path, Encoding.UTF8);
        }
        catch (FileNotFoundException)
        {
            return SinkCheckpoint.None;
        }
        catch (DirectoryNotFoundException)
        {
            return SinkCheckpoint.None;
        }
        string[] parts = text.TrimEnd('\n').Split(' ');
        if (parts.Length != 5 || parts[0] != Magic || parts[1] != FormatVersion.ToString(CultureInfo.InvariantCulture)
            || !long.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out long sequence)
            || !long.TryParse(parts[3], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long timestampMs))
            throw new InvalidDataException($"{Path} is not a Kafka sink checkpoint ('{Magic} {FormatVersion} SEQUENCE TIMESTAMP_MS TOPIC')");
        if (parts[4] != Topic)
            throw new InvalidOperationException(
                $"{Path} is the checkpoint of topic '{parts[4]}', not '{Topic}': to send the journal to the new topic from its start, " +
                "delete the file (the follower then needs the journal from its first record); otherwise set the topic back");
        return new SinkCheckpoint(sequence, timestampMs);
    }

    /// <summary>Replaces the checkpoint durably.</summary>
    public void Write(SinkCheckpoint checkpoint)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(checkpoint.Sequence);
        string directory = System.IO.Path.GetDirectoryName(Path)!;
        Directory.CreateDirectory(directory);
        string tmp = Path + ".tmp";
        byte[] bytes = Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{Magic} {FormatVersion} {checkpoint.Sequence} {checkpoint.TimestampMs} {Topic}\n"));
        using (var file = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 1, FileOptions.None))
        {
            file.Write(bytes);
            file.Flush(flushToDisk: true);
        }
        File.Move(tmp, Path, overwrite: true);
        FlushDirectory(directory);
    }

    /// <summary>Makes the rename durable: without it the new name can vanish after a power loss.</summary>
    private static void FlushDirectory(string directory)
    {
        if (OperatingSystem.IsWindows()) return; // no directory handle to flush; NTFS journals its metadata
        int fd = open(directory, 0 /* O_RDONLY */);
        if (fd < 0) throw new IOException($"open({directory}) failed with errno {Marshal.GetLastPInvokeError()}");
        try
        {
            if (fsync(fd) != 0) throw new IOException($"fsync({directory}) failed with errno {Marshal.GetLastPInvokeError()}");
        }
        finally
        {
            _ = close(fd);
        }
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fsync(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);
}
