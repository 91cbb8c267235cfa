namespace RamPay.Pipeline;

/// <summary>
/// One stage's work. It sees a whole batch at once so that an I/O stage can write (and fsync) once per
/// batch instead of once per slot. An exception stops the stage: see <see cref="BatchEventProcessor{T}.Fault"/>.
/// </summary>
public interface IBatchHandler<T> where T : struct
{
    /// <summary>Handles the slots [<paramref name="first"/>..<paramref name="last"/>], in order, on the stage's thread.</summary>
    void OnBatch(RingBuffer<T> ring, long first, long last);

    /// <summary>Runs on the stage's thread before the first batch.</summary>
    void OnStart()
    {
    }

    /// <summary>Runs on the stage's thread after the last batch, also when the stage failed.</summary>
    void OnShutdown()
    {
    }
}
