using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using RamPay.Core;

namespace RamPay.Sinks;

/// <summary>
/// One sink's overflow on disk: the batches the follower made while that sink's in-memory queue was full, in order,
/// one file per batch under <c>&lt;data&gt;/sinks/&lt;name&gt;.spool/</c>. It is what lets the follower keep feeding the
/// other sinks while this one is slow or down, without a second replica ledger and without holding more than the
/// queue's batches in memory: the changes (after-states the replica computed once) wait on disk instead.
/// <para>
/// Only this process reads what it wrote, so the layout is the in-memory one (blittable structs copied as bytes) and is
/// no persisted format: the hub deletes the folder at start and at stop. A crash loses nothing: each sink's checkpoint
/// lives with the sink, and the next start rebuilds the changes from the journal.
/// </para>
/// <para>
/// Thread use: the follower appends, the sink's runner reads; the lock covers the positions only, and the follower's
/// file write happens inside it (so the runner's "spool drained" decision and the follower's "queue or spool" choice
/// never interleave: see <see cref="SinkRunner.Offer"/>).
/// </para>
/// </summary>
public sealed class ChangeSpool : IDisposable
{
    // Guards the layout below: a field added to Change must be added to Write/Read too, or spooled changes would lose it.
    private const int ChangeFieldCount = 13;

    private readonly string _directory;
    private readonly long _maxBytes;
    private readonly object _lock = new();
    private readonly MemoryStream _buffer = new();
    private readonly Dictionary<string, string> _interned = new(StringComparer.Ordinal);
    private long _nextWrite;
    private long _nextRead;
    private long _bytes;
    private readonly Queue<long> _sizes = new();

    static ChangeSpool()
    {
        int fields = typeof(Change).GetFields(System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.NonPublic).Length;
        Invariant.Check(fields == ChangeFieldCount, $"Change has {fields} fields, the spool writes {ChangeFieldCount}: teach ChangeSpool the new one");
    }

    /// <param name="directory">Emptied now: what an earlier process left is stale.</param>
    /// <param name="maxBytes">The most bytes on disk; 0 = no spool (the follower waits for a full queue, as before).</param>
    public ChangeSpool(string directory, long maxBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxBytes);
        _directory = directory;
        _maxBytes = maxBytes;
        if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
    }

    /// <summary>True from the first batch spooled until the runner has read the last one: new batches must then go here, behind it.</summary>
    public bool Active { get; private set; }

    public long Batches { get { lock (_lock) return _nextWrite - _nextRead; } }
    public long Bytes { get { lock (_lock) return _bytes; } }
    /// <summary>Batches spooled since start.</summary>
    public long BatchesSpooled { get { lock (_lock) return _nextWrite; } }

    internal object Lock => _lock;

    /// <summary>Room for one more batch (always true when empty, so one batch over the budget still goes; false with no spool).</summary>
    public bool HasRoom => _maxBytes > 0 && (_bytes == 0 || _bytes < _maxBytes);

    /// <summary>Writes <paramref name="batch"/> as the newest spooled batch (the runner calls it holding <see cref="Lock"/> already).</summary>
    public void Append(ChangeBatch batch)
    {
        lock (_lock) AppendLocked(batch);
    }

    private void AppendLocked(ChangeBatch batch)
    {
        Directory.CreateDirectory(_directory);
        _buffer.SetLength(0);
        using (var w = new BinaryWriter(_buffer, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            w.Write(batch.Count);
            w.Write(batch.LastSequence);
            w.Write(batch.LastTimestampMs);
            foreach (ref readonly var c in batch.Changes) Write(w, c);
        }
        string path = PathOf(_nextWrite);
        using (var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.None))
            file.Write(_buffer.GetBuffer(), 0, (int)_buffer.Length);
        _bytes += _buffer.Length;
        _sizes.Enqueue(_buffer.Length);
        _nextWrite++;
        Active = true;
        if (_buffer.Capacity > 64 << 20) _buffer.Capacity = 0; // a huge batch (a long tick) is not kept
    }

    /// <summary>
    /// The oldest spooled batch into <paramref name="into"/> (cleared first), its file deleted, and the batches after it
    /// while they fit in its <see cref="ChangeBatch.Capacity"/> (spooled batches are what one poll of the follower found,
    /// often a few dozen changes: each would otherwise be a write of its own); false when none is left, which also ends
    /// <see cref="Active"/> (the follower then queues in memory again).
    /// </summary>
    public bool TryRead(ChangeBatch into, Func<bool> queueEmpty)
    {
        long index;
        lock (_lock)
        {
            // Batches still in the memory queue are older than every spooled one (the follower spools only once the
            // queue is full, and queues again only after this has found the spool empty): they go first.
            if (!queueEmpty()) return false;
            if (_nextRead == _nextWrite)
            {
                Active = false;
                return false;
            }
            index = _nextRead;
        }
        into.Clear();
        // While this spool is active the follower appends behind _nextWrite and never queues in memory: every file from
        // _nextRead on is newer than what `into` holds, in order.
        while (ReadInto(index, into))
        {
            lock (_lock)
            {
                _nextRead++;
                _bytes -= _sizes.Dequeue();
                if (_nextRead == _nextWrite) break;
                index = _nextRead;
            }
        }
        Invariant.Check(into.Count > 0 || into.LastSequence > 0, "a spool read took no batch");
        return true;
    }

    /// <summary>Appends the batch in file <paramref name="index"/> to <paramref name="into"/> and deletes the file; false (nothing read) when <paramref name="into"/> holds changes already and the batch would take it past its capacity.</summary>
    private bool ReadInto(long index, ChangeBatch into)
    {
        string path = PathOf(index);
        using (var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16))
        using (var r = new BinaryReader(file, System.Text.Encoding.UTF8))
        {
            int count = r.ReadInt32();
            if (into.LastSequence > 0 && into.Count + count > into.Capacity) return false;
            long lastSequence = r.ReadInt64();
            long lastTimestampMs = r.ReadInt64();
            Invariant.Check(lastSequence > into.LastSequence, "a spooled batch out of order");
            for (int i = 0; i < count; i++) Read(r, ref into.Add());
            into.LastSequence = lastSequence;
            into.LastTimestampMs = lastTimestampMs;
            Invariant.Check(file.Position == file.Length, "a spooled batch has bytes after its last change");
        }
        File.Delete(path);
        return true;
    }

    private string PathOf(long index) => Path.Combine(_directory, index.ToString("D12", System.Globalization.CultureInfo.InvariantCulture) + ".batch");

    private static void Write(BinaryWriter w, in Change c)
    {
        w.Write(c.Sequence);
        w.Write(c.Index);
        w.Write((byte)c.Kind);
        w.Write(c.TimestampMs);
        Raw(w, c.Command);
        Raw(w, c.Result);
        Raw(w, c.Payment);
        Raw(w, c.Parent);
        Raw(w, c.From);
        Raw(w, c.To);
        byte present = (byte)((c.User is null ? 0 : 1) | (c.Note is null ? 0 : 2) | (c.FraudModelVersion is null ? 0 : 4));
        w.Write(present);
        if (c.User is { } u)
        {
            w.Write(u.Id);
            w.Write(u.Email);
            w.Write(u.Name);
            w.Write(u.PasswordHash);
            w.Write((byte)u.Role);
            w.Write(u.WalletAccountId);
            w.Write(u.CreatedAtMs);
        }
        if (c.Note is { } n)
        {
            Optional(w, n.Description);
            Optional(w, n.WebhookUrl);
        }
        if (c.FraudModelVersion is { } m) w.Write(m);
    }

    private void Read(BinaryReader r, ref Change c)
    {
        c.Sequence = r.ReadInt64();
        c.Index = r.ReadInt32();
        c.Kind = (ChangeKind)r.ReadByte();
        c.TimestampMs = r.ReadInt64();
        Raw(r, ref c.Command);
        Raw(r, ref c.Result);
        Raw(r, ref c.Payment);
        Raw(r, ref c.Parent);
        Raw(r, ref c.From);
        Raw(r, ref c.To);
        byte present = r.ReadByte();
        if ((present & 1) != 0)
        {
            c.User = new User(r.ReadInt64(), r.ReadString(), r.ReadString(), r.ReadString(), (UserRole)r.ReadByte(), r.ReadInt64(), r.ReadInt64());
        }
        if ((present & 2) != 0) c.Note = new PaymentNote(Optional(r), Optional(r));
        if ((present & 4) != 0)
        {
            // One model version string for all its payments, as the replica hands them out.
            string m = r.ReadString();
            if (!_interned.TryGetValue(m, out var shared)) _interned[m] = shared = m;
            c.FraudModelVersion = shared;
        }
    }

    private static void Raw<T>(BinaryWriter w, in T value) where T : unmanaged =>
        w.Write(MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in value)));

    private static void Raw<T>(BinaryReader r, ref T value) where T : unmanaged
    {
        Span<byte> bytes = MemoryMarshal.AsBytes(new Span<T>(ref value));
        r.BaseStream.ReadExactly(bytes); // BinaryReader reads no further ahead than asked, so its stream is where it stands
    }

    private static void Optional(BinaryWriter w, string? s)
    {
        w.Write(s is not null);
        if (s is not null) w.Write(s);
    }

    private static string? Optional(BinaryReader r) => r.ReadBoolean() ? r.ReadString() : null;

    public void Dispose()
    {
        try
        {
            if (Directory.Exists(_directory)) Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // deleted again at the next start
        }
    }
}
