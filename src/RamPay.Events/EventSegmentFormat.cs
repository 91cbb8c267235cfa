using System.Buffers.Binary;
using RamPay.Core;
using RamPay.Journal;

namespace RamPay.Events;

/// <summary>
/// The on-disk layout of the event log's segment files (docs/events.md, "The event log"; pinned by
/// EventSegmentGoldenTests). All integers little-endian.
/// <code>
/// segment  = header record*
/// header   = "RPEVSEG\0" u32 version(1) u32 crc | i64 first_row | i64 prev_sequence i32 prev_index i32 prev_ordinal | i64 0
///            (48 bytes; crc = CRC-32C of the other 44; prev = the last event before this segment, 0-0-0 for none)
/// record   = u32 length u32 crc body            (crc = CRC-32C of the length's 4 bytes and the body)
/// body     = event | commit
/// event    = u8 1 u8 type u8 schema_version u8 viewer_count | i64 row | i64 sequence i32 index i32 ordinal
///            | i64 occurred_at_ms | i64 key_account | viewer_count × (i64 user_id u8 party) | json
/// commit   = u8 2 u8 0 u8 0 u8 0 | i64 last_row | i64 checkpoint_sequence | i64 checkpoint_ms
/// </code>
/// A batch is its events followed by one commit record; only events before a commit count. A segment starts with a
/// commit (the checkpoint at its creation), so every segment alone says where the log stood.
/// </summary>
internal static class EventSegmentFormat
{
    public static ReadOnlySpan<byte> Magic => "RPEVSEG\0"u8;
    public const uint Version = 1;
    public const int HeaderBytes = 48;
    public const int FrameHeaderBytes = 8;
    public const int EventFixedBytes = 44;
    public const int ViewerBytes = 9;
    public const int CommitBytes = 28;
    public const byte KindEvent = 1, KindCommit = 2;
    /// <summary>No record body is larger (an event's JSON is a few hundred bytes): a length past it is a torn or bad record.</summary>
    public const int MaxBodyBytes = 1 << 24;

    public const string FilePrefix = "events-", FileSuffix = ".seg";

    public static string SegmentFileName(long firstRow) => FilePrefix + firstRow.ToString("D20", System.Globalization.CultureInfo.InvariantCulture) + FileSuffix;

    public static void WriteHeader(Span<byte> into, long firstRow, EventPosition previous)
    {
        into[..HeaderBytes].Clear();
        Magic.CopyTo(into);
        BinaryPrimitives.WriteUInt32LittleEndian(into[8..], Version);
        BinaryPrimitives.WriteInt64LittleEndian(into[16..], firstRow);
        BinaryPrimitives.WriteInt64LittleEndian(into[24..], previous.Sequence);
        BinaryPrimitives.WriteInt32LittleEndian(into[32..], previous.Index);
        BinaryPrimitives.WriteInt32LittleEndian(into[36..], previous.Ordinal);
        BinaryPrimitives.WriteUInt32LittleEndian(into[12..], HeaderCrc(into));
    }

    private static uint HeaderCrc(ReadOnlySpan<byte> header) => Crc32C.Append(Crc32C.Compute(header[..12]), header[16..HeaderBytes]);

    /// <summary>Reads a header; throws on anything but an intact header of this version.</summary>
    public static (long FirstRow, EventPosition Previous) ReadHeader(ReadOnlySpan<byte> header, string path)
    {
        if (header.Length < HeaderBytes || !header[..8].SequenceEqual(Magic))
            throw new InvalidDataException($"{path} is not an event log segment (no header)");
        if (BinaryPrimitives.ReadUInt32LittleEndian(header[12..]) != HeaderCrc(header))
            throw new InvalidDataException($"{path}: the segment header's checksum does not match");
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(header[8..]);
        if (version != Version) throw new InvalidDataException($"{path} has segment format {version}; this build reads {Version}");
        return (BinaryPrimitives.ReadInt64LittleEndian(header[16..]),
            new EventPosition(BinaryPrimitives.ReadInt64LittleEndian(header[24..]), BinaryPrimitives.ReadInt32LittleEndian(header[32..]), BinaryPrimitives.ReadInt32LittleEndian(header[36..])));
    }

    /// <summary>The bytes an event record takes.</summary>
    public static int EventFrameBytes(int viewers, int jsonBytes) => FrameHeaderBytes + EventFixedBytes + viewers * ViewerBytes + jsonBytes;

    public const int CommitFrameBytes = FrameHeaderBytes + CommitBytes;

    /// <summary>Writes an event record at the start of <paramref name="into"/> (sized by <see cref="EventFrameBytes"/>).</summary>
    public static void WriteEvent(Span<byte> into, long row, EventPosition position, EventType type, long occurredAtMs, long keyAccount, ReadOnlySpan<EventViewer> viewers, ReadOnlySpan<byte> json)
    {
        int body = EventFixedBytes + viewers.Length * ViewerBytes + json.Length;
        Span<byte> b = into.Slice(FrameHeaderBytes, body);
        b[0] = KindEvent;
        b[1] = (byte)type;
        b[2] = (byte)EventTypes.SchemaVersion(type);
        b[3] = (byte)viewers.Length;
        BinaryPrimitives.WriteInt64LittleEndian(b[4..], row);
        BinaryPrimitives.WriteInt64LittleEndian(b[12..], position.Sequence);
        BinaryPrimitives.WriteInt32LittleEndian(b[20..], position.Index);
        BinaryPrimitives.WriteInt32LittleEndian(b[24..], position.Ordinal);
        BinaryPrimitives.WriteInt64LittleEndian(b[28..], occurredAtMs);
        BinaryPrimitives.WriteInt64LittleEndian(b[36..], keyAccount);
        int at = EventFixedBytes;
        foreach (var v in viewers)
        {
            BinaryPrimitives.WriteInt64LittleEndian(b[at..], v.UserId);
            b[at + 8] = (byte)v.Party;
            at += ViewerBytes;
        }
        json.CopyTo(b[at..]);
        Seal(into, body);
    }

    public static void WriteCommit(Span<byte> into, long lastRow, long checkpointSequence, long checkpointMs)
    {
        Span<byte> b = into.Slice(FrameHeaderBytes, CommitBytes);
        b[..4].Clear();
        b[0] = KindCommit;
        BinaryPrimitives.WriteInt64LittleEndian(b[4..], lastRow);
        BinaryPrimitives.WriteInt64LittleEndian(b[12..], checkpointSequence);
        BinaryPrimitives.WriteInt64LittleEndian(b[20..], checkpointMs);
        Seal(into, CommitBytes);
    }

    private static void Seal(Span<byte> frame, int body)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(frame, (uint)body);
        BinaryPrimitives.WriteUInt32LittleEndian(frame[4..], FrameCrc(frame[..4], frame.Slice(FrameHeaderBytes, body)));
    }

    private static uint FrameCrc(ReadOnlySpan<byte> length, ReadOnlySpan<byte> body) => Crc32C.Append(Crc32C.Compute(length), body);

    public enum FrameStatus { Ok, Incomplete, Bad }

    /// <summary>
    /// The record at the start of <paramref name="data"/>: Ok with its body and size; Incomplete when
    /// <paramref name="data"/> ends inside it (<paramref name="frameBytes"/> then says how much it needs, or 0 when even
    /// the length is cut); Bad when its length is impossible or its checksum or kind does not match (a torn write).
    /// </summary>
    public static FrameStatus TryRead(ReadOnlySpan<byte> data, out ReadOnlySpan<byte> body, out int frameBytes)
    {
        body = default;
        frameBytes = 0;
        if (data.Length < FrameHeaderBytes) return FrameStatus.Incomplete;
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(data);
        if (length < 4 || length > MaxBodyBytes) return FrameStatus.Bad;
        frameBytes = FrameHeaderBytes + (int)length;
        if (data.Length < frameBytes) return FrameStatus.Incomplete;
        body = data.Slice(FrameHeaderBytes, (int)length);
        if (BinaryPrimitives.ReadUInt32LittleEndian(data[4..]) != FrameCrc(data[..4], body)) return FrameStatus.Bad;
        if (body[0] == KindCommit ? length != CommitBytes : body[0] != KindEvent || length < EventFixedBytes + body[3] * ViewerBytes) return FrameStatus.Bad;
        return FrameStatus.Ok;
    }

    /// <summary>An event record's fields (the body passed <see cref="TryRead"/>).</summary>
    public readonly ref struct EventView(ReadOnlySpan<byte> body)
    {
        private readonly ReadOnlySpan<byte> _b = body;
        public EventType Type => (EventType)_b[1];
        public int SchemaVersion => _b[2];
        public int ViewerCount => _b[3];
        public long Row => BinaryPrimitives.ReadInt64LittleEndian(_b[4..]);
        public EventPosition Position => new(BinaryPrimitives.ReadInt64LittleEndian(_b[12..]), BinaryPrimitives.ReadInt32LittleEndian(_b[20..]), BinaryPrimitives.ReadInt32LittleEndian(_b[24..]));
        public long OccurredAtMs => BinaryPrimitives.ReadInt64LittleEndian(_b[28..]);
        public long KeyAccount => BinaryPrimitives.ReadInt64LittleEndian(_b[36..]);
        public EventViewer Viewer(int i)
        {
            var v = _b.Slice(EventFixedBytes + i * ViewerBytes, ViewerBytes);
            var party = (EventParty)v[8];
            Invariant.Check(party is EventParty.Full or EventParty.Payer or EventParty.Payee, "a stored party is known");
            return new EventViewer(BinaryPrimitives.ReadInt64LittleEndian(v), party);
        }
        /// <summary>Where the JSON starts within the body.</summary>
        public int JsonOffset => EventFixedBytes + ViewerCount * ViewerBytes;
    }

    /// <summary>A commit record's fields.</summary>
    public static (long LastRow, long Sequence, long TimestampMs) ReadCommit(ReadOnlySpan<byte> body) =>
        (BinaryPrimitives.ReadInt64LittleEndian(body[4..]), BinaryPrimitives.ReadInt64LittleEndian(body[12..]), BinaryPrimitives.ReadInt64LittleEndian(body[20..]));
}
