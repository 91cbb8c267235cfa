using System.Reflection;
using System.Runtime.InteropServices;
using Confluent.Kafka;

namespace RamPay.Kafka;

/// <summary>
/// Makes Confluent.Kafka use the librdkafka it ships with (librdkafka.redist, the same version), never the machine's.
/// <para>
/// Why this is needed on Linux x64: Confluent.Kafka asks for <c>librdkafka</c> first, which .NET finds as
/// <c>runtimes/linux-x64/native/librdkafka.so</c>; that build needs <c>libsasl2.so.3</c>, which Debian 12 does not have
/// (it has <c>.so.2</c>), so it fails to load and .NET silently falls back to the system's <c>librdkafka.so</c>
/// (Debian's 2.0.2, whose consumer throws <c>EntryPointNotFoundException</c>) when <c>librdkafka-dev</c> is
/// installed. The package's <c>centos8-librdkafka.so</c> links only glibc (its TLS, SASL and compression libraries
/// are built in), so it loads on any glibc Linux: every name Confluent.Kafka asks for resolves to that file, and a
/// missing file is an error, not a fallback. (<c>Library.Load(path)</c> cannot be used instead: it dlopens through
/// <c>libdl.so</c>, which Debian ships only as <c>libdl.so.2</c>.)
/// </para>
/// <para>
/// Call <see cref="EnsureLoaded"/> before the first Kafka call of a process (the sink's constructor does; the server,
/// the load tool and the tests call it at start). Other platforms keep Confluent.Kafka's own loading.
/// </para>
/// </summary>
public static class KafkaNativeLibrary
{
    /// <summary>The bundled library used on Linux x64, relative to the application's directory (librdkafka.redist's layout).</summary>
    public const string BundledRelativePath = "runtimes/linux-x64/native/centos8-librdkafka.so";

    /// <summary>Where a RID-specific build or publish (<c>-r linux-x64</c>) puts the same file: the application's folder itself.</summary>
    public const string BundledFlatPath = "centos8-librdkafka.so";

    private static readonly Lock Gate = new();
    private static volatile bool _loaded;
    private static IntPtr _handle;
    private static string? _path;

    /// <summary>The file librdkafka was loaded from, or null (not loaded yet, or another platform's own loading).</summary>
    public static string? LoadedPath => _loaded ? _path : null;

    /// <summary>
    /// Registers the resolver (once per process) and loads librdkafka through it. Idempotent and thread-safe.
    /// </summary>
    /// <exception cref="DllNotFoundException">The bundled file is missing or does not load (the message names it).</exception>
    /// <exception cref="InvalidOperationException">Confluent.Kafka loaded a librdkafka before this was called.</exception>
    public static void EnsureLoaded()
    {
        if (_loaded) return;
        lock (Gate)
        {
            if (_loaded) return;
            bool bundled = OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture == Architecture.X64;
            if (bundled)
            {
                if (Library.IsLoaded)
                    throw new InvalidOperationException("librdkafka was loaded before KafkaNativeLibrary.EnsureLoaded was called, so it may be the machine's rather than the bundled one: call EnsureLoaded before the first Kafka call");
                string path = Path.Combine(AppContext.BaseDirectory, BundledRelativePath);
                if (!File.Exists(path) && File.Exists(Path.Combine(AppContext.BaseDirectory, BundledFlatPath)))
                    path = Path.Combine(AppContext.BaseDirectory, BundledFlatPath);
                if (!File.Exists(path))
                    throw new DllNotFoundException($"the bundled librdkafka is not at {path} nor in {AppContext.BaseDirectory} (it comes with the librdkafka.redist package: is this a build or publish of a project that references RamPay.Kafka?)");
                try
                {
                    _handle = NativeLibrary.Load(path);
                }
                catch (DllNotFoundException e)
                {
                    throw new DllNotFoundException($"the bundled librdkafka at {path} does not load: {e.Message}", e);
                }
                _path = path;
                NativeLibrary.SetDllImportResolver(typeof(Library).Assembly, Resolve);
            }
            Library.Load(); // binds Confluent.Kafka's entry points now, through Resolve
            _loaded = true;
        }
    }

    // Every name Confluent.Kafka tries on Linux (librdkafka, then centos8-librdkafka; alpine-librdkafka on musl only)
    // resolves to the one bundled file, so nothing else can be loaded in its place.
    private static IntPtr Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath) =>
        libraryName is "librdkafka" or "centos8-librdkafka" or "alpine-librdkafka" ? _handle : IntPtr.Zero;
}
