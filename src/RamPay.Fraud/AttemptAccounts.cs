namespace RamPay.Fraud;

/// <summary>
/// What the fraud stage (rules version 4) knows of each account besides its feature windows, from the commands it has
/// seen and nothing else: when the account was first seen (its age), and its balance as the stage estimates it (every
/// attempted payment counted as if it had succeeded, deposits credited). The stage runs ahead of the writer, so it may
/// not read the ledger's accounts; these two replace the account's opening time and available balance in the features.
/// Seeded from the ledger once, at the journaled upgrade point (the writer does it while the stage waits), then kept by
/// the stage alone. Chunks of 1,024 accounts, allocated when an account of the chunk is first seen.
/// </summary>
public sealed class AttemptAccounts
{
    private const int ChunkShift = 10;
    private const int ChunkSize = 1 << ChunkShift;
    private const int ChunkMask = ChunkSize - 1;
    private const int StateFormatVersion = 1;

    private readonly Entry[]?[] _chunks;

    public AttemptAccounts(int maxAccounts)
    {
        if (maxAccounts < 1) throw new ArgumentOutOfRangeException(nameof(maxAccounts), maxAccounts, "at least one account");
        MaxAccounts = maxAccounts;
        _chunks = new Entry[]?[(maxAccounts + ChunkSize - 1) >> ChunkShift];
    }

    public int MaxAccounts { get; }
    /// <summary>Accounts seen (or seeded).</summary>
    public int SeenAccounts { get; private set; }

    /// <summary>The account's entry; marks it seen at <paramref name="nowMs"/> if it was not (its age starts then).</summary>
    public ref Entry See(int accountId, long nowMs)
    {
        ref var e = ref EntryOf(accountId);
        if (!e.Seen)
        {
            e.Seen = true;
            e.FirstSeenMs = nowMs;
            SeenAccounts++;
        }
        return ref e;
    }

    /// <summary>At the upgrade point: an account the ledger already has, with its opening time and available balance.</summary>
    public void Seed(int accountId, long createdMs, long available)
    {
        ref var e = ref See(accountId, createdMs);
        e.FirstSeenMs = createdMs;
        e.Balance = available;
    }

    private ref Entry EntryOf(int accountId)
    {
        if (accountId < 1 || accountId > MaxAccounts) throw new ArgumentOutOfRangeException(nameof(accountId), accountId, $"account ids are 1..{MaxAccounts}");
        int index = accountId - 1;
        // The one allocation of the stage's path: once per 1,024 accounts, when the first of them is seen.
        var chunk = _chunks[index >> ChunkShift] ??= new Entry[ChunkSize];
        return ref chunk[index & ChunkMask];
    }

    /// <summary>Adds to an estimated balance without wrapping (an estimate saturates at the long range).</summary>
    public static long AddSaturating(long balance, long delta)
    {
        long sum = balance + delta;
        // Overflow only when both operands have the same sign and the sum's differs.
        if (((balance ^ sum) & (delta ^ sum)) < 0) return balance < 0 ? long.MinValue : long.MaxValue;
        return sum;
    }

    // ---- state encoding (a rules-version-4 ledger's state, and so its hash) ----

    public void Write(BinaryWriter w)
    {
        w.Write(StateFormatVersion);
        w.Write(SeenAccounts);
        int written = 0;
        for (int c = 0; c < _chunks.Length; c++)
        {
            var chunk = _chunks[c];
            if (chunk is null) continue;
            for (int i = 0; i < chunk.Length; i++)
            {
                ref var e = ref chunk[i];
                if (!e.Seen) continue;
                w.Write((c << ChunkShift) + i + 1);
                w.Write(e.FirstSeenMs);
                w.Write(e.Balance);
                written++;
            }
        }
        if (written != SeenAccounts) throw new InvalidOperationException("invariant violated: seen-account count out of step with the entries");
    }

    public static AttemptAccounts Read(BinaryReader r, int maxAccounts)
    {
        var store = new AttemptAccounts(maxAccounts);
        int version = r.ReadInt32();
        if (version != StateFormatVersion) throw new InvalidDataException($"fraud stage account state version {version} is not known (this RamPay knows {StateFormatVersion})");
        int count = r.ReadInt32();
        if (count < 0 || count > maxAccounts) throw new InvalidDataException($"fraud stage account state holds {count} accounts; at most {maxAccounts}");
        int previous = 0;
        for (int n = 0; n < count; n++)
        {
            int id = r.ReadInt32();
            if (id <= previous || id > maxAccounts) throw new InvalidDataException($"fraud stage account state: account {id} out of order or beyond {maxAccounts}");
            ref var e = ref store.EntryOf(id);
            e.Seen = true;
            e.FirstSeenMs = r.ReadInt64();
            e.Balance = r.ReadInt64();
            previous = id;
        }
        store.SeenAccounts = count;
        return store;
    }

    /// <summary>One account as the stage sees it.</summary>
    public struct Entry
    {
        public long FirstSeenMs;
        public long Balance;
        public bool Seen;
    }
}
