using System.Globalization;
using System.Text;

namespace RamPay.Web.Services;

/// <summary>
/// Amounts as people type and read them (major units: "12.50 USD", "1,000 JPY", "1.005 BHD") and as the API carries
/// them (a <c>long</c> count of minor units), converted exactly: strings and integers only, never floating point, so
/// "0.1" + "0.2" is 30 cents and no amount is ever rounded. A currency's minor units are ISO 4217's exponent.
/// </summary>
public static class Money
{
    /// <summary>ISO 4217 currencies whose minor unit is not 2 (every other code has 2).</summary>
    private static readonly Dictionary<string, int> Exponents = new(StringComparer.Ordinal)
    {
        // 0: no minor unit.
        ["BIF"] = 0, ["CLP"] = 0, ["DJF"] = 0, ["GNF"] = 0, ["ISK"] = 0, ["JPY"] = 0, ["KMF"] = 0, ["KRW"] = 0,
        ["PYG"] = 0, ["RWF"] = 0, ["UGX"] = 0, ["UYI"] = 0, ["VND"] = 0, ["VUV"] = 0, ["XAF"] = 0, ["XOF"] = 0, ["XPF"] = 0,
        // 3: thousandths.
        ["BHD"] = 3, ["IQD"] = 3, ["JOD"] = 3, ["KWD"] = 3, ["LYD"] = 3, ["OMR"] = 3, ["TND"] = 3,
        // 4: units of account.
        ["CLF"] = 4, ["UYW"] = 4,
    };

    /// <summary>The currency's minor units (JPY 0, USD 2, BHD 3).</summary>
    public static int MinorUnits(string currency) => Exponents.TryGetValue(currency, out int e) ? e : 2;

    /// <summary>
    /// Parses a positive amount in major units into minor units. Accepts digits with an optional decimal point and at
    /// most the currency's minor units after it ("12", "12.5", "12.50"; "1,234.56" with commas between groups of
    /// three); spaces around it are ignored. The error says what is wrong, in words, for the field.
    /// </summary>
    public static bool TryParse(string? text, string currency, out long minor, out string error)
    {
        minor = 0;
        error = "";
        int exponent = MinorUnits(currency);
        string s = (text ?? "").Trim();
        if (s.Length == 0) { error = "Enter an amount."; return false; }
        if (s[0] == '-') { error = "The amount must be more than zero."; return false; }
        int point = s.IndexOf('.');
        string whole = point < 0 ? s : s[..point];
        string fraction = point < 0 ? "" : s[(point + 1)..];
        if (point >= 0 && fraction.Length == 0 && whole.Length == 0) { error = "Enter an amount such as 12.50."; return false; }
        if (!TryWhole(whole, out string digits)) { error = "Use digits and one decimal point only, such as 1234.50."; return false; }
        foreach (char c in fraction)
            if (c is < '0' or > '9') { error = "Use digits and one decimal point only, such as 1234.50."; return false; }
        if (fraction.Length > exponent)
        {
            error = exponent == 0
                ? $"{currency} has no minor unit: enter a whole amount."
                : $"{currency} has {exponent} decimal places at most.";
            return false;
        }
        string all = (digits.Length == 0 ? "0" : digits) + fraction.PadRight(exponent, '0');
        // Integer arithmetic with an overflow check: exact for every amount a long can hold.
        long value = 0;
        foreach (char c in all)
        {
            if (value > (long.MaxValue - (c - '0')) / 10) { error = "The amount is too large."; return false; }
            value = value * 10 + (c - '0');
        }
        if (value == 0) { error = "The amount must be more than zero."; return false; }
        minor = value;
        return true;
    }

    /// <summary>The digits of the whole part, with optional thousands separators (commas between groups of three).</summary>
    private static bool TryWhole(string whole, out string digits)
    {
        digits = "";
        if (whole.Length == 0) return true;
        var sb = new StringBuilder(whole.Length);
        string[] groups = whole.Split(',');
        for (int i = 0; i < groups.Length; i++)
        {
            string g = groups[i];
            if (g.Length == 0 || (i > 0 && g.Length != 3) || (i == 0 && groups.Length > 1 && g.Length > 3)) return false;
            foreach (char c in g) if (c is < '0' or > '9') return false;
            sb.Append(g);
        }
        digits = sb.ToString();
        return true;
    }

    /// <summary>Minor units as major units with exactly the currency's decimals ("1,234.50"), no currency code.</summary>
    public static string Format(long minor, string currency)
    {
        int exponent = MinorUnits(currency);
        bool negative = minor < 0;
        // The magnitude as a string of digits; long.MinValue has no positive long, so go through its string.
        string digits = negative ? minor.ToString(CultureInfo.InvariantCulture)[1..] : minor.ToString(CultureInfo.InvariantCulture);
        if (digits.Length <= exponent) digits = digits.PadLeft(exponent + 1, '0');
        string whole = digits[..(digits.Length - exponent)];
        string fraction = exponent == 0 ? "" : digits[^exponent..];
        var grouped = new StringBuilder();
        for (int i = 0; i < whole.Length; i++)
        {
            if (i > 0 && (whole.Length - i) % 3 == 0) grouped.Append(',');
            grouped.Append(whole[i]);
        }
        return (negative ? "-" : "") + grouped + (exponent == 0 ? "" : "." + fraction);
    }

    /// <summary>"1,234.50 USD".</summary>
    public static string Show(long minor, string currency) => Format(minor, currency) + " " + currency;
}
