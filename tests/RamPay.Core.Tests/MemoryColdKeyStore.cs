namespace RamPay.Core.Tests;

/// <summary>
/// An in-memory stand-in for the idempotency keys' cold tier, shared by the allocation tests of the cold paths
/// (<see cref="ColdPathAllocationTests"/>, <see cref="ColdPaymentAllocationTests"/>): entries are copied at flush and
/// visible at once (the real store does its I/O on its own thread). Sized up front by <paramref name="capacity"/>, so
/// that its copies allocate nothing inside a measured loop.
/// </summary>
internal sealed class MemoryColdKeyStore(int capacity) : IColdKeyStore
{
    public readonly Dictionary<(long, IdempotencyKey), KeyEntry> Entries = new(capacity);
    private long _visible;
    public long VisibleGeneration => _visible;
    public bool TryLookup(long clientId, IdempotencyKey key, long limitIndex, out KeyEntry entry) =>
        Entries.TryGetValue((clientId, key), out entry) && entry.Index < limitIndex;
    public void Flush(KeyLog source, long generation, long firstIndex, long endIndex, long lastSequence)
    {
        for (long i = firstIndex; i < endIndex; i++)
        {
            source.ReadClosed(i, out var e);
            Entries[(e.Command.ClientId, e.Command.Key)] = e;
        }
        _visible = generation;
    }
    public void WaitVisible(long generation) { }
}
