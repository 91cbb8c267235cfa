using System.Collections.Concurrent;
using System.Diagnostics;
using RamPay.Core;
using RamPay.Engine;
using RamPay.Server.Observability;

namespace RamPay.Server.Hosting;

public enum EngineState { Starting, Ready, Failed, Stopped }

/// <summary>
/// Commands submitted together (one HTTP request, or one TCP frame) whose results arrive from the engine's output
/// thread. The engine gives a contiguous batch contiguous slots and completes slots in order, so the batch is done
/// when its last command completes.
/// </summary>
public sealed class PendingCommands
{
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal PendingCommands(int count)
    {
        Results = new CommandResult[count];
        SubmittedAtMs = Environment.TickCount64;
        SubmittedTimestamp = Stopwatch.GetTimestamp();
    }

    internal long SubmittedAtMs { get; }
    /// <summary>When it was submitted (<see cref="Stopwatch.GetTimestamp"/>), for the acknowledgement latency (<see cref="AckLatency"/>).</summary>
    internal long SubmittedTimestamp { get; }

    /// <summary>The trace span from submit to durable completion; null unless traces are recorded.</summary>
    internal Activity? Activity { get; set; }
    /// <summary>The journal sequence of the last command, set on completion (for the span).</summary>
    internal long LastJournalSequence { get; set; }

    /// <summary>One result per command, in submission order; valid once <see cref="Completion"/> has finished.</summary>
    public CommandResult[] Results { get; }
    public Task Completion => _done.Task;

    internal void Complete(int index, in CommandResult result)
    {
        Results[index] = result;
        if (index == Results.Length - 1) _done.TrySetResult();
    }

    internal void Fail(Exception error) => _done.TrySetException(error);
}

/// <summary>The engine is not running (still replaying, stopped or failed): the request is answered 503.</summary>
public sealed class EngineUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>Ingress must wait: a sink (PostgreSQL, Kafka) is further behind the journal than its configured limit.</summary>
public sealed class BackPressureException(string message) : Exception(message);

/// <summary>
/// Owns the engine inside the server: starts it in the background (replay can take a while; HTTP answers
/// <c>/health/ready</c> 503 meanwhile), routes each completed result back to the request that waits for it, and
/// stops the process loudly if a pipeline stage fails (a broken invariant: the journal makes a restart safe).
/// </summary>
public sealed class EngineHost : ICommandCompletion, IDisposable
{
    // A correlation is (pending id << IndexBits) | index within the submitted batch; 0 is "nobody waits" (ticks).
    private const int IndexBits = 20;
    private const long IndexMask = (1L << IndexBits) - 1;
    public const int MaxBatch = 1 << IndexBits;

    private readonly EngineOptions _options;
    private readonly ConcurrentDictionary<long, PendingCommands> _pending = new();
    private readonly TimeSpan _commandTimeout;
    private long _nextPendingId;
    private volatile RamPayEngine? _engine;
    private volatile EngineState _state = EngineState.Starting;
    private Timer? _watchdog;
    // Only the output thread touches these two: the last pending it looked up, since a batch's slots come in a row.
    private long _lastId;
    private PendingCommands? _last;

    public EngineHost(EngineOptions options, TimeSpan commandTimeout)
    {
        _options = options;
        _commandTimeout = commandTimeout;
    }

    public EngineState State => _state;
    public Exception? Failure { get; private set; }
    public RecoveryReport? Recovery => _engine?.Recovery;
    /// <summary>The highest journal sequence whose result has been handed back (durable and applied).</summary>
    public long CompletedSequence => _engine?.CompletedSequence ?? 0;

    /// <summary>Submit-to-durable-reply latency per minute, recorded on the output thread (GET /v1/admin/latency).</summary>
    public AckLatency AckLatency { get; } = new();

    /// <summary>The running engine (null before start), for metrics that read its counters.</summary>
    public RamPayEngine? RunningEngine => _engine;

    /// <summary>The journaled time (unix ms) of the command at <see cref="CompletedSequence"/>.</summary>
    public long CompletedTimestampMs => Volatile.Read(ref _completedTimestampMs);
    private long _completedTimestampMs;

    /// <summary>
    /// Asked before each new command: a reason while ingress must hold back (the sinks lag past their limit), else
    /// null. HTTP answers 503 <c>sinks_lagging</c>; TCP stops reading until it clears, so TCP itself pushes back: the
    /// ingress gateway applies it for both (Ingress/IngressGateway.cs); <see cref="ExecuteAsync"/> also refuses while it
    /// holds, for the commands that do not come through ingress (sign-up, the rewards consumer).
    /// </summary>
    public Func<string?>? BackPressure { get; set; }

    /// <summary>Called when the engine fails; the server logs and exits. Settable so tests of the host can observe it.</summary>
    public Action<Exception> OnFatal { get; set; } = _ => { };

    /// <summary>
    /// Recovers the data folder and starts the pipeline. Runs on a thread-pool thread; throws if recovery fails.
    /// <paramref name="fence"/> (the writer lease, when several processes share the data) is asked before every write.
    /// </summary>
    public Task StartAsync(IWriteFence? fence = null) => Task.Run(() =>
    {
        try
        {
            _engine = RamPayEngine.Start(fence is null ? _options : _options with { WriteFence = fence }, this);
            _watchdog = new Timer(_ => CheckHealth(), null, 100, 100);
        }
        catch (Exception e)
        {
            Failure = e;
            _state = EngineState.Failed;
            throw;
        }
    });

    /// <summary>Marks the engine as ready for requests (after the host's own start-up commands).</summary>
    public void MarkReady()
    {
        if (_state == EngineState.Starting) _state = EngineState.Ready;
    }

    private void CheckHealth()
    {
        ExpireWaiters();
        var engine = _engine;
        if (engine?.Fault is not { } fault || _state == EngineState.Failed) return;
        Failure = fault;
        _state = EngineState.Failed;
        var error = new EngineUnavailableException("the engine failed; the server stops", fault);
        foreach (var p in _pending.Values) p.Fail(error);
        OnFatal(fault);
    }

    private RamPayEngine Engine(bool allowStarting = false)
    {
        var engine = _engine;
        var state = _state;
        if (engine is null || state == EngineState.Failed || state == EngineState.Stopped || (state == EngineState.Starting && !allowStarting))
            throw new EngineUnavailableException(state switch
            {
                EngineState.Starting => "the server is starting (replaying its journal)",
                EngineState.Failed => "the engine failed",
                _ => "the server is stopping",
            });
        return engine;
    }

    /// <summary>Submits one command (with its attachment, if any) and waits until it is durable and applied.</summary>
    public async Task<CommandResult> ExecuteAsync(Command command, byte[]? attachment = null, bool duringStartup = false, ICommandReadBack? readBack = null)
    {
        var engine = Engine(duringStartup);
        if (!duringStartup && BackPressure?.Invoke() is { } reason) throw new BackPressureException(reason);
        var (id, pending) = Register(1);
        pending.Activity = RamPayTelemetry.StartEngineSpan(command.Type, 1);
        try
        {
            engine.Submit(command, (id << IndexBits) | 0, attachment, readBack);
        }
        catch (Exception e)
        {
            _pending.TryRemove(id, out _);
            var error = new EngineUnavailableException("the engine did not accept the command", e);
            if (pending.Activity is { } span) RamPayTelemetry.EndEngineSpan(span, 0, default, error);
            throw error;
        }
        await Wait(pending).ConfigureAwait(false);
        return pending.Results[0];
    }

    /// <summary>
    /// Submits commands and returns the waiter for their results. Without attachments they go in one claim,
    /// contiguous in the journal; with any, one by one in order (the ring completes them in that order all the same).
    /// </summary>
    public PendingCommands Submit(ReadOnlySpan<Command> commands, byte[]?[]? attachments = null)
    {
        if (commands.Length is 0 or > MaxBatch) throw new ArgumentOutOfRangeException(nameof(commands), commands.Length, $"a batch holds 1..{MaxBatch} commands");
        if (attachments is not null && attachments.Length != commands.Length) throw new ArgumentException("one attachment (or null) per command", nameof(attachments));
        var engine = Engine();
        var (id, pending) = Register(commands.Length);
        pending.Activity = RamPayTelemetry.StartEngineSpan(commands[0].Type, commands.Length);
        try
        {
            if (attachments is null || Array.TrueForAll(attachments, a => a is null))
            {
                engine.SubmitBatch(commands, id << IndexBits);
            }
            else
            {
                for (int i = 0; i < commands.Length; i++) engine.Submit(commands[i], (id << IndexBits) | (long)i, attachments[i]);
            }
        }
        catch (Exception e)
        {
            _pending.TryRemove(id, out _);
            var error = new EngineUnavailableException("the engine did not accept the commands", e);
            if (pending.Activity is { } span) RamPayTelemetry.EndEngineSpan(span, 0, default, error);
            throw error;
        }
        return pending;
    }

    /// <summary>
    /// Waits for a batch from <see cref="Submit"/>; one still not durable after the command timeout fails with
    /// <see cref="EngineUnavailableException"/>. The watchdog expires waiters, so a wait costs no timer of its own.
    /// </summary>
    public Task Wait(PendingCommands pending) => pending.Activity is null ? pending.Completion : WaitTraced(pending);

    private static async Task WaitTraced(PendingCommands pending)
    {
        try
        {
            await pending.Completion.ConfigureAwait(false);
        }
        catch (Exception e)
        {
            RamPayTelemetry.EndEngineSpan(pending.Activity!, 0, default, e);
            throw;
        }
        RamPayTelemetry.EndEngineSpan(pending.Activity!, pending.LastJournalSequence, pending.Results[0], null);
    }

    /// <summary>Fails (and forgets) every waiter older than the command timeout: its caller hears 503, its command may still land.</summary>
    private void ExpireWaiters()
    {
        long cutoff = Environment.TickCount64 - (long)_commandTimeout.TotalMilliseconds;
        foreach (var (id, pending) in _pending)
        {
            if (pending.SubmittedAtMs > cutoff) continue;
            pending.Fail(new EngineUnavailableException($"the command did not become durable within {_commandTimeout.TotalMilliseconds:0} ms"));
            _pending.TryRemove(id, out _);
        }
    }

    /// <summary>Reads the ledger through the ring: the answer reflects every command acknowledged before it.</summary>
    public async Task<T> QueryAsync<T>(Func<IReadOnlyLedger, T> read, bool duringStartup = false)
    {
        var engine = Engine(duringStartup);
        Task<T> answer;
        try
        {
            answer = engine.QueryAsync(read);
        }
        catch (Exception e)
        {
            throw new EngineUnavailableException("the engine did not accept the query", e);
        }
        try
        {
            return await answer.WaitAsync(_commandTimeout).ConfigureAwait(false);
        }
        catch (TimeoutException e)
        {
            throw new EngineUnavailableException("the query was not answered in time", e);
        }
    }

    private (long Id, PendingCommands Pending) Register(int count)
    {
        long id = Interlocked.Increment(ref _nextPendingId);
        var pending = new PendingCommands(count);
        _pending[id] = pending;
        return (id, pending);
    }

    /// <summary>On the engine's output thread, in journal order, once each command is durable.</summary>
    public void OnCompleted(long journalSequence, ref CommandSlot slot)
    {
        Volatile.Write(ref _completedTimestampMs, slot.Command.TimestampMs);
        long correlation = slot.Correlation;
        if (correlation == 0) return;
        long id = correlation >> IndexBits;
        int index = (int)(correlation & IndexMask);
        var pending = _last;
        if (id != _lastId || pending is null)
        {
            if (!_pending.TryGetValue(id, out pending)) return; // its waiter gave up (timeout) long ago
            _last = pending;
            _lastId = id;
        }
        if (index == pending.Results.Length - 1) pending.LastJournalSequence = journalSequence;
        pending.Complete(index, slot.Result);
        if (index == pending.Results.Length - 1)
        {
            AckLatency.RecordSince(pending.SubmittedTimestamp);
            _pending.TryRemove(id, out _);
            _last = null;
        }
    }

    /// <summary>Stops the engine: drains what was submitted, snapshots, closes the journal. Stop the listeners first.</summary>
    public void Stop()
    {
        var engine = _engine;
        if (_state != EngineState.Failed) _state = EngineState.Stopped;
        _watchdog?.Dispose();
        if (engine is null) return;
        try
        {
            engine.Stop();
        }
        finally
        {
            var error = new EngineUnavailableException("the server stopped");
            foreach (var p in _pending.Values) p.Fail(error);
        }
    }

    public void Dispose()
    {
        Stop();
        // The container disposes this after every hosted service has stopped, the sinks too: their follower reads the engine's cold
        // stores no more, so they close now even if SinksService never released them (a failed start skips StoppedAsync).
        _engine?.Dispose();
        AckLatency.Dispose();
    }
}
