using System.Globalization;

namespace RamPay.Web.Services;

/// <summary>How the app writes times and statuses.</summary>
public static class Format
{
    public static string Time(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss 'UTC'", CultureInfo.InvariantCulture);

    public static string Status(string status) => status.Replace('_', ' ');

    public static string Score(double score) => score.ToString("0.000", CultureInfo.InvariantCulture);
}
