using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace RamPay.Server.Tests;

/// <summary>
/// The settings are described once ([Setting] on ServerOptions): --help, the flags and README's table come from there,
/// and a test fails when README's table drifts. Bad values stop the start with exit code 2 and the key's name; the
/// JSON log format writes one JSON object per line.
/// </summary>
public class SettingsTests
{
    [Fact]
    public void Every_setting_has_a_description_and_the_flags_are_unique()
    {
        Assert.True(SettingsCatalog.All.Count > 50);
        Assert.All(SettingsCatalog.All, s => Assert.False(string.IsNullOrWhiteSpace(s.Description), s.Key));
        Assert.Equal(SettingsCatalog.All.Count, SettingsCatalog.All.Select(s => s.Key).Distinct().Count());
        var flags = SettingsCatalog.All.Where(s => s.Flag is not null).Select(s => s.Flag!).ToList();
        Assert.Equal(flags.Count, flags.Distinct().Count());
        Assert.Contains(SettingsCatalog.All, s => s.Key == "RamPay:Logging:Format" && s.Default == "text");
        Assert.Contains(SettingsCatalog.All, s => s.Key == "RamPay:Http:Port" && s.Flag == "--http-port" && s.Default == "8080");
    }

    [Fact]
    public async Task Help_names_every_setting_with_its_default()
    {
        var (code, output) = await ConfigurationTests.RunServerAsync("--help");
        Assert.Equal(0, code);
        foreach (var s in SettingsCatalog.All) Assert.Contains($"{s.Key} = ", output, StringComparison.Ordinal);
    }

    /// <summary>Set RAMPAY_WRITE_README=1 to write the generated table into README.md instead of comparing.</summary>
    [Fact]
    public void The_README_settings_table_is_the_generated_one()
    {
        string readme = FindReadme();
        var lines = File.ReadAllLines(readme).ToList();
        int header = lines.IndexOf("| setting | default | meaning |");
        Assert.True(header >= 0, "README.md has no settings table header '| setting | default | meaning |'");
        int first = header + 2, end = first;
        while (end < lines.Count && lines[end].StartsWith('|')) end++;
        var expected = SettingsCatalog.ReadmeRows().ToList();
        if (Environment.GetEnvironmentVariable("RAMPAY_WRITE_README") == "1")
        {
            lines.RemoveRange(first, end - first);
            lines.InsertRange(first, expected);
            File.WriteAllText(readme, string.Join('\n', lines) + "\n");
            return;
        }
        var actual = lines.GetRange(first, end - first);
        Assert.True(expected.SequenceEqual(actual),
            "README.md's settings table differs from ServerOptions' [Setting]s; run the test with RAMPAY_WRITE_README=1 to rewrite it. Expected:\n" + string.Join('\n', expected));
    }

    private static string FindReadme()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "README.md");
            if (File.Exists(candidate) && File.Exists(Path.Combine(dir.FullName, "RamPay.sln"))) return candidate;
        }
        throw new FileNotFoundException("README.md beside RamPay.sln, above " + AppContext.BaseDirectory);
    }

    [Theory]
    [InlineData("--RamPay:Http:Port=eighty", "RamPay:Http:Port")]
    [InlineData("--RamPay:Logging:Format=xml", "RamPay:Logging:Format")]
    [InlineData("--RamPay:Tcp:Port=-2", "RamPay:Tcp:Port")]
    [InlineData("--RamPay:Engine:WaitStrategy=Sleepy", "RamPay:Engine:WaitStrategy")]
    public async Task A_bad_value_stops_the_start_with_exit_code_2_and_names_the_key(string setting, string key)
    {
        string dir = Directory.CreateTempSubdirectory("rampay-config-").FullName;
        try
        {
            var (code, output) = await ConfigurationTests.RunServerAsync("--data", dir, "--http-port", "0", setting);
            Assert.True(code == 2, $"exit code {code}: {output}");
            Assert.Contains(key, output, StringComparison.Ordinal);
            Assert.Empty(Directory.GetFileSystemEntries(dir)); // nothing was written
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task A_bad_setting_in_the_json_format_is_one_json_line()
    {
        var (code, output) = await ConfigurationTests.RunServerAsync("--http-port", "0", "--RamPay:Logging:Format=json", "--RamPay:DefaultCurrency=XYZ");
        Assert.Equal(2, code);
        var line = Assert.Single(output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        using var json = JsonDocument.Parse(line);
        Assert.Equal("Error", json.RootElement.GetProperty("LogLevel").GetString());
        Assert.Contains("RamPay:DefaultCurrency", json.RootElement.GetProperty("State").GetProperty("Reason").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task In_the_json_format_every_line_is_one_event_with_its_fields()
    {
        string dir = Directory.CreateTempSubdirectory("rampay-json-").FullName;
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "rampay-server.dll"), "--data", dir, "--http-port", "0", "--tcp-port", "0", "--RamPay:Logging:Format=json", "--RamPay:Auth:PasswordHashIterations=1000" })
            start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var lines = new List<string>();
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            while (await process.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
            {
                lines.Add(line);
                if (line.Contains("\"ready: data", StringComparison.Ordinal)) break;
            }
            Assert.Equal(0, kill(process.Id, 15)); // SIGTERM: a clean stop, logged as JSON too
            lines.AddRange((await process.StandardOutput.ReadToEndAsync(timeout.Token)).Split('\n', StringSplitOptions.RemoveEmptyEntries));
            await process.WaitForExitAsync(timeout.Token);
            Assert.True(process.ExitCode == 0, $"exit code {process.ExitCode}: {string.Join('\n', lines)}\n{await stderr}");
        }
        finally
        {
            if (!process.HasExited) process.Kill();
            Directory.Delete(dir, recursive: true);
        }
        var events = lines.Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.All(events, e => Assert.True(e.TryGetProperty("Timestamp", out _) && e.TryGetProperty("LogLevel", out _) && e.TryGetProperty("Category", out _) && e.TryGetProperty("Message", out _)));
        var ready = Assert.Single(events, e => e.GetProperty("Message").GetString()!.StartsWith("ready: data", StringComparison.Ordinal));
        Assert.Equal(dir, ready.GetProperty("State").GetProperty("DataDirectory").GetString());
        Assert.True(ready.GetProperty("State").TryGetProperty("JournalSequence", out _));
        Assert.Contains(events, e => e.GetProperty("Message").GetString() == "stopped cleanly");
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);
}
