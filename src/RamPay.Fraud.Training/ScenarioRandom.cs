namespace RamPay.Fraud.Training;

/// <summary>
/// xoshiro256** seeded by SplitMix64, with normal variates by Marsaglia's polar method on <see cref="DetMath"/>: the same
/// seed gives the same numbers on every machine and every .NET version (System.Random promises neither, and its normal
/// variates would need the C library's log).
/// </summary>
public sealed class ScenarioRandom
{
    private ulong _s0, _s1, _s2, _s3;
    private double? _spareNormal;

    public ScenarioRandom(ulong seed)
    {
        ulong x = seed;
        _s0 = SplitMix(ref x); _s1 = SplitMix(ref x); _s2 = SplitMix(ref x); _s3 = SplitMix(ref x);
    }

    private static ulong SplitMix(ref ulong x)
    {
        ulong z = x += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    public ulong NextUInt64()
    {
        ulong result = ulong.RotateLeft(_s1 * 5, 7) * 9;
        ulong t = _s1 << 17;
        _s2 ^= _s0; _s3 ^= _s1; _s1 ^= _s2; _s0 ^= _s3;
        _s2 ^= t;
        _s3 = ulong.RotateLeft(_s3, 45);
        return result;
    }

    /// <summary>Uniform in [0, 1), 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform in [0, n).</summary>
    public int Next(int n)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n));
        // Lemire's multiply-and-reject: unbiased.
        ulong range = (ulong)n;
        while (true)
        {
            UInt128 m = (UInt128)NextUInt64() * range;
            ulong low = (ulong)m;
            if (low >= range || low >= (0UL - range) % range) return (int)(m >> 64);
        }
    }

    public double Uniform(double lo, double hi) => lo + (hi - lo) * NextDouble();

    public long UniformLong(long lo, long hiExclusive) => lo + (long)((hiExclusive - lo) * NextDouble());

    public bool Chance(double p) => NextDouble() < p;

    public double Normal()
    {
        if (_spareNormal is { } spare)
        {
            _spareNormal = null;
            return spare;
        }
        while (true)
        {
            double u = 2 * NextDouble() - 1, v = 2 * NextDouble() - 1;
            double s = u * u + v * v;
            if (s >= 1 || s == 0) continue;
            double f = Math.Sqrt(-2 * DetMath.Log(s) / s);
            _spareNormal = v * f;
            return u * f;
        }
    }

    public double LogNormal(double mu, double sigma) => DetMath.Exp(mu + sigma * Normal());

    /// <summary>A Poisson count: Knuth's product of uniforms below 30, a rounded normal above.</summary>
    public int Poisson(double lambda)
    {
        if (lambda <= 0) return 0;
        if (lambda >= 30) return Math.Max(0, (int)Math.Round(lambda + Math.Sqrt(lambda) * Normal()));
        double limit = DetMath.Exp(-lambda), p = 1;
        int k = 0;
        while (true)
        {
            p *= NextDouble();
            if (p <= limit) return k;
            k++;
        }
    }
}
