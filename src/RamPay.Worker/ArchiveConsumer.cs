using RamPay.Events;

namespace RamPay.Worker;

/// <summary>
/// The worker's built-in consumer <c>archive</c>: keeps every event as <c>DIR/{event_id}.json</c> (the exact JSON),
/// written to a temporary name, fsynced, renamed, and the folder fsynced before the batch returns. Idempotent by
/// construction (an event seen again overwrites its own file with the same bytes). A plain, durable copy of the
/// stream, and the consumer the worker's own tests run.
/// </summary>
public sealed class ArchiveConsumer(string directory) : IEventConsumer
{
    public string Name => "archive";

    public ValueTask<EventPosition> ReadCheckpointAsync(CancellationToken cancellationToken)
    {
        // Fed from the event log: the highest id on disk (files are written in stream order, one batch at a time).
        EventPosition highest = EventPosition.None;
        if (Directory.Exists(directory))
            foreach (var file in Directory.EnumerateFiles(directory, "*.json"))
                if (EventPosition.TryParse(Path.GetFileNameWithoutExtension(file), out var p) && p > highest) highest = p;
        return ValueTask.FromResult(highest);
    }

    public ValueTask HandleAsync(EventBatch batch, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(directory);
        // Each file: temporary name, fsync, rename, directory fsync (AtomicFile): durable before the batch returns.
        foreach (var e in batch.Events) RamPay.Journal.AtomicFile.Write(Path.Combine(directory, e.EventId + ".json"), e.Json.Span);
        return ValueTask.CompletedTask;
    }
}
