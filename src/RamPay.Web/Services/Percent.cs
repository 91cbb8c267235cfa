using System.Globalization;

namespace RamPay.Web.Services;

/// <summary>
/// A cashback rate as people type it ("1.5" %) and as the API carries it (basis points, 150), converted exactly with
/// integers: at most two decimals, 0.01 % .. 100 %.
/// </summary>
public static class Percent
{
    public static bool TryParseBps(string? text, out int bps, out string error)
    {
        bps = 0;
        error = "";
        string s = (text ?? "").Trim().TrimEnd('%').Trim();
        if (s.Length == 0) { error = "Enter a rate such as 1.5 (per cent)."; return false; }
        int point = s.IndexOf('.');
        string whole = point < 0 ? s : s[..point];
        string fraction = point < 0 ? "" : s[(point + 1)..];
        if (whole.Length == 0) whole = "0";
        if (whole.Length > 3 || !whole.All(char.IsAsciiDigit) || !fraction.All(char.IsAsciiDigit) || (point >= 0 && fraction.Length == 0))
        { error = "Use digits and one decimal point only, such as 1.5."; return false; }
        if (fraction.Length > 2) { error = "A rate has two decimal places at most (0.01 % is one basis point)."; return false; }
        int value = int.Parse(whole, CultureInfo.InvariantCulture) * 100 + (fraction.Length == 0 ? 0 : int.Parse(fraction.PadRight(2, '0'), CultureInfo.InvariantCulture));
        if (value is < 1 or > 10_000) { error = "The rate must be 0.01 % to 100 %."; return false; }
        bps = value;
        return true;
    }

    /// <summary>150 -> "1.50 %".</summary>
    /// <summary>A rate as typed in the form: 150 is "1.50" (TryParseBps reads it back to 150).</summary>
    public static string Input(int bps) => (bps / 100).ToString(CultureInfo.InvariantCulture) + "." + (bps % 100).ToString("00", CultureInfo.InvariantCulture);

    public static string Show(int bps) => (bps / 100).ToString(CultureInfo.InvariantCulture) + "." + (bps % 100).ToString("00", CultureInfo.InvariantCulture) + " %";
}
