using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using RamPay.Client;

namespace RamPay.Events.Tests;

/// <summary>
/// docs/webhooks.md, "Verifying a signature": the Python function and the openssl command line, taken from the document
/// itself and run (Debian's python3 and openssl), agree with the signatures the dispatcher sends
/// (<see cref="WebhookSignature.Header(ReadOnlySpan{byte}, long, IEnumerable{string})"/>): a good one passes, a wrong
/// secret, a changed body and a stale timestamp fail, and during a rotation either secret passes.
/// </summary>
public sealed partial class WebhookDocsVerificationTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    private static readonly byte[] Body = Encoding.UTF8.GetBytes("{\"event_id\":\"12-0-1\",\"type\":\"PaymentApproved\",\"description\":\"caf\u00e9 \u2615\"}\n");
    private const string Secret = "whsec_0123456789abcdefABCDEF", Rotated = "whsec_rotated-secret-value";

    private static string Block(string language)
    {
        string root = AppContext.BaseDirectory;
        for (var dir = new DirectoryInfo(root); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Directory.Packages.props"))) { root = dir.FullName; break; }
        string doc = File.ReadAllText(Path.Combine(root, "docs", "webhooks.md"));
        string section = doc[doc.IndexOf("## Verifying a signature", StringComparison.Ordinal)..];
        var match = Regex.Match(section, "```" + language + "\n(.*?)```", RegexOptions.Singleline);
        Assert.True(match.Success, $"docs/webhooks.md has no ```{language} block under \"Verifying a signature\"");
        return match.Groups[1].Value;
    }

    private (int Exit, string Output) Run(string file, string arguments, Dictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = _dir.Path };
        foreach (var (k, v) in environment ?? []) start.Environment[k] = v;
        using var p = Process.Start(start)!;
        string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output.Trim());
    }

    [Fact]
    public void The_documented_Python_verifier_accepts_what_the_dispatcher_signs_and_nothing_else()
    {
        File.WriteAllBytes(Path.Combine(_dir.Path, "body.json"), Body);
        long now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var cases = new (string Name, string Header, string Secret, bool Body, bool Expected)[]
        {
            ("signed with the secret", WebhookSignature.Header(Body, now, [Secret]), Secret, true, true),
            ("a wrong secret", WebhookSignature.Header(Body, now, [Secret]), "whsec_wrong", true, false),
            ("a changed body", WebhookSignature.Header(Body, now, [Secret]), Secret, false, false),
            ("a stale timestamp", WebhookSignature.Header(Body, now - 3_600, [Secret]), Secret, true, false),
            ("a rotation, the new secret", WebhookSignature.Header(Body, now, [Rotated, Secret]), Rotated, true, true),
            ("a rotation, the old secret", WebhookSignature.Header(Body, now, [Rotated, Secret]), Secret, true, true),
        };
        var script = new StringBuilder(Block("python")).AppendLine().AppendLine("import sys").AppendLine("body = open('body.json', 'rb').read()");
        foreach (var c in cases)
            script.AppendLine($"print(verify(body{(c.Body ? "" : " + b' '")}, '{c.Header}', '{c.Secret}'))");
        File.WriteAllText(Path.Combine(_dir.Path, "verify.py"), script.ToString());
        var (exit, output) = Run("python3", "verify.py");
        Assert.True(exit == 0, output);
        Assert.Equal(cases.Select(c => c.Expected ? "True" : "False"), output.Split('\n').Select(l => l.Trim()));
        // The C# line of the document: the same answers.
        foreach (var c in cases)
            Assert.True(c.Expected == WebhookSignature.Verify(c.Body ? Body : [.. Body, (byte)' '], c.Header, c.Secret, TimeSpan.FromMinutes(5)), c.Name);
    }

    [Fact]
    public void The_documented_openssl_command_prints_the_v1_of_the_header()
    {
        File.WriteAllBytes(Path.Combine(_dir.Path, "body.json"), Body);
        const long t = 1_765_000_000;
        string header = WebhookSignature.Header(Body, t, [Secret]);
        string v1 = header.Split(',').Single(p => p.StartsWith("v1=", StringComparison.Ordinal))[3..];
        File.WriteAllText(Path.Combine(_dir.Path, "verify.sh"), Block("sh"));
        var (exit, output) = Run("sh", "verify.sh", new() { ["T"] = t.ToString(System.Globalization.CultureInfo.InvariantCulture), ["SECRET"] = Secret });
        Assert.True(exit == 0, output);
        // openssl prints "HMAC-SHA2-256(stdin)= <hex>" (or "(stdin)= <hex>" in older versions): the hex is the header's v1.
        Assert.Equal(v1, Hex().Match(output).Value);
    }

    [GeneratedRegex("[0-9a-f]{64}")]
    private static partial Regex Hex();
}
