using System.Globalization;

namespace RamPay.Analytics;

/// <summary>
/// How long each user's buckets are kept, per interval, counted back from the newest payment's time (the stream's time,
/// not the clock's: a worker reading an old backlog keeps what that backlog's time says). 0 = for ever. Per-user buckets
/// are the rollups' one part that grows with the number of active users (a busy minute makes one bucket per user that
/// paid or was paid in it), so the short intervals are dropped as they age: docs/analytics.md, "Retention".
/// The platform buckets (<c>GET /v1/admin/analytics</c>) are a few per minute and are kept for ever.
/// </summary>
public sealed record AnalyticsRetention(long UserMinuteMs, long UserHourMs, long UserDayMs)
{
    /// <summary>A user's minute buckets for 2 hours, hour buckets for 8 days (a week by the hour), day buckets for ever.</summary>
    public static readonly AnalyticsRetention Default = new(2 * 3_600_000L, 8 * 86_400_000L, 0);

    /// <summary>Everything for ever (the rollups before retention; tests that compare against a full recount).</summary>
    public static readonly AnalyticsRetention Forever = new(0, 0, 0);

    public const string DefaultText = "minute=2h,hour=8d,day=forever";

    public long For(Interval interval) => interval switch
    {
        Interval.Minute => UserMinuteMs,
        Interval.Hour => UserHourMs,
        Interval.Day => UserDayMs,
        _ => throw new ArgumentOutOfRangeException(nameof(interval)),
    };

    /// <summary>
    /// <c>minute=2h,hour=8d,day=forever</c>: each interval named at most once (an interval left out keeps its default),
    /// a duration in whole <c>m</c>inutes, <c>h</c>ours or <c>d</c>ays, or <c>forever</c>. A duration shorter than two of
    /// the interval's buckets is refused: the bucket being filled and the one before must always be whole.
    /// </summary>
    public static bool TryParse(string? text, out AnalyticsRetention retention, out string error)
    {
        retention = Default;
        error = "";
        if (string.IsNullOrWhiteSpace(text)) return true;
        long[] ms = [Default.UserMinuteMs, Default.UserHourMs, Default.UserDayMs];
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (string part in text.Split(',', StringSplitOptions.TrimEntries))
        {
            int eq = part.IndexOf('=');
            string name = eq < 0 ? part : part[..eq], value = eq < 0 ? "" : part[(eq + 1)..];
            int index = name switch { "minute" => 0, "hour" => 1, "day" => 2, _ => -1 };
            if (index < 0 || !seen.Add(name))
            {
                error = $"'{part}': each of minute=, hour=, day= at most once, comma-separated (e.g. {DefaultText})";
                return false;
            }
            if (!TryDuration(value, out ms[index]))
            {
                error = $"'{part}': the duration is a whole number of m, h or d (e.g. 90m, 2h, 8d), or forever";
                return false;
            }
            var interval = (Interval)(index + 1);
            if (ms[index] != 0 && ms[index] < 2 * AnalyticsRollups.Size(interval))
            {
                error = $"'{part}': keep a user's {name} buckets for at least two {name}s (or forever)";
                return false;
            }
        }
        retention = new AnalyticsRetention(ms[0], ms[1], ms[2]);
        return true;
    }

    public static AnalyticsRetention Parse(string? text) =>
        TryParse(text, out var retention, out string error) ? retention : throw new FormatException(error);

    private static bool TryDuration(string s, out long ms)
    {
        ms = 0;
        if (s == "forever") return true;
        if (s.Length < 2) return false;
        long unit = s[^1] switch { 'm' => 60_000L, 'h' => 3_600_000L, 'd' => 86_400_000L, _ => 0 };
        if (unit == 0 || !long.TryParse(s.AsSpan(0, s.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out long n) || n < 1 || n > 36_500L * 86_400_000 / unit)
            return false;
        ms = n * unit;
        return true;
    }

    public override string ToString() => $"minute={Text(UserMinuteMs)},hour={Text(UserHourMs)},day={Text(UserDayMs)}";

    /// <summary>A duration as <see cref="TryParse"/> reads it: 90m, 2h, 8d, forever.</summary>
    public static string Text(long ms) => ms == 0 ? "forever"
        : ms % 86_400_000 == 0 ? $"{ms / 86_400_000}d" : ms % 3_600_000 == 0 ? $"{ms / 3_600_000}h" : $"{ms / 60_000}m";
}
