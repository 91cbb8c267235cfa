using System.Runtime.CompilerServices;

namespace RamPay.Fraud;

/// <summary>
/// Logarithm, exponential and logistic function built only from IEEE-754 additions, multiplications and divisions,
/// which every conforming machine rounds the same way. <see cref="Math.Log"/> and <see cref="Math.Exp"/> call the C
/// library, whose last bit may differ between machines and runtime versions; a score is part of the ledger's state
/// (replayed, hashed), so it must come out bit for bit the same everywhere. Accuracy is about 1e-12 relative, far
/// finer than any feature or model needs.
/// </summary>
public static class DetMath
{
    private const double Ln2 = 0.69314718055994530942;
    private const double InvLn2 = 1.4426950408889634074;
    // ln 2 split so that k * Ln2Hi is exact for |k| < 2^11 (Cody and Waite's range reduction).
    private const double Ln2Hi = 0.693145751953125;
    private const double Ln2Lo = 1.42860682030941723212e-6;
    private const double Sqrt2 = 1.4142135623730950488;

    // log2 by table: the top 7 bits of the mantissa pick c = 1 + (i + 0.5) / 128, and log2(m) = log2(c) + log2(m / c)
    // where m / c is within 1 ± 1/256, so four terms of log(1 + r) are exact to about 1e-12. m / c is m * (1 / c): a
    // multiplication, not a division. The table is built at start-up by the series below, which uses only IEEE
    // operations, so it is the same on every machine.
    private const int TableBits = 7;
    private static readonly double[] LogTable = BuildTable(out InverseTable);
    private static readonly double[] InverseTable;

    private static double[] BuildTable(out double[] inverse)
    {
        const int n = 1 << TableBits;
        var logs = new double[n];
        inverse = new double[n];
        for (int i = 0; i < n; i++)
        {
            double c = 1 + (i + 0.5) / n;
            logs[i] = Log2Series(c);
            inverse[i] = 1 / c;
        }
        return logs;
    }

    /// <summary>log2(x) for a finite x &gt; 0; 0 and negatives give -1074 (the smallest exponent), so no NaN ever flows on.</summary>
    public static double Log2(double x)
    {
        long bits = BitConverter.DoubleToInt64Bits(x);
        int e = (int)((bits >> 52) & 0x7FF);
        if (e == 0 || e == 0x7FF || bits < 0) return Log2Series(x); // zero, subnormal, infinite, NaN, negative: the slow path
        if ((bits & 0x000F_FFFF_FFFF_FFFFL) == 0) return e - 1023; // a power of two: exact
        int i = (int)((bits >> (52 - TableBits)) & ((1 << TableBits) - 1));
        double m = BitConverter.Int64BitsToDouble((bits & 0x000F_FFFF_FFFF_FFFFL) | 0x3FF0_0000_0000_0000L); // [1, 2)
        double r = m * InverseTable[i] - 1; // |r| < 1/256
        // ln(1 + r) = r - r^2/2 + r^3/3 - r^4/4 + r^5/5 (the next term is below 3e-14)
        double ln = r * (1 - r * (0.5 - r * (1.0 / 3 - r * (0.25 - r * 0.2))));
        return (e - 1023) + LogTable[i] + ln * InvLn2;
    }

    /// <summary>log2 by the atanh series: slower (a division), used to build the table and for unusual inputs.</summary>
    internal static double Log2Series(double x)
    {
        if (!(x > 0)) return -1074;
        if (double.IsPositiveInfinity(x)) return 1024;
        long bits = BitConverter.DoubleToInt64Bits(x);
        int e = (int)((bits >> 52) & 0x7FF);
        if (e == 0)
        {
            // Subnormal: scale into the normal range first.
            x *= 4503599627370496.0; // 2^52
            bits = BitConverter.DoubleToInt64Bits(x);
            e = (int)((bits >> 52) & 0x7FF) - 52;
        }
        e -= 1023;
        double m = BitConverter.Int64BitsToDouble((bits & 0x000F_FFFF_FFFF_FFFFL) | 0x3FF0_0000_0000_0000L); // [1, 2)
        if (m > Sqrt2)
        {
            m *= 0.5;
            e++;
        }
        // ln(m) = 2 atanh(t), t = (m - 1) / (m + 1), |t| <= 0.1716 on [sqrt(1/2), sqrt(2)].
        double t = (m - 1) / (m + 1);
        double t2 = t * t;
        double s = 1 + t2 * (1.0 / 3 + t2 * (1.0 / 5 + t2 * (1.0 / 7 + t2 * (1.0 / 9 + t2 * (1.0 / 11 + t2 * (1.0 / 13 + t2 * (1.0 / 15)))))));
        return e + 2 * t * s * InvLn2;
    }

    /// <summary>log2(1 + x) for x &gt;= 0 (a count, an amount, a duration): the scale most features are taken on.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double Log2OnePlus(double x) => x > 0 ? Log2(1 + x) : 0;

    /// <summary>e^x, with x clamped to [-700, 700] (no overflow to infinity, no denormal results).</summary>
    public static double Exp(double x)
    {
        if (double.IsNaN(x)) return double.NaN;
        if (x > 700) x = 700;
        if (x < -700) x = -700;
        double k = Math.Round(x * InvLn2, MidpointRounding.ToEven);
        double r = x - k * Ln2Hi - k * Ln2Lo; // |r| <= ln(2) / 2 (plus rounding)
        // Taylor series to r^12 / 12!: the remainder is below 1e-15 relative on |r| <= 0.35.
        double p = 1 + r * (1 + r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (1.0 / 720 + r * (1.0 / 5040
                   + r * (1.0 / 40320 + r * (1.0 / 362880 + r * (1.0 / 3628800 + r * (1.0 / 39916800 + r * (1.0 / 479001600))))))))))));
        long scale = ((long)k + 1023) << 52; // 2^k; k is within [-1010, 1010], a normal exponent
        return p * BitConverter.Int64BitsToDouble(scale);
    }

    /// <summary>The logistic function 1 / (1 + e^-z), evaluated on the side where the exponential cannot overflow.</summary>
    public static double Sigmoid(double z)
    {
        if (z >= 0) return 1 / (1 + Exp(-z));
        double e = Exp(z);
        return e / (1 + e);
    }

    /// <summary>ln(x), from <see cref="Log2"/>.</summary>
    public static double Log(double x) => Log2(x) * Ln2;
}
