using RamPay.Pipeline;

// These tests start threads that spin and block; on a 2-core machine, running classes in parallel would
// make them slow and starve each other, so they run one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace RamPay.Pipeline.Tests;

internal static class TestSupport
{
    /// <summary>Upper bound for anything a test waits on: only reached when the code under test is broken.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    /// <summary>How long a test watches a thread that should stay blocked before it lets it go.</summary>
    public static readonly TimeSpan StaysBlocked = TimeSpan.FromMilliseconds(100);

    public static IWaitStrategy CreateStrategy(string name) => name switch
    {
        nameof(BlockingWaitStrategy) => new BlockingWaitStrategy(),
        nameof(SpinThenYieldWaitStrategy) => new SpinThenYieldWaitStrategy(),
        nameof(SpinThenBlockWaitStrategy) => new SpinThenBlockWaitStrategy(),
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, null),
    };

    public static void RunAll(params Action[] bodies)
    {
        Thread[] threads = [.. bodies.Select(body => new Thread(() => body()) { IsBackground = true })];
        foreach (Thread thread in threads)
        {
            thread.Start();
        }
        foreach (Thread thread in threads)
        {
            Assert.True(thread.Join(Timeout), "A thread did not finish in time.");
        }
    }

    public static void ClaimAndPublish(ISequencer sequencer, int count)
    {
        for (int i = 0; i < count; i++)
        {
            sequencer.Publish(sequencer.Next());
        }
    }
}

/// <summary>A handler made of a delegate, with counters for the lifecycle calls.</summary>
internal sealed class DelegateHandler<T>(Action<RingBuffer<T>, long, long> onBatch) : IBatchHandler<T> where T : struct
{
    public int StartCount;
    public int ShutdownCount;

    public void OnBatch(RingBuffer<T> ring, long first, long last) => onBatch(ring, first, last);

    public void OnStart() => Interlocked.Increment(ref StartCount);

    public void OnShutdown() => Interlocked.Increment(ref ShutdownCount);
}

/// <summary>A call running on its own thread, so a test can check that it stays blocked and later returns.</summary>
internal sealed class BackgroundCall<TResult>
{
    private readonly Thread _thread;
    private TResult? _result;
    private Exception? _error;

    public BackgroundCall(Func<TResult> call)
    {
        _thread = new Thread(() =>
        {
            try
            {
                _result = call();
            }
            catch (Exception e)
            {
                _error = e;
            }
        })
        { IsBackground = true };
        _thread.Start();
    }

    public bool Finished(TimeSpan timeout) => _thread.Join(timeout);

    /// <summary>What the call returned; fails the test if it has not returned within the test timeout or threw.</summary>
    public TResult Result
    {
        get
        {
            Assert.True(Finished(TestSupport.Timeout), "The call did not return in time.");
            Assert.Null(_error);
            return _result!;
        }
    }

    /// <summary>What the call threw; fails the test if it has not ended within the test timeout.</summary>
    public Exception? Error
    {
        get
        {
            Assert.True(Finished(TestSupport.Timeout), "The call did not end in time.");
            return _error;
        }
    }
}
