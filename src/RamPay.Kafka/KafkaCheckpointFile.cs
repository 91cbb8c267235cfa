using System.Globalization;
using System.Text;
using RamPay.Sinks;

namespace RamPay.Kafka;

/// <summary>
/// The Kafka sink's checkpoint: the last journal record whose events the brokers acknowledged, in one small text
/// file, <c>kafka.checkpoint</c>: <c>rampay-kafka-checkpoint 1 SEQUENCE TIMESTAMP_MS TOPIC</c> and a newline.
/// Written whole with <see cref="RamPay.Journal.AtomicFile"/> (temporary file, fsync, rename, fsync of the folder): a crash leaves
/// either the old checkpoint or the new one, never a torn one. It names the topic so that a sink pointed at another
/// topic does not skip what that topic never received.
/// </summary>
public sealed class KafkaCheckpointFile(string directory, string topic)
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
        byte[] bytes = Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{Magic} {FormatVersion} {checkpoint.Sequence} {checkpoint.TimestampMs} {Topic}\n"));
        RamPay.Journal.AtomicFile.Write(Path, bytes);
    }
}
