namespace RamPay.Pipeline;

/// <summary>
/// Hands out ring slots to producers and tells consumers which slots are published. A producer claims with
/// <see cref="Next(int)"/>, writes the slots through <see cref="RingBuffer{T}"/>, then publishes them.
/// </summary>
public interface ISequencer
{
    int BufferSize { get; }

    /// <summary>The strategy that consumers of this sequencer wait with; publishing signals it.</summary>
    IWaitStrategy WaitStrategy { get; }

    /// <summary>
    /// Single producer: the highest published sequence. Multi producer: the highest claimed sequence;
    /// use <see cref="GetHighestPublishedSequence"/> to learn which of the claimed slots are published.
    /// </summary>
    long Cursor { get; }

    /// <summary>Claims one slot and returns its sequence, waiting while the ring is full.</summary>
    long Next();

    /// <summary>Claims <paramref name="n"/> contiguous slots (1 ≤ n ≤ <see cref="BufferSize"/>) and returns the highest, waiting while the ring is full.</summary>
    long Next(int n);

    /// <summary>Claims <paramref name="n"/> contiguous slots if the ring has room for them now; never waits.</summary>
    bool TryNext(int n, out long highest);

    void Publish(long sequence);

    /// <summary>Publishes the claimed range [<paramref name="lo"/>..<paramref name="hi"/>] with one wake-up.</summary>
    void Publish(long lo, long hi);

    /// <summary>
    /// Adds the sequences of the stages that must finish a slot before it may be reused. Add them before the
    /// first claim: a producer never waits for a stage it does not know about. Whoever advances one of them
    /// must then call <see cref="IWaitStrategy.SignalAllWhenBlocking"/>, as <see cref="BatchEventProcessor{T}"/>
    /// does, since a producer held back by a full ring may be blocked in the wait strategy.
    /// </summary>
    void AddGatingSequences(params Sequence[] gatingSequences);

    bool IsAvailable(long sequence);

    /// <summary>The highest sequence in [<paramref name="lowerBound"/>..<paramref name="availableSequence"/>] below which every slot is published; lowerBound - 1 if lowerBound itself is not.</summary>
    long GetHighestPublishedSequence(long lowerBound, long availableSequence);

    /// <summary>
    /// For a consumer about to read <paramref name="lowerBound"/> (having finished the slot before it, and
    /// gating producers itself or through the stages after it): the highest sequence up to which every slot
    /// from <paramref name="lowerBound"/> on is published; lowerBound - 1 or less if lowerBound itself is not.
    /// </summary>
    long HighestPublishedFrom(long lowerBound);

    /// <summary>Slots a producer could claim now without waiting.</summary>
    long RemainingCapacity();

    /// <summary>
    /// Makes every producer waiting for room, now or later, throw <see cref="AlertException"/>. Called when a stage
    /// fails: a failed stage never frees its slots again, so a producer on a full ring would otherwise wait forever.
    /// </summary>
    void AlertProducers();
}
