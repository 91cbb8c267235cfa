using System.Globalization;

namespace RamPay.Redis;

/// <summary>
/// The highest fencing token that ever wrote a data directory, kept in a file inside it (<c>writer-fence</c>). A
/// writer records its token there when it takes the lease, and refuses to start when the file already holds a
/// higher one: a newer writer has been there. It is the one piece of fencing state that lives with the data itself,
/// so it holds even if Redis forgets (a restarted Redis without persistence starts its counter again at 1: see
/// docs/architecture.md for what to do then).
/// </summary>
public static class FencingTokenFile
{
    public const string FileName = "writer-fence";

    public static string PathIn(string dataDirectory) => Path.Combine(dataDirectory, FileName);

    /// <summary>The token in the file, or 0 when there is no file. Throws for a file that is not a token.</summary>
    public static long Read(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (FileNotFoundException)
        {
            return 0;
        }
        catch (DirectoryNotFoundException)
        {
            return 0;
        }
        if (!long.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out long token) || token < 1)
            throw new InvalidDataException($"{path} does not hold a fencing token (a positive number): '{text.Trim()}'");
        return token;
    }

    /// <summary>
    /// Writes the token durably with <see cref="RamPay.Journal.AtomicFile"/>: a temporary file, fsync, a rename over
    /// the old one, and an fsync of the folder, without which a power loss could bring back the older token.
    /// </summary>
    public static void Write(string path, long token)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        RamPay.Journal.AtomicFile.Write(path, System.Text.Encoding.ASCII.GetBytes(token.ToString(CultureInfo.InvariantCulture) + "\n"));
    }
}
