using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Logging;
using RamPay.Core;

namespace RamPay.Sinks;

/// <summary>
/// One sink's thread: opens the sink (retrying with backoff until it answers), then writes each batch the follower
/// hands it, skipping what its checkpoint already covers. A failed write is retried, after a backoff and a fresh
/// <see cref="IChangeSink.Open"/>, from the checkpoint the sink reports: so a batch is never half-applied (PostgreSQL
/// rolls its transaction back) and never skipped.
/// </summary>
public sealed class SinkRunner
{
    private readonly SinkHub _hub;
    private readonly BlockingCollection<ChangeBatch> _queue;
    private readonly ChangeSpool _spool;
    private readonly Thread _thread;
    private readonly ManualResetEventSlim _opened = new(false);
    private readonly string _hintPath;
    private SinkCheckpoint _checkpoint;
    private long _hintWrittenAtMs;
    private long _changesWritten;
    private long _batchesWritten;
    private long _failures;
    private volatile SinkError? _error;
    private volatile bool _connected;

    internal SinkRunner(IChangeSink sink, SinkHub hub)
    {
        Sink = sink;
        _hub = hub;
        _queue = new BlockingCollection<ChangeBatch>(hub.Options.QueueBatches);
        _spool = new ChangeSpool(Path.Combine(hub.Options.StateDirectory, sink.Name + ".spool"), hub.Options.SpoolMaxBytes);
        Limits = hub.Options.LimitsFor(sink.Name);
        _thread = new Thread(Run) { IsBackground = true, Name = "rampay-sink-" + sink.Name };
        _hintPath = Path.Combine(hub.Options.StateDirectory, sink.Name + ".checkpoint-hint");
        _checkpoint = ReadHint();
    }

    public IChangeSink Sink { get; }
    public string Name => Sink.Name;

    /// <summary>The sink's checkpoint as last reported or written. Before the sink first answers: the hint noted by the last run.</summary>
    public SinkCheckpoint Checkpoint
    {
        get { lock (_queue) return _checkpoint; }
        private set { lock (_queue) _checkpoint = value; }
    }

    /// <summary>True once the sink has answered since start (its checkpoint is then known, not a hint).</summary>
    public bool Opened => _opened.IsSet;
    /// <summary>True while the last call to the sink succeeded.</summary>
    public bool Connected => _connected;
    public SinkError? Error => _error;
    public long ChangesWritten => Interlocked.Read(ref _changesWritten);
    public long BatchesWritten => Interlocked.Read(ref _batchesWritten);
    public long Failures => Interlocked.Read(ref _failures);
    public int QueuedBatches => _queue.Count;
    /// <summary>Batches waiting in this sink's spool on disk (made while its memory queue was full).</summary>
    public long SpooledBatches => _spool.Batches;
    public long SpooledBytes => _spool.Bytes;
    /// <summary>Batches that went to the spool since start: each one a time the other sinks did not wait for this one.</summary>
    public long BatchesSpooledTotal => _spool.BatchesSpooled;
    /// <summary>This sink's back-pressure limits (<see cref="SinkHubOptions.LimitsFor"/>).</summary>
    public SinkLimits Limits { get; }

    /// <summary>Records and seconds (journaled time) between the sink's checkpoint and the journal's durable head.</summary>
    public SinkLag Lag(long headSequence, long headTimestampMs)
    {
        var checkpoint = Checkpoint;
        long records = Math.Max(0, headSequence - checkpoint.Sequence);
        // A sink that has never written has no time to count from: its lag in seconds is unknown (NaN), and only the
        // lag in records can hold ingress back. Otherwise: journaled time from its last record to the head's.
        double seconds = records == 0 ? 0
            : checkpoint.TimestampMs == 0 ? double.NaN
            : Math.Max(0, (headTimestampMs - checkpoint.TimestampMs) / 1000.0);
        return new SinkLag(records, seconds);
    }

    internal void Start() => _thread.Start();
    internal void Join(TimeSpan timeout) => _thread.Join(timeout);

    internal bool WaitOpened(CancellationToken stop)
    {
        try
        {
            _opened.Wait(stop);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>
    /// Hands a batch to this sink without ever waiting: into its memory queue while that has room and nothing is
    /// spooled, else (when <paramref name="spool"/>) behind the spooled ones on disk. <see cref="OfferResult.Full"/>
    /// when it may not spool, or the spool is at its byte budget too (the follower then waits for this sink).
    /// </summary>
    internal OfferResult Offer(ChangeBatch batch, bool spool)
    {
        // A sink stopped for good (fatal error) resumes from its own checkpoint at the next start: feed it nothing.
        if (_error is { Fatal: true } || !_thread.IsAlive && _opened.IsSet) return OfferResult.Dropped;
        lock (_spool.Lock)
        {
            if (!_spool.Active && _queue.TryAdd(batch)) return OfferResult.Queued;
            if (!spool || !_spool.HasRoom) return OfferResult.Full;
            _spool.Append(batch);
            return OfferResult.Spooled;
        }
    }

    private void Run()
    {
        var stop = _hub.Stopping;
        try
        {
            if (!OpenWithRetry(stop)) return;
            _opened.Set();
            var fromSpool = new ChangeBatch(_hub.Options.BatchChanges);
            var merged = new ChangeBatch(_hub.Options.BatchChanges);
            Func<bool> queueEmpty = () => _queue.Count == 0 && _carry is null;
            while (!stop.IsCancellationRequested)
            {
                // Oldest first: a batch carried over from the last merge, the memory queue, then the spool (Offer and
                // ChangeSpool.TryRead keep that order).
                var batch = _carry;
                _carry = null;
                if (batch is not null || _queue.TryTake(out batch) || (!_spool.Active && _queue.TryTake(out batch, 20, stop)))
                {
                    // Near the journal's head the follower hands on small batches (what one poll found). A sink that fell
                    // behind finds several waiting: they go in one write (one Kafka flush, one PostgreSQL transaction) up
                    // to BatchChanges, or each small batch would pay a whole round trip and the sink could not catch up
                    // (the Kafka sink capped near 10,000 records/s that way: docs/benchmarks.md, "Rewards worker live at 10,000 eligible
                    // payments/s: met on the idle machine, once the sinks write small batches together").
                    var write = batch.IsFull || _queue.Count == 0 ? batch : Merge(batch, merged);
                    try
                    {
                        if (!WriteWithRetry(write, stop)) return;
                    }
                    finally
                    {
                        if (ReferenceEquals(write, batch)) _hub.Release(batch);
                        else merged.Clear();
                    }
                }
                else if (_spool.TryRead(fromSpool, queueEmpty))
                {
                    if (!WriteWithRetry(fromSpool, stop)) return;
                    fromSpool.Clear();
                }
            }
        }
        catch (OperationCanceledException)
        {
            // stopping
        }
        catch (Exception e)
        {
            _error = new SinkError($"{e.GetType().Name}: {e.Message}", DateTimeOffset.UtcNow, Fatal: true);
            _hub.Options.Logger.LogError(e, "sink {Sink} stopped for good at checkpoint {SinkSequence}", Name, Checkpoint.Sequence);
        }
        finally
        {
            if (_carry is { } carried) _hub.Release(carried);
            _carry = null;
            WriteHint(force: true);
        }
    }

    // A batch taken from the memory queue that did not fit in the last merged write: the oldest unwritten one, so it goes next.
    private ChangeBatch? _carry;

    /// <summary>
    /// <paramref name="first"/> and the batches waiting behind it in the memory queue, copied into <paramref name="into"/>
    /// while they fit in <see cref="SinkHubOptions.BatchChanges"/>; each one copied is released. A batch that does not
    /// fit is kept for the next write (<see cref="_carry"/>), so the order of the changes is the follower's.
    /// </summary>
    private ChangeBatch Merge(ChangeBatch first, ChangeBatch into)
    {
        Invariant.Check(into.Count == 0, "the merge batch is in use");
        var next = first;
        do
        {
            into.Append(next);
            _hub.Release(next);
            if (!_queue.TryTake(out next)) return into;
        }
        while (into.Count + next.Count <= into.Capacity);
        _carry = next;
        return into;
    }

    internal void DisposeSpool() => _spool.Dispose();

    private bool OpenWithRetry(CancellationToken stop)
    {
        var backoff = _hub.Options.RetryMin;
        while (!stop.IsCancellationRequested)
        {
            try
            {
                var checkpoint = Sink.Open();
                Checkpoint = checkpoint;
                _connected = true;
                _error = null;
                return true;
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                Fail(e);
                if (stop.WaitHandle.WaitOne(backoff)) return false;
                backoff = Next(backoff);
            }
        }
        return false;
    }

    /// <summary>Writes what of <paramref name="batch"/> is past the checkpoint, retrying until it is written or the hub stops.</summary>
    private bool WriteWithRetry(ChangeBatch batch, CancellationToken stop)
    {
        var backoff = _hub.Options.RetryMin;
        while (true)
        {
            ReadOnlySpan<Change> changes = batch.Changes;
            long after = Checkpoint.Sequence;
            if (batch.LastSequence <= after) return true; // written before (the follower started behind this sink)
            int skip = 0;
            while (skip < changes.Length && changes[skip].Sequence <= after) skip++;
            if (skip > 0 && changes[skip - 1].Sequence == changes[skip].Sequence)
                RamPay.Core.Invariant.Fail($"the {Name} sink's checkpoint {after} splits the changes of one record");
            if (skip == 0 && changes[0].Sequence > after + 1)
                RamPay.Core.Invariant.Fail($"the {Name} sink is at {after} but the next change is for record {changes[0].Sequence}: records would be skipped");
            var through = new SinkCheckpoint(batch.LastSequence, batch.LastTimestampMs);
            try
            {
                Sink.Write(changes[skip..], through);
                Checkpoint = through;
                _connected = true;
                _error = null;
                Interlocked.Add(ref _changesWritten, changes.Length - skip);
                Interlocked.Increment(ref _batchesWritten);
                WriteHint(force: false);
                return true;
            }
            catch (Exception e) when (e is not OperationCanceledException and not RamPay.Core.InvariantViolationException)
            {
                Fail(e);
                if (stop.WaitHandle.WaitOne(backoff)) return false;
                backoff = Next(backoff);
                if (!OpenWithRetry(stop)) return false;
                if (Checkpoint.Sequence < after)
                    throw new InvalidOperationException($"the {Name} sink went back from checkpoint {after} to {Checkpoint.Sequence}: its store lost written records (restored from a backup?); restart RamPay to re-send them");
            }
        }
    }

    private void Fail(Exception e)
    {
        _connected = false;
        Interlocked.Increment(ref _failures);
        bool first = _error is null;
        _error = new SinkError($"{e.GetType().Name}: {e.Message}", DateTimeOffset.UtcNow, Fatal: false);
        // Once per outage, not once per retry: the error itself stays readable in Error (and /health, metrics).
        if (first) _hub.Options.Logger.LogWarning("sink {Sink} failed, retrying with backoff: {Reason}", Name, e.Message);
    }

    private TimeSpan Next(TimeSpan backoff)
    {
        var doubled = backoff * 2;
        return doubled > _hub.Options.RetryMax ? _hub.Options.RetryMax : doubled;
    }

    /// <summary>
    /// Notes the checkpoint in the data folder about once a second. Only a hint: it lets the lag (and so
    /// back-pressure) count from roughly the right place when the sink is unreachable at the next start.
    /// </summary>
    private void WriteHint(bool force)
    {
        long now = Environment.TickCount64;
        if (!force && now - _hintWrittenAtMs < 1000) return;
        _hintWrittenAtMs = now;
        var checkpoint = Checkpoint;
        try
        {
            RamPay.Journal.AtomicFile.Write(_hintPath, System.Text.Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{checkpoint.Sequence} {checkpoint.TimestampMs}\n")));
        }
        catch (IOException)
        {
            // A hint; the real checkpoint lives with the sink's data.
        }
    }

    private SinkCheckpoint ReadHint()
    {
        try
        {
            if (!File.Exists(_hintPath)) return SinkCheckpoint.None;
            var parts = File.ReadAllText(_hintPath).Split(' ', StringSplitOptions.TrimEntries);
            return parts.Length == 2 && long.TryParse(parts[0], CultureInfo.InvariantCulture, out long s) && long.TryParse(parts[1], CultureInfo.InvariantCulture, out long t)
                ? new SinkCheckpoint(s, t)
                : SinkCheckpoint.None;
        }
        catch (IOException)
        {
            return SinkCheckpoint.None;
        }
    }
}

/// <summary>What <see cref="SinkRunner.Offer"/> did with a batch.</summary>
internal enum OfferResult
{
    Queued,
    Spooled,
    /// <summary>The sink stopped for good; it resumes from its checkpoint at the next start.</summary>
    Dropped,
    /// <summary>Queue and spool full: the follower must wait for this sink.</summary>
    Full,
}
