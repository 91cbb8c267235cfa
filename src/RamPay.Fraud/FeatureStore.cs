using System.Runtime.CompilerServices;

namespace RamPay.Fraud;

/// <summary>
/// The fraud features of every account, kept up to date one payment at a time on the writer thread.
/// <para>
/// Each account has a fixed-size state (696 bytes): sliding windows as rings of time buckets (1 minute = six
/// 10-second buckets, 1 hour = six 10-minute buckets, 24 hours = twelve 2-hour buckets), the running mean and
/// variance of its log amounts (Welford), the time of its last payment, and its last <see cref="RecentPayees"/>
/// distinct payees. A window at time t holds the payments whose bucket is one of the last B buckets up to and
/// including t's, so "the last hour" spans between 50 and 60 minutes of history depending on where t falls in its
/// bucket. Advancing a ring clears at most B buckets, so every update and every read is O(1) with a bound that does
/// not depend on traffic, and nothing is allocated after an account's chunk exists.
/// </para>
/// <para>
/// "Is the receiver new to the sender" looks at the sender's last <see cref="RecentPayees"/> distinct payees, most
/// recent first. The answer can be wrong in one direction only: a payee the sender has paid before, but not among
/// their last eight distinct payees, is reported new again. It is never reported known when it is not.
/// </para>
/// States live in chunks of 1,024 accounts allocated the first time an account in the chunk pays or is paid:
/// memory is bounded by the accounts that take part in payments (at most the ledger's MaxAccounts). Everything is a
/// pure function of the payments recorded, in order, so replaying a journal rebuilds it exactly.
/// </summary>
public sealed class FeatureStore
{
    public const int RecentPayees = 8;
    public const long Bucket1mMs = 10_000;
    public const int Buckets1m = 6;
    public const long Bucket1hMs = 600_000;
    public const int Buckets1h = 6;
    public const long Bucket24hMs = 7_200_000;
    public const int Buckets24h = 12;
    private const long HourMs = 3_600_000;
    private const double PerHour = 1.0 / HourMs;
    private const int ChunkShift = 10;
    private const int ChunkSize = 1 << ChunkShift;
    private const int ChunkMask = ChunkSize - 1;
    private const int StateFormatVersion = 1;

    private readonly AccountState[]?[] _chunks;

    public FeatureStore(int maxAccounts)
    {
        if (maxAccounts < 1) throw new ArgumentOutOfRangeException(nameof(maxAccounts), maxAccounts, "at least one account");
        MaxAccounts = maxAccounts;
        _chunks = new AccountState[]?[(maxAccounts + ChunkSize - 1) >> ChunkShift];
    }

    public int MaxAccounts { get; }
    /// <summary>Accounts that have paid or been paid in a scored payment.</summary>
    public int TouchedAccounts { get; private set; }

    /// <summary>
    /// Writes the features of <paramref name="p"/> into <paramref name="features"/> (length at least
    /// <see cref="Features.Count"/>) as they stand before it, then records the payment into both accounts' state.
    /// Journaled time must not go back: a timestamp older than one already recorded for either account throws.
    /// </summary>
    public void ComputeAndRecord(in PaymentFacts p, Span<double> features)
    {
        if (features.Length < Features.Count) throw new ArgumentException($"room for {Features.Count} features is needed", nameof(features));
        if (p.From == p.To) throw new ArgumentException("a payment needs two different accounts", nameof(p));
        if (p.Amount <= 0) throw new ArgumentOutOfRangeException(nameof(p), p.Amount, "the amount must be positive");
        ref var s = ref State(p.From);
        ref var r = ref State(p.To);
        long now = p.NowMs;
        long b1m = FloorDiv(now, Bucket1mMs), b1h = FloorDiv(now, Bucket1hMs), b24h = FloorDiv(now, Bucket24hMs);
        // Each side advances only the rings it reads and writes: a receiver's state is a few cache lines.
        Touch(ref s, b1m, b1h, b24h);
        Touch(ref r, b1m, b1h, b24h);
        AdvanceSender(ref s, b1m, b1h, b24h);
        AdvanceReceiver(ref r, b1h, b24h);

        // ---- features, before this payment ----
        double amountLog2 = DetMath.Log2OnePlus(p.Amount);
        features[Features.AmountLog2] = amountLog2;
        features[Features.AmountZ] = s.SentTotal == 0 ? 0 : (amountLog2 - s.MeanLog2) / Math.Sqrt(s.M2Log2 / s.SentTotal + 0.25);
        features[Features.SenderPaymentsLog2] = DetMath.Log2OnePlus(s.SentTotal);
        features[Features.SenderCount1m] = s.TotalCount1m;
        features[Features.SenderSum1mLog2] = DetMath.Log2OnePlus(s.TotalSum1m);
        features[Features.SenderCount1h] = s.TotalCount1h;
        features[Features.SenderSum1hLog2] = DetMath.Log2OnePlus(s.TotalSum1h);
        features[Features.SenderCount24h] = s.TotalCount24h;
        features[Features.SenderSum24hLog2] = DetMath.Log2OnePlus(s.TotalSum24h);
        features[Features.SenderNewPayees1h] = s.TotalNew1h;
        features[Features.SenderNewPayees24h] = s.TotalNew24h;
        long since = s.SentTotal > 0 ? now - s.LastSentMs : now - p.FromCreatedMs;
        features[Features.SecondsSinceLastLog2] = DetMath.Log2OnePlus(Math.Max(0, since) * 0.001);
        int known = IndexOf(s.Payees, p.To);
        bool isNew = known < 0;
        features[Features.ReceiverNewToSender] = isNew ? 1 : 0;
        features[Features.ReceiverCount1h] = r.TotalIn1h;
        features[Features.ReceiverCount24h] = r.TotalIn24h;
        features[Features.ReceiverNewSenders24h] = r.TotalInNew24h;
        long hour = FloorMod(FloorDiv(now, HourMs), 24);
        features[Features.HourOfDay] = hour;
        features[Features.Night] = hour < 6 ? 1 : 0;
        features[Features.SenderAgeLog2] = DetMath.Log2OnePlus(Math.Max(0, now - p.FromCreatedMs) * PerHour);
        features[Features.ReceiverAgeLog2] = DetMath.Log2OnePlus(Math.Max(0, now - p.ToCreatedMs) * PerHour);
        features[Features.DrainFraction] = p.FromAvailable > 0 ? Math.Min(1, p.Amount / (double)p.FromAvailable) : 1;

        // ---- record it ----
        int i1m = Slot(b1m, Buckets1m), i1h = Slot(b1h, Buckets1h), i24h = Slot(b24h, Buckets24h);
        int newOne = isNew ? 1 : 0;
        // Each window keeps the total of its buckets beside them, so reading a window is one load.
        ref var o1m = ref s.Out1m[i1m];
        ref var o1h = ref s.Out1h[i1h];
        ref var o24h = ref s.Out24h[i24h];
        s.TotalCount1m += Increment(ref o1m.Count, 1); s.TotalSum1m += AddSaturating(ref o1m.Sum, p.Amount);
        s.TotalCount1h += Increment(ref o1h.Count, 1); s.TotalSum1h += AddSaturating(ref o1h.Sum, p.Amount); s.TotalNew1h += Increment(ref o1h.New, newOne);
        s.TotalCount24h += Increment(ref o24h.Count, 1); s.TotalSum24h += AddSaturating(ref o24h.Sum, p.Amount); s.TotalNew24h += Increment(ref o24h.New, newOne);
        ref var in24h = ref r.In24h[i24h];
        r.TotalIn1h += Increment(ref r.In1h[i1h], 1);
        r.TotalIn24h += Increment(ref in24h.In, 1); r.TotalInNew24h += Increment(ref in24h.New, newOne);
        if (s.SentTotal < int.MaxValue)
        {
            // Welford's update of the mean and the sum of squared deviations.
            int n = s.SentTotal + 1;
            double delta = amountLog2 - s.MeanLog2;
            s.MeanLog2 += delta / n;
            s.M2Log2 += delta * (amountLog2 - s.MeanLog2);
            s.SentTotal = n;
        }
        s.LastSentMs = now;
        MoveToFront(ref s.Payees, known < 0 ? RecentPayees - 1 : known, p.To);
    }

    /// <summary>
    /// Allocates the chunk that will hold this account's state, if it is not there yet: the ledger calls it when an
    /// account opens (and for every account when scoring is switched on), so that scoring a payment never allocates.
    /// </summary>
    public void Reserve(int accountId)
    {
        if (accountId < 1 || accountId > MaxAccounts) throw new ArgumentOutOfRangeException(nameof(accountId), accountId, $"account ids are 1..{MaxAccounts}");
        _chunks[(accountId - 1) >> ChunkShift] ??= new AccountState[ChunkSize];
    }

    /// <summary>The state of an account, created (zeroed, with its chunk if need be) on first use.</summary>
    private ref AccountState State(int accountId)
    {
        if (accountId < 1 || accountId > MaxAccounts) throw new ArgumentOutOfRangeException(nameof(accountId), accountId, $"account ids are 1..{MaxAccounts}");
        int index = accountId - 1;
        var chunk = _chunks[index >> ChunkShift] ??= new AccountState[ChunkSize];
        return ref chunk[index & ChunkMask];
    }

    /// <summary>A first use starts every ring at now (all buckets are zero, so there is nothing to clear).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Touch(ref AccountState a, long b1m, long b1h, long b24h)
    {
        if (a.Touched) return;
        a.Touched = true;
        a.Head1m = b1m;
        a.InHead1h = a.Head1h = b1h;
        a.InHead24h = a.Head24h = b24h;
        TouchedAccounts++;
    }

    /// <summary>Clears the paying side's buckets that time has moved past (at most B per ring).</summary>
    private static void AdvanceSender(ref AccountState a, long b1m, long b1h, long b24h)
    {
        if (b1m < a.Head1m || b1h < a.Head1h || b24h < a.Head24h)
            throw new InvalidOperationException($"invariant violated: fraud features saw time go back (bucket {b1m} after {a.Head1m})");
        if (b1m != a.Head1m)
        {
            for (long k = Math.Max(a.Head1m + 1, b1m - Buckets1m + 1); k <= b1m; k++)
            {
                ref var slot = ref a.Out1m[Slot(k, Buckets1m)];
                a.TotalCount1m -= slot.Count; a.TotalSum1m -= slot.Sum;
                slot = default;
            }
            a.Head1m = b1m;
        }
        if (b1h != a.Head1h)
        {
            for (long k = Math.Max(a.Head1h + 1, b1h - Buckets1h + 1); k <= b1h; k++)
            {
                ref var slot = ref a.Out1h[Slot(k, Buckets1h)];
                a.TotalCount1h -= slot.Count; a.TotalSum1h -= slot.Sum; a.TotalNew1h -= slot.New;
                slot = default;
            }
            a.Head1h = b1h;
        }
        if (b24h != a.Head24h)
        {
            for (long k = Math.Max(a.Head24h + 1, b24h - Buckets24h + 1); k <= b24h; k++)
            {
                ref var slot = ref a.Out24h[Slot(k, Buckets24h)];
                a.TotalCount24h -= slot.Count; a.TotalSum24h -= slot.Sum; a.TotalNew24h -= slot.New;
                slot = default;
            }
            a.Head24h = b24h;
        }
    }

    /// <summary>Clears the paid-to side's buckets that time has moved past.</summary>
    private static void AdvanceReceiver(ref AccountState a, long b1h, long b24h)
    {
        if (b1h < a.InHead1h || b24h < a.InHead24h)
            throw new InvalidOperationException($"invariant violated: fraud features saw time go back (bucket {b1h} after {a.InHead1h})");
        if (b1h != a.InHead1h)
        {
            for (long k = Math.Max(a.InHead1h + 1, b1h - Buckets1h + 1); k <= b1h; k++)
            {
                int i = Slot(k, Buckets1h);
                a.TotalIn1h -= a.In1h[i];
                a.In1h[i] = 0;
            }
            a.InHead1h = b1h;
        }
        if (b24h != a.InHead24h)
        {
            for (long k = Math.Max(a.InHead24h + 1, b24h - Buckets24h + 1); k <= b24h; k++)
            {
                ref var slot = ref a.In24h[Slot(k, Buckets24h)];
                a.TotalIn24h -= slot.In; a.TotalInNew24h -= slot.New;
                slot = default;
            }
            a.InHead24h = b24h;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static long FloorDiv(long a, long b) => a >= 0 ? a / b : -1 - (-1 - a) / b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static long FloorMod(long a, long b) => a - FloorDiv(a, b) * b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Slot(long bucket, int buckets) => (int)FloorMod(bucket, buckets);

    /// <summary>Adds to a bucket count and returns what was added (the window total follows the bucket exactly).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Increment(ref int counter, int by)
    {
        // Saturates rather than wraps: a count near 2^31 in one bucket is unreachable in practice, and a wrapped
        // one would turn a flood into a quiet account.
        int before = counter;
        counter = before <= int.MaxValue - by ? before + by : int.MaxValue;
        return counter - before;
    }

    /// <summary>Adds an amount to a bucket sum, saturating, and returns what was added.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static long AddSaturating(ref long sum, long amount)
    {
        long before = sum;
        sum = before <= long.MaxValue - amount ? before + amount : long.MaxValue;
        return sum - before;
    }

    /// <summary>
    /// Recomputes every window total from its buckets and checks it (<paramref name="fix"/>: sets it instead, for a
    /// state just read). Totals are derived state: not stored, rebuilt on load, checked when written.
    /// </summary>
    private static void Totals(ref AccountState a, bool fix)
    {
        long c1m = 0, c1h = 0, n1h = 0, i1h = 0, c24h = 0, n24h = 0, i24h = 0, j24h = 0;
        double d1m = 0, d1h = 0, d24h = 0;
        foreach (var o in a.Out1m) { c1m += o.Count; d1m += o.Sum; }
        foreach (var o in a.Out1h) { c1h += o.Count; n1h += o.New; d1h += o.Sum; }
        foreach (int v in a.In1h) i1h += v;
        foreach (var o in a.Out24h) { c24h += o.Count; n24h += o.New; d24h += o.Sum; }
        foreach (var v in a.In24h) { i24h += v.In; j24h += v.New; }
        if (fix)
        {
            a.TotalCount1m = c1m; a.TotalSum1m = d1m; a.TotalCount1h = c1h; a.TotalNew1h = n1h; a.TotalSum1h = d1h; a.TotalIn1h = i1h;
            a.TotalCount24h = c24h; a.TotalNew24h = n24h; a.TotalSum24h = d24h; a.TotalIn24h = i24h; a.TotalInNew24h = j24h;
            return;
        }
        bool counts = a.TotalCount1m == c1m && a.TotalCount1h == c1h && a.TotalNew1h == n1h && a.TotalIn1h == i1h
                      && a.TotalCount24h == c24h && a.TotalNew24h == n24h && a.TotalIn24h == i24h && a.TotalInNew24h == j24h;
        // Sums are whole numbers: exact in a double up to 2^53 minor units, which no window reaches in practice.
        bool sums = (d1m >= 1L << 53 || a.TotalSum1m == d1m) && (d1h >= 1L << 53 || a.TotalSum1h == d1h) && (d24h >= 1L << 53 || a.TotalSum24h == d24h);
        if (!counts || !sums) throw new InvalidOperationException("invariant violated: a fraud feature window's total differs from its buckets");
    }

    private static int IndexOf(ReadOnlySpan<int> payees, int id)
    {
        for (int i = 0; i < payees.Length; i++)
        {
            if (payees[i] == id) return i;
            if (payees[i] == 0) return -1; // the list fills from the front: an empty slot ends it
        }
        return -1;
    }

    /// <summary>Moves the payee at <paramref name="from"/> (or, for a new one, the slot that falls off the end) to the front.</summary>
    private static void MoveToFront(ref PayeeList payees, int from, int id)
    {
        Span<int> list = payees;
        for (int i = from; i > 0; i--) list[i] = list[i - 1];
        list[0] = id;
    }

    // ---- state encoding (part of the ledger's snapshot, and so of its state hash) ----

    /// <summary>Writes every touched account's state in id order, field by field.</summary>
    public void Write(BinaryWriter w)
    {
        w.Write(StateFormatVersion);
        w.Write(TouchedAccounts);
        int written = 0;
        for (int c = 0; c < _chunks.Length; c++)
        {
            var chunk = _chunks[c];
            if (chunk is null) continue;
            for (int i = 0; i < chunk.Length; i++)
            {
                ref var a = ref chunk[i];
                if (!a.Touched) continue;
                Totals(ref a, fix: false);
                w.Write((c << ChunkShift) + i + 1);
                WriteAccount(w, ref a);
                written++;
            }
        }
        if (written != TouchedAccounts) throw new InvalidOperationException("invariant violated: touched-account count out of step with the states");
    }

    /// <summary>Reads what <see cref="Write"/> wrote into an empty store.</summary>
    public static FeatureStore Read(BinaryReader r, int maxAccounts)
    {
        var store = new FeatureStore(maxAccounts);
        int version = r.ReadInt32();
        if (version != StateFormatVersion) throw new InvalidDataException($"fraud feature state version {version} is not known (this RamPay knows {StateFormatVersion})");
        int count = r.ReadInt32();
        if (count < 0 || count > maxAccounts) throw new InvalidDataException($"fraud feature state holds {count} accounts; at most {maxAccounts}");
        int previous = 0;
        for (int n = 0; n < count; n++)
        {
            int id = r.ReadInt32();
            if (id <= previous || id > maxAccounts) throw new InvalidDataException($"fraud feature state: account {id} out of order or beyond {maxAccounts}");
            ref var a = ref store.State(id);
            ReadAccount(r, ref a);
            Totals(ref a, fix: true);
            a.Touched = true;
            previous = id;
        }
        store.TouchedAccounts = count;
        return store;
    }

    private static void WriteAccount(BinaryWriter w, ref AccountState a)
    {
        w.Write(a.InHead1h); w.Write(a.InHead24h);
        w.Write(a.Head1m); w.Write(a.Head1h); w.Write(a.Head24h);
        w.Write(a.LastSentMs); w.Write(a.MeanLog2); w.Write(a.M2Log2); w.Write(a.SentTotal);
        // Per window, per field, bucket by bucket.
        foreach (var o in a.Out1m) w.Write(o.Count);
        foreach (var o in a.Out1m) w.Write(o.Sum);
        foreach (var o in a.Out1h) w.Write(o.Count);
        foreach (var o in a.Out1h) w.Write(o.Sum);
        foreach (var o in a.Out1h) w.Write(o.New);
        foreach (int v in a.In1h) w.Write(v);
        foreach (var o in a.Out24h) w.Write(o.Count);
        foreach (var o in a.Out24h) w.Write(o.Sum);
        foreach (var o in a.Out24h) w.Write(o.New);
        foreach (var v in a.In24h) w.Write(v.In);
        foreach (var v in a.In24h) w.Write(v.New);
        foreach (int v in a.Payees) w.Write(v);
    }

    private static void ReadAccount(BinaryReader r, ref AccountState a)
    {
        a.InHead1h = r.ReadInt64(); a.InHead24h = r.ReadInt64();
        a.Head1m = r.ReadInt64(); a.Head1h = r.ReadInt64(); a.Head24h = r.ReadInt64();
        a.LastSentMs = r.ReadInt64(); a.MeanLog2 = r.ReadDouble(); a.M2Log2 = r.ReadDouble(); a.SentTotal = r.ReadInt32();
        if (a.SentTotal < 0 || !double.IsFinite(a.MeanLog2) || !(a.M2Log2 >= 0) || double.IsPositiveInfinity(a.M2Log2))
            throw new InvalidDataException("fraud feature state: an account's running statistics are out of range");
        foreach (ref var o in (Span<OutSlot>)a.Out1m) o.Count = Count(r);
        foreach (ref var o in (Span<OutSlot>)a.Out1m) o.Sum = Sum(r);
        foreach (ref var o in (Span<OutSlot>)a.Out1h) o.Count = Count(r);
        foreach (ref var o in (Span<OutSlot>)a.Out1h) o.Sum = Sum(r);
        foreach (ref var o in (Span<OutSlot>)a.Out1h) o.New = Count(r);
        foreach (ref int v in (Span<int>)a.In1h) v = Count(r);
        foreach (ref var o in (Span<OutSlot>)a.Out24h) o.Count = Count(r);
        foreach (ref var o in (Span<OutSlot>)a.Out24h) o.Sum = Sum(r);
        foreach (ref var o in (Span<OutSlot>)a.Out24h) o.New = Count(r);
        foreach (ref var v in (Span<InSlot>)a.In24h) v.In = Count(r);
        foreach (ref var v in (Span<InSlot>)a.In24h) v.New = Count(r);
        Span<int> payees = a.Payees;
        for (int i = 0; i < payees.Length; i++)
        {
            payees[i] = r.ReadInt32();
            if (payees[i] < 0 || (i > 0 && payees[i] != 0 && payees[i - 1] == 0))
                throw new InvalidDataException("fraud feature state: a recent-payee list is malformed");
        }
    }

    private static int Count(BinaryReader r)
    {
        int v = r.ReadInt32();
        return v >= 0 ? v : throw new InvalidDataException("fraud feature state: a negative count");
    }

    private static long Sum(BinaryReader r)
    {
        long v = r.ReadInt64();
        return v >= 0 ? v : throw new InvalidDataException("fraud feature state: a negative sum");
    }

    /// <summary>One bucket of the paying side: its payments, their sum, and how many went to a new payee (1 minute: unused).</summary>
    internal struct OutSlot
    {
        public long Sum;
        public int Count;
        public int New;
    }

    /// <summary>One 2-hour bucket of the paid-to side: payments received, and from senders paying for the first time.</summary>
    internal struct InSlot
    {
        public int In;
        public int New;
    }

    [InlineArray(Buckets1m)] internal struct Ring6Int { private int _e; }
    [InlineArray(Buckets1m)] internal struct Ring6Out { private OutSlot _e; }
    [InlineArray(Buckets24h)] internal struct Ring12Out { private OutSlot _e; }
    [InlineArray(Buckets24h)] internal struct Ring12In { private InSlot _e; }
    [InlineArray(RecentPayees)] internal struct PayeeList { private int _e; }

    /// <summary>
    /// One account's features: fixed size, no references. The paid-to side comes first with its own ring heads and
    /// totals (64 bytes, then its 2-hour buckets), then the paying side's scalars and totals, then its buckets, each
    /// bucket's fields together: a payment touches about six cache lines of its sender and two of its receiver.
    /// </summary>
    internal struct AccountState
    {
        // Paid-to side.
        public long InHead1h, InHead24h;
        public long TotalIn1h, TotalIn24h, TotalInNew24h;
        public Ring6Int In1h;
        public Ring12In In24h;
        // Paying side.
        public long Head1m, Head1h, Head24h;
        public long LastSentMs;
        public double MeanLog2, M2Log2;
        public long TotalCount1m, TotalCount1h, TotalNew1h, TotalCount24h, TotalNew24h;
        public double TotalSum1m, TotalSum1h, TotalSum24h;
        public int SentTotal;
        public bool Touched;
        public PayeeList Payees;
        public Ring6Out Out1m;
        public Ring6Out Out1h;
        public Ring12Out Out24h;
    }
}
