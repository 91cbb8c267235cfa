namespace RamPay.Pipeline;

/// <summary>
/// What one stage waits on: slots published by the sequencer or, for a stage placed after others, slots
/// those stages have finished. Waits with the sequencer's <see cref="ISequencer.WaitStrategy"/>, the one
/// that publishing signals, so a barrier cannot be built with a strategy nobody wakes.
/// </summary>
public sealed class SequenceBarrier
{
    private readonly ISequencer _sequencer;
    private readonly IWaitStrategy _waitStrategy;
    private readonly Sequence[] _dependentSequences;
    private volatile bool _alerted;

    public SequenceBarrier(ISequencer sequencer, params Sequence[] dependentSequences)
    {
        ArgumentNullException.ThrowIfNull(sequencer);
        ArgumentNullException.ThrowIfNull(dependentSequences);
        _sequencer = sequencer;
        _waitStrategy = sequencer.WaitStrategy;
        _dependentSequences = [.. dependentSequences];
    }

    public IWaitStrategy WaitStrategy => _waitStrategy;

    /// <summary>The sequencer whose slots this barrier waits for (a failing stage alerts its producers through it).</summary>
    public ISequencer Sequencer => _sequencer;

    public bool IsAlerted => _alerted;

    /// <summary>
    /// Waits until <paramref name="sequence"/> is available and returns the highest available sequence,
    /// which may be further ahead: the caller can take the whole batch. Throws <see cref="AlertException"/>
    /// once <see cref="Alert"/> has been called.
    /// </summary>
    public long WaitFor(long sequence)
    {
        CheckAlert();
        return _waitStrategy.WaitFor(sequence, this);
    }

    /// <summary>
    /// The highest sequence available now, without waiting; below <paramref name="sequence"/> when that one
    /// is not available yet.
    /// </summary>
    public long HighestAvailable(long sequence)
    {
        if (_dependentSequences.Length != 0)
        {
            // Stages only ever finish published slots, so their minimum needs no availability check.
            return Sequence.Minimum(_dependentSequences, long.MaxValue);
        }
        return _sequencer.HighestPublishedFrom(sequence);
    }

    /// <summary>Makes current and future waits throw <see cref="AlertException"/>, waking blocked waiters.</summary>
    public void Alert()
    {
        _alerted = true;
        _waitStrategy.SignalAllWhenBlocking();
    }

    public void ClearAlert() => _alerted = false;

    public void CheckAlert()
    {
        if (_alerted)
        {
            throw new AlertException();
        }
    }
}
