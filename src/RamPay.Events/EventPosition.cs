using System.Globalization;

namespace RamPay.Events;

/// <summary>
/// Where an event stands in the one total order of the stream: its journal <see cref="Sequence"/>, its change's
/// <see cref="Index"/> within the record and its <see cref="Ordinal"/> among the change's events, compared part by part
/// as numbers. Its text form is the event id, <c>"{sequence}-{index}-{ordinal}"</c> (docs/events.md).
/// </summary>
public readonly record struct EventPosition(long Sequence, int Index, int Ordinal) : IComparable<EventPosition>
{
    /// <summary>Before every event: a consumer that has processed nothing.</summary>
    public static readonly EventPosition None = default;

    public int CompareTo(EventPosition other)
    {
        int c = Sequence.CompareTo(other.Sequence);
        if (c != 0) return c;
        c = Index.CompareTo(other.Index);
        return c != 0 ? c : Ordinal.CompareTo(other.Ordinal);
    }

    public static bool operator <(EventPosition a, EventPosition b) => a.CompareTo(b) < 0;
    public static bool operator >(EventPosition a, EventPosition b) => a.CompareTo(b) > 0;
    public static bool operator <=(EventPosition a, EventPosition b) => a.CompareTo(b) <= 0;
    public static bool operator >=(EventPosition a, EventPosition b) => a.CompareTo(b) >= 0;

    /// <summary>The event id: <c>"{sequence}-{index}-{ordinal}"</c>.</summary>
    public override string ToString() => EventMapper.EventId(Sequence, Index, Ordinal);

    /// <summary>
    /// Parses an event id. Strict: three decimal parts without signs or leading zeros (so one event has one id),
    /// sequence at least 1, index and ordinal at least 0. False for anything else.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<char> eventId, out EventPosition position)
    {
        position = default;
        if (eventId.Length is 0 or > 50) return false;
        int first = eventId.IndexOf('-');
        if (first <= 0) return false;
        int second = eventId[(first + 1)..].IndexOf('-');
        if (second <= 0) return false;
        second += first + 1;
        if (!Part(eventId[..first], out long sequence) || !Part(eventId[(first + 1)..second], out long index) || !Part(eventId[(second + 1)..], out long ordinal)) return false;
        if (sequence < 1 || index > int.MaxValue || ordinal > int.MaxValue) return false;
        position = new EventPosition(sequence, (int)index, (int)ordinal);
        return true;
    }

    private static bool Part(ReadOnlySpan<char> s, out long value)
    {
        value = 0;
        if (s.Length == 0 || s.Length > 19 || (s.Length > 1 && s[0] == '0')) return false;
        foreach (char c in s) if (c is < '0' or > '9') return false;
        return long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out value);
    }
}
