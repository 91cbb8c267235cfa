using System.Globalization;
using System.Text;

namespace RamPay.Journal.Tests;

/// <summary>
/// The test assembly's entry point (<c>dotnet RamPay.Journal.Tests.dll atomic-file-loop PATH</c>): the child process that
/// <see cref="AtomicFileTests"/> kills. It rewrites PATH with version after version, each a header line and 64 KiB that
/// all name the version, and prints "wrote N" once each write has returned. The test runner never calls it.
/// </summary>
public static class AtomicFileChild
{
    public const string Verb = "atomic-file-loop";
    private const int BodyBytes = 64 * 1024;

    public static int Main(string[] args)
    {
        if (args.Length != 2 || args[0] != Verb) return 64;
        string path = args[1];
        long version = File.Exists(path) ? Verify(File.ReadAllBytes(path)) : 0;
        while (true)
        {
            version++;
            AtomicFile.Write(path, Content(version));
            Console.Out.WriteLine("wrote " + version.ToString(CultureInfo.InvariantCulture));
            Console.Out.Flush();
        }
    }

    public static byte[] Content(long version)
    {
        string v = version.ToString("D12", CultureInfo.InvariantCulture);
        var bytes = new byte[13 + BodyBytes];
        Encoding.ASCII.GetBytes(v + "\n", bytes);
        for (int i = 13; i < bytes.Length; i++) bytes[i] = (byte)v[i % 12];
        return bytes;
    }

    /// <summary>The version a whole file holds; throws for a torn or foreign one.</summary>
    public static long Verify(byte[] bytes)
    {
        if (bytes.Length != 13 + BodyBytes) throw new InvalidDataException($"the file has {bytes.Length} bytes, not {13 + BodyBytes}: torn");
        long version = long.Parse(Encoding.ASCII.GetString(bytes, 0, 12), CultureInfo.InvariantCulture);
        if (!bytes.AsSpan().SequenceEqual(Content(version))) throw new InvalidDataException($"the file says version {version} but its body differs: torn");
        return version;
    }
}
