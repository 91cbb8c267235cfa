using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace RamPay.Webhooks;

/// <summary>
/// The outcome-batching loop the webhook and notification dispatchers share: attempts hand their outcome to a bounded
/// channel (<see cref="Capacity"/>; a full channel makes the attempt wait, which holds new attempts back), and one
/// reader writes them to the store in batches of at most <see cref="BatchSize"/>, one transaction (one fsync) for many.
/// A batch that cannot be written is logged and dropped: those rows stay pending (their claim expires) and are
/// attempted again, which is the at-least-once the dispatchers promise. After each batch, <c>written</c> is called with
/// it (the dispatcher forgets those ids and wakes up).
/// </summary>
public sealed class BatchedOutcomeWriter<T>
{
    public const int Capacity = 65_536;
    public const int BatchSize = 512;

    private readonly Channel<T> _channel = Channel.CreateBounded<T>(new BoundedChannelOptions(Capacity) { SingleReader = true });
    private readonly Action<IReadOnlyList<T>> _store;
    private readonly Action<IReadOnlyList<T>> _written;
    private readonly ILogger _logger;
    private readonly string _what;

    /// <param name="store">Writes one batch durably (throws on failure).</param>
    /// <param name="written">Called after every batch, written or not.</param>
    /// <param name="what">What the outcomes are, for the log: "webhook", "notification".</param>
    public BatchedOutcomeWriter(Action<IReadOnlyList<T>> store, Action<IReadOnlyList<T>> written, ILogger logger, string what)
    {
        _store = store;
        _written = written;
        _logger = logger;
        _what = what;
    }

    /// <summary>Queues one outcome (waits while the channel is full). Never cancelled: an outcome of a finished attempt is always kept.</summary>
    public ValueTask WriteAsync(T outcome) => _channel.Writer.WriteAsync(outcome, CancellationToken.None);

    /// <summary>No more outcomes: <see cref="RunAsync"/> writes what is queued and returns.</summary>
    public void Complete() => _channel.Writer.TryComplete();

    /// <summary>The writing loop; returns after <see cref="Complete"/> once everything queued is written.</summary>
    public async Task RunAsync()
    {
        var batch = new List<T>(BatchSize);
        var reader = _channel.Reader;
        while (await reader.WaitToReadAsync(CancellationToken.None).ConfigureAwait(false))
        {
            while (batch.Count < BatchSize && reader.TryRead(out var o)) batch.Add(o);
            try
            {
                _store(batch);
            }
            catch (Exception e)
            {
                _logger.LogError(e, "{Count} {What} outcomes could not be written; those will be attempted again", batch.Count, _what);
            }
            _written(batch);
            batch.Clear();
        }
    }
}
