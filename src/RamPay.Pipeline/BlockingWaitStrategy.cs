namespace RamPay.Pipeline;

/// <summary>
/// Blocks on a monitor until signalled: an idle waiter costs no CPU. While nobody is blocked, signalling is
/// two plain reads, with no fence and no lock; the lock and the wake-up are paid only when a waiter actually
/// sleeps, and once per sleep however many signals arrive meanwhile.
/// </summary>
public sealed class BlockingWaitStrategy : IWaitStrategy
{
    private readonly object _gate = new();

    /// <summary>Waiters inside the blocking part of <see cref="WaitFor"/>; written only under <see cref="_gate"/>.</summary>
    private int _blockedCount;

    /// <summary>1 once a signaller has committed to pulsing; each waiter resets it before it checks and sleeps.</summary>
    private int _wakePending;

    public long WaitFor(long sequence, SequenceBarrier barrier)
    {
        long available = barrier.HighestAvailable(sequence);
        if (available >= sequence)
        {
            return available;
        }
        lock (_gate)
        {
            Volatile.Write(ref _blockedCount, _blockedCount + 1);
            try
            {
                while (true)
                {
                    Volatile.Write(ref _wakePending, 0);
                    // A signaller stores a sequence, then loads _blockedCount and _wakePending with no fence
                    // of its own, so either side could miss the other's store and the wake-up would be lost.
                    // This process-wide barrier, paid only by a thread about to sleep, orders the signaller's
                    // store and loads against ours: either the check below sees its sequence, or it sees us
                    // blocked with no wake-up pending and pulses, which cannot happen before Monitor.Wait
                    // because pulsing takes the lock this thread holds until then.
                    Interlocked.MemoryBarrierProcessWide();
                    if ((available = barrier.HighestAvailable(sequence)) >= sequence)
                    {
                        return available;
                    }
                    barrier.CheckAlert();
                    Monitor.Wait(_gate);
                }
            }
            finally
            {
                Volatile.Write(ref _blockedCount, _blockedCount - 1);
            }
        }
    }

    public void SignalAllWhenBlocking()
    {
        if (Volatile.Read(ref _blockedCount) != 0
            && Volatile.Read(ref _wakePending) == 0
            && Interlocked.Exchange(ref _wakePending, 1) == 0)
        {
            lock (_gate)
            {
                Monitor.PulseAll(_gate);
            }
        }
    }
}
