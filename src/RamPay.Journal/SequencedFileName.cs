using System.Globalization;

namespace RamPay.Journal;

/// <summary>
/// File names of the form <c>{prefix}{sequence:D20}{extension}</c>: twenty digits, so a directory listing sorts in
/// sequence order. Shared by segments and snapshots.
/// </summary>
internal static class SequencedFileName
{
    private const int Digits = 20;

    public static string Format(string prefix, long sequence, string extension) =>
        prefix + sequence.ToString("D20", CultureInfo.InvariantCulture) + extension;

    /// <summary>Parses the sequence out of such a name; false for any other file. Sequences are 1-based.</summary>
    public static bool TryParse(string fileName, string prefix, string extension, out long sequence)
    {
        sequence = 0;
        return fileName.Length == prefix.Length + Digits + extension.Length
            && fileName.StartsWith(prefix, StringComparison.Ordinal)
            && fileName.EndsWith(extension, StringComparison.Ordinal)
            && long.TryParse(fileName.AsSpan(prefix.Length, Digits), NumberStyles.None, CultureInfo.InvariantCulture, out sequence)
            && sequence >= 1;
    }
}
