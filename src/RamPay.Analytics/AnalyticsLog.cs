using System.Buffers.Binary;
using System.Text;
using RamPay.Core;
using RamPay.Events;
using RamPay.Journal;

namespace RamPay.Analytics;

/// <summary>
/// The rollups' redo log: each event the rollups apply, written down as what <see cref="AnalyticsRollups.ApplyEvent"/>
/// reads of it (its position, time, type, the dozen fields the rollups count, and its fraud score), a batch to a record.
/// Replaying the records after a snapshot through the same <c>ApplyEvent</c> rebuilds exactly the rollups that wrote
/// them, so a save appends the events since the last one (a few tens of bytes each) instead of rewriting every bucket:
/// with 10,000 users paying every minute the whole file was 94 MB and 451 ms a save after three hours (docs/benchmarks.md).
/// Why events and not the buckets they changed: a payment changes six user buckets (two users, three intervals), so
/// with many users the changed buckets outweigh the events several times; the events' size does not depend on how many
/// users there are.
/// <para>
/// Record (little-endian): u32 payload length, u32 CRC-32C of the payload, payload: u8 kind (1 = a batch), source
/// (7-bit length-prefixed UTF-8), i32 event count, then per event: zigzag varints of the sequence and the time
/// (each the difference from the event before it in the record; the first from 0), of the index and of the ordinal,
/// u8 flags (<see cref="Flags"/>); when read: u8 type, u8 kind, u8 reason, u16 currency, zigzag varints of amount,
/// captured, from and to account; the from and to owners, created_at (difference from the time), the refund's amount
/// and created_at (likewise) each when its flag says so; a score: varint (model index × 2 + 1 when its name follows,
/// the first time the log names it), the name, and the score as an f32.
/// </para>
/// A segment's last record may be cut short by a crash (its save never returned, so no offset was committed after it,
/// and its events come again): it is left out. A bad record anywhere else is damage, and the load throws.
/// </summary>
public static class AnalyticsLog
{
    internal const byte BatchRecord = 1;
    internal const int HeaderBytes = 8;

    /// <summary>The most one record may hold (a batch's events at 20-40 bytes each): a longer length read back is damage, not a batch.</summary>
    internal const int MaxRecordBytes = 256 << 20;

    [Flags]
    internal enum Flags : byte
    {
        Read = 1, HasPayment = 2, HasRefund = 4, HasFromOwner = 8, HasToOwner = 16, HasCreatedAt = 32, HasRefundCreatedAt = 64, HasScore = 128,
    }

    /// <summary>The records of the events applied since the last save, encoded as they are applied (under the rollups' lock).</summary>
    internal sealed class Buffer
    {
        private byte[] _bytes = new byte[64 << 10];
        private int _length, _recordStart, _countAt, _count;
        private long _previousSequence, _previousAtMs;
        private int _modelsNamedBefore;

        /// <summary>How many of the rollups' model versions the snapshot or an earlier record already names (a later one is written with its name).</summary>
        public int ModelsNamed { get; set; }

        public ReadOnlySpan<byte> Pending => _bytes.AsSpan(0, _length);
        public int Length => _length;

        public void Clear()
        {
            Invariant.Check(_count == 0 && _recordStart == _length, "cleared between two batches");
            _length = _recordStart = 0;
        }

        public void BeginBatch(string source)
        {
            Invariant.Check(_count == 0 && _recordStart == _length, "a batch begins after the last one ended");
            _recordStart = _length;
            _modelsNamedBefore = ModelsNamed;
            _length += HeaderBytes;
            Byte(BatchRecord);
            int n = Encoding.UTF8.GetByteCount(source);
            VarUInt((ulong)n);
            Room(n);
            _length += Encoding.UTF8.GetBytes(source, _bytes.AsSpan(_length));
            Room(4);
            _countAt = _length;
            _length += 4;
            _count = 0;
            _previousSequence = _previousAtMs = 0;
        }

        public void Add(EventPosition position, long occurredAtMs, EventType type, in EventFields f, PaymentScore? score, AnalyticsRollups rollups)
        {
            _count++;
            VarInt(position.Sequence - _previousSequence);
            _previousSequence = position.Sequence;
            VarInt(occurredAtMs - _previousAtMs);
            _previousAtMs = occurredAtMs;
            VarInt(position.Index);
            VarInt(position.Ordinal);
            if (type == 0)
            {
                Byte(0);
                return;
            }
            var flags = Flags.Read;
            if (f.HasPayment) flags |= Flags.HasPayment;
            if (f.HasRefund) flags |= Flags.HasRefund;
            if (f.HasFromOwner) flags |= Flags.HasFromOwner;
            if (f.HasToOwner) flags |= Flags.HasToOwner;
            if (f.CreatedAtMs != long.MinValue) flags |= Flags.HasCreatedAt;
            if (f.HasRefund && f.RefundCreatedAtMs != long.MinValue) flags |= Flags.HasRefundCreatedAt;
            if (score is not null) flags |= Flags.HasScore;
            Byte((byte)flags);
            Byte((byte)type);
            Byte((byte)f.Kind);
            Byte((byte)f.Reason);
            Room(2);
            BinaryPrimitives.WriteUInt16LittleEndian(_bytes.AsSpan(_length), f.Currency);
            _length += 2;
            VarInt(f.Amount);
            VarInt(f.Captured);
            VarInt(f.FromAccount);
            VarInt(f.ToAccount);
            if (f.HasFromOwner) VarInt(f.FromOwner);
            if (f.HasToOwner) VarInt(f.ToOwner);
            if ((flags & Flags.HasCreatedAt) != 0) VarInt(f.CreatedAtMs - occurredAtMs);
            if (f.HasRefund)
            {
                VarInt(f.RefundAmount);
                if ((flags & Flags.HasRefundCreatedAt) != 0) VarInt(f.RefundCreatedAtMs - occurredAtMs);
            }
            if (score is { } s)
            {
                // ApplyEvent has run: the model is in the rollups' list. A model is named the first time the log holds it.
                int model = rollups.ModelIndexOf(s.Model);
                bool named = model >= ModelsNamed;
                Invariant.Check(!named || model == ModelsNamed, "model versions are named in their index order");
                VarUInt(((ulong)model << 1) | (named ? 1u : 0u));
                if (named)
                {
                    int n = Encoding.UTF8.GetByteCount(s.Model);
                    VarUInt((ulong)n);
                    Room(n);
                    _length += Encoding.UTF8.GetBytes(s.Model, _bytes.AsSpan(_length));
                    ModelsNamed++;
                }
                Room(4);
                BinaryPrimitives.WriteSingleLittleEndian(_bytes.AsSpan(_length), s.Score);
                _length += 4;
            }
        }

        /// <summary>Takes back the batch begun (an event of it threw): the buffer ends with the last whole record.</summary>
        public void AbortBatch()
        {
            _length = _recordStart;
            _count = 0;
            ModelsNamed = _modelsNamedBefore; // a model the batch named is named again by the next record that holds it
        }

        public void EndBatch()
        {
            Invariant.Check(_count > 0, "a record holds at least one event");
            BinaryPrimitives.WriteInt32LittleEndian(_bytes.AsSpan(_countAt), _count);
            int payload = _length - _recordStart - HeaderBytes;
            Invariant.Check(payload <= MaxRecordBytes, "a record within its bound");
            var header = _bytes.AsSpan(_recordStart, HeaderBytes);
            BinaryPrimitives.WriteInt32LittleEndian(header, payload);
            BinaryPrimitives.WriteUInt32LittleEndian(header[4..], Crc32C.Compute(_bytes.AsSpan(_recordStart + HeaderBytes, payload)));
            _recordStart = _length;
            _count = 0;
        }

        private void Byte(byte b)
        {
            Room(1);
            _bytes[_length++] = b;
        }

        private void VarInt(long v) => VarUInt((ulong)((v << 1) ^ (v >> 63)));

        private void VarUInt(ulong v)
        {
            Room(10);
            while (v >= 0x80)
            {
                _bytes[_length++] = (byte)(v | 0x80);
                v >>= 7;
            }
            _bytes[_length++] = (byte)v;
        }

        private void Room(int n)
        {
            if (_length + n > _bytes.Length) Array.Resize(ref _bytes, Math.Max(_bytes.Length * 2, _length + n));
        }
    }

    /// <summary>Replays one record's events into <paramref name="rollups"/> (under its lock), as <see cref="AnalyticsRollups.Apply(EventBatch, EventFields[], IReadOnlyDictionary{long, PaymentScore}?)"/> applied them.</summary>
    internal static void Replay(AnalyticsRollups rollups, ReadOnlySpan<byte> payload)
    {
        var r = new Reader(payload);
        if (r.Byte() != BatchRecord) throw new InvalidDataException("an analytics log record of an unknown kind");
        string source = r.String();
        int count = r.Int32();
        if (count < 1) throw new InvalidDataException($"an analytics log record of {count} events");
        long sequence = 0, at = 0;
        var position = default(EventPosition);
        // A record written twice (a save that failed after its write, done again in a new segment) holds events the
        // rollups already have: skipped by position, as a batch delivered again is.
        var applied = rollups.Positions.GetValueOrDefault(source);
        for (int i = 0; i < count; i++)
        {
            sequence += r.VarInt();
            at += r.VarInt();
            var next = new EventPosition(sequence, checked((int)r.VarInt()), checked((int)r.VarInt()));
            if (next <= position) throw new InvalidDataException($"analytics log: event {next} after {position} in one record");
            position = next;
            var flags = (Flags)r.Byte();
            if (flags == 0)
            {
                if (position > applied) rollups.ApplyEvent(position, at, 0, in EventFields.Empty, null);
                continue;
            }
            var f = EventFields.Empty;
            f.Valid = (flags & Flags.Read) != 0;
            if (!f.Valid) throw new InvalidDataException("analytics log: fields written for an event not read");
            var type = (EventType)r.Byte();
            f.Type = type;
            f.Kind = (EventPaymentKind)r.Byte();
            f.Reason = (EventReason)r.Byte();
            f.Currency = r.UInt16();
            f.HasPayment = (flags & Flags.HasPayment) != 0;
            f.Amount = r.VarInt();
            f.Captured = r.VarInt();
            f.FromAccount = r.VarInt();
            f.ToAccount = r.VarInt();
            if (f.HasFromOwner = (flags & Flags.HasFromOwner) != 0) f.FromOwner = r.VarInt();
            if (f.HasToOwner = (flags & Flags.HasToOwner) != 0) f.ToOwner = r.VarInt();
            if ((flags & Flags.HasCreatedAt) != 0) f.CreatedAtMs = checked(at + r.VarInt());
            if (f.HasRefund = (flags & Flags.HasRefund) != 0)
            {
                f.RefundAmount = r.VarInt();
                if ((flags & Flags.HasRefundCreatedAt) != 0) f.RefundCreatedAtMs = checked(at + r.VarInt());
            }
            PaymentScore? score = null;
            if ((flags & Flags.HasScore) != 0)
            {
                ulong m = r.VarUInt();
                int model = checked((int)(m >> 1));
                string name;
                if ((m & 1) != 0)
                {
                    name = r.String();
                    // Named where it first appears: the next index, or (a record written twice) the one it already has.
                    if (model > rollups.Models.Count || model < rollups.Models.Count && rollups.Models[model] != name)
                        throw new InvalidDataException($"analytics log: model {model} named '{name}' when {rollups.Models.Count} are known");
                }
                else
                {
                    if (model >= rollups.Models.Count) throw new InvalidDataException($"analytics log: model {model} of {rollups.Models.Count}");
                    name = rollups.Models[model];
                }
                score = new PaymentScore(name, r.Single());
            }
            if (position > applied) rollups.ApplyEvent(position, at, type, in f, score);
        }
        if (!r.AtEnd) throw new InvalidDataException("analytics log: bytes after a record's last event");
        if (position > applied) rollups.Positions[source] = position;
    }

    /// <summary>
    /// Each whole record of a segment file, in order. A last record cut short or failing its CRC is a crash's unfinished
    /// save and ends the segment; a bad record followed by more bytes is damage (<see cref="InvalidDataException"/>).
    /// Returns the bytes that hold whole records.
    /// </summary>
    internal static long ReadSegment(string path, Action<ReadOnlySpan<byte>> record)
    {
        byte[] bytes = File.ReadAllBytes(path);
        int at = 0;
        while (at < bytes.Length)
        {
            if (bytes.Length - at < HeaderBytes) return at; // a header cut short: the unfinished tail
            int length = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(at));
            uint crc = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 4));
            if (length == 0 && crc == 0)
            {
                // Zeros: space the file system gave the tail before its data (a crash mid-save). Nothing may follow them.
                if (bytes.AsSpan(at).ContainsAnyExcept((byte)0)) throw new InvalidDataException($"{path}: a zero record header at byte {at} before more records");
                return at;
            }
            // A header is 8 bytes of one write: a crash leaves it whole, absent or zero, so a length out of bounds is damage.
            if (length < 1 || length > MaxRecordBytes) throw new InvalidDataException($"{path}: a record of {length} bytes at byte {at}");
            if ((long)at + HeaderBytes + length > bytes.Length) return at; // runs past the end: cut short
            var payload = bytes.AsSpan(at + HeaderBytes, length);
            if (Crc32C.Compute(payload) != crc)
            {
                if (at + HeaderBytes + length == bytes.Length) return at; // the last record, not whole
                throw new InvalidDataException($"{path}: the record at byte {at} fails its CRC and more records follow it");
            }
            record(payload);
            at += HeaderBytes + length;
        }
        return at;
    }

    private ref struct Reader(ReadOnlySpan<byte> bytes)
    {
        private readonly ReadOnlySpan<byte> _bytes = bytes;
        private int _at;

        public readonly bool AtEnd => _at == _bytes.Length;

        public byte Byte() => _at < _bytes.Length ? _bytes[_at++] : throw Short();

        public ushort UInt16()
        {
            var v = BinaryPrimitives.ReadUInt16LittleEndian(Take(2));
            return v;
        }

        public int Int32() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));

        public float Single() => BinaryPrimitives.ReadSingleLittleEndian(Take(4));

        public string String()
        {
            ulong n = VarUInt();
            if (n > 4096) throw new InvalidDataException($"analytics log: a name of {n} bytes");
            return Encoding.UTF8.GetString(Take((int)n));
        }

        public long VarInt()
        {
            ulong v = VarUInt();
            return (long)(v >> 1) ^ -(long)(v & 1);
        }

        public ulong VarUInt()
        {
            ulong v = 0;
            for (int shift = 0; shift < 70; shift += 7)
            {
                byte b = Byte();
                v |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80) return v;
            }
            throw new InvalidDataException("analytics log: a varint longer than 10 bytes");
        }

        private ReadOnlySpan<byte> Take(int n)
        {
            if (_bytes.Length - _at < n) throw Short();
            var s = _bytes.Slice(_at, n);
            _at += n;
            return s;
        }

        private static InvalidDataException Short() => new("analytics log: a record ends inside an event");
    }
}
