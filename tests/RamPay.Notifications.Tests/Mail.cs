using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using MimeKit;

namespace RamPay.Notifications.Tests;

/// <summary>
/// A real exim4 (tools/exim): the work tree's shared one from scripts/services.sh (RAMPAY_TEST_SMTP, RAMPAY_TEST_MAILDIR),
/// or a private one a test starts and stops itself (SMTP down, then back). Reads delivered mail from the maildir.
/// </summary>
public sealed class Exim : IDisposable
{
    public string Host { get; } = "127.0.0.1";
    public int Port { get; }
    public string Maildir { get; }
    private readonly string? _ownDir;

    private Exim(int port, string maildir, string? ownDir)
    {
        Port = port;
        Maildir = maildir;
        _ownDir = ownDir;
    }

    /// <summary>The exim scripts/services.sh started for this work tree.</summary>
    public static Exim Shared()
    {
        string smtp = Environment.GetEnvironmentVariable("RAMPAY_TEST_SMTP") ?? throw new InvalidOperationException("RAMPAY_TEST_SMTP is not set: run 'bash scripts/services.sh start' and 'source .services.env'");
        string maildir = Environment.GetEnvironmentVariable("RAMPAY_TEST_MAILDIR") ?? throw new InvalidOperationException("RAMPAY_TEST_MAILDIR is not set");
        return new Exim(int.Parse(smtp[(smtp.LastIndexOf(':') + 1)..], System.Globalization.CultureInfo.InvariantCulture), maildir, null);
    }

    /// <summary>A private exim on a free port, in a fresh directory (not started: <see cref="Start"/>).</summary>
    public static Exim Private()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        string dir = Directory.CreateTempSubdirectory("rampay-exim-").FullName;
        return new Exim(port, Path.Combine(dir, "maildir"), dir);
    }

    public void Start() => Script("start", _ownDir!, Port.ToString(System.Globalization.CultureInfo.InvariantCulture));
    public void Stop() => Script("stop", _ownDir!);

    private static void Script(params string[] args)
    {
        var start = new ProcessStartInfo("bash") { RedirectStandardError = true, RedirectStandardOutput = true };
        start.ArgumentList.Add(Path.Combine(RepoRoot(), "tools", "exim", "exim.sh"));
        foreach (var a in args) start.ArgumentList.Add(a);
        using var p = Process.Start(start)!;
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"exim.sh {string.Join(' ', args)} failed: {err}");
    }

    public static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "RamPay.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("no RamPay.sln above the test binaries");
    }

    public string[] Settings(int connections = 2) =>
    [
        $"Notifications:Smtp:Host={Host}", $"Notifications:Smtp:Port={Port}", "Notifications:Smtp:From=RamPay <noreply@rampay.test>",
        "Notifications:Smtp:Security=none", $"Notifications:Smtp:Connections={connections}",
    ];

    /// <summary>Every message delivered to <paramref name="address"/> so far (by its Envelope-to).</summary>
    public List<MimeMessage> To(string address)
    {
        var list = new List<MimeMessage>();
        string dir = Path.Combine(Maildir, "new");
        if (!Directory.Exists(dir)) return list;
        foreach (var file in Directory.EnumerateFiles(dir))
        {
            MimeMessage m;
            try { m = MimeMessage.Load(file); }
            catch (IOException) { continue; } // being written
            if (string.Equals(m.Headers["Envelope-to"]?.Trim(), address, StringComparison.OrdinalIgnoreCase)) list.Add(m);
        }
        return list;
    }

    public void Dispose()
    {
        if (_ownDir is null) return;
        try { Stop(); } catch (InvalidOperationException) { }
        try { Directory.Delete(_ownDir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
