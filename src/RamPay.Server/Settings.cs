using System.Globalization;
using System.Reflection;
using System.Text;

namespace RamPay.Server;

/// <summary>
/// Describes one setting of <see cref="ServerOptions"/>: the single place its meaning is written. <c>--help</c>, the
/// short flags and README's settings table (checked by a test) are all generated from these.
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class SettingAttribute(string description) : Attribute
{
    public string Description { get; } = description;
    /// <summary>A short command-line flag for the setting (e.g. <c>--data</c>), or null.</summary>
    public string? Flag { get; init; }
    /// <summary>What the flag takes, for --help (e.g. <c>&lt;dir&gt;</c>).</summary>
    public string? Value { get; init; }
}

/// <summary>One setting: its configuration key, default, description and flag, read from <see cref="ServerOptions"/>.</summary>
public sealed record Setting(string Key, Type Type, string Default, string Description, string? Flag, string? Value)
{
    /// <summary>The environment variable that sets it (RamPay__Http__Port works as well).</summary>
    public string EnvironmentVariable => "RAMPAY_" + Key[(ServerOptions.Section.Length + 1)..].Replace(":", "__", StringComparison.Ordinal).ToUpperInvariant();
}

/// <summary>Every setting of the server, from the <see cref="SettingAttribute"/>s on <see cref="ServerOptions"/>.</summary>
public static class SettingsCatalog
{
    private static readonly Lazy<IReadOnlyList<Setting>> _all = new(() => Collect(typeof(ServerOptions), new ServerOptions(), ServerOptions.Section).ToList());

    public static IReadOnlyList<Setting> All => _all.Value;

    /// <summary>Short flag → configuration key, for <c>AddCommandLine</c>.</summary>
    public static IDictionary<string, string> Flags() =>
        All.Where(s => s.Flag is not null).ToDictionary(s => s.Flag!, s => s.Key, StringComparer.Ordinal);

    private static IEnumerable<Setting> Collect(Type type, object defaults, string prefix)
    {
        foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (property.SetMethod is not { IsPublic: true }) continue;
            string key = prefix + ":" + property.Name;
            object? value = property.GetValue(defaults);
            if (IsSection(property.PropertyType))
            {
                foreach (var inner in Collect(property.PropertyType, value!, key)) yield return inner;
                continue;
            }
            var about = property.GetCustomAttribute<SettingAttribute>()
                        ?? throw new InvalidOperationException($"{key} has no [Setting] description: every setting is described once, next to it");
            yield return new Setting(key, property.PropertyType, Show(value), about.Description, about.Flag, about.Value);
        }
    }

    private static bool IsSection(Type type) => type.IsClass && type != typeof(string) && type.DeclaringType == typeof(ServerOptions);

    private static string Show(object? value) => value switch
    {
        null => "",
        bool b => b ? "true" : "false",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    /// <summary>The text of <c>rampay-server --help</c>.</summary>
    public static string Help()
    {
        var text = new StringBuilder();
        text.Append("""
            rampay-server: the RamPay payment server (HTTP JSON API and binary TCP protocol) on an embedded journal.

            Usage: rampay-server [flags] [--RamPay:Section:Key=value ...]

            Flags:

            """);
        foreach (var s in All.Where(s => s.Flag is not null))
            text.Append(CultureInfo.InvariantCulture, $"  {s.Flag + " " + s.Value,-28}{s.Key} (default {(s.Default.Length == 0 ? "empty" : s.Default)})\n");
        text.Append(CultureInfo.InvariantCulture, $"  {"-h, --help",-28}this text\n");
        text.Append(CultureInfo.InvariantCulture, $"  {Hosting.HealthCheckCommand.Flag + " [URL]",-28}alone: one GET of URL (default {Hosting.HealthCheckCommand.DefaultUrl}), exit 0 on 2xx, 1 otherwise (the image's HEALTHCHECK)\n\n");
        text.Append("""
            Settings: each comes from appsettings.json, from an environment variable RAMPAY_SECTION__KEY (or
            RamPay__Section__Key), or from --RamPay:Section:Key=value; later ones win, flags last.

            """);
        text.Append('\n');
        foreach (var s in All)
        {
            text.Append(CultureInfo.InvariantCulture, $"  {s.Key} = {(s.Default.Length == 0 ? "(empty)" : s.Default)}");
            if (s.Flag is not null) text.Append(CultureInfo.InvariantCulture, $"   [{s.Flag}]");
            text.Append('\n');
            foreach (var line in Wrap(s.Description, 100)) text.Append("      ").Append(line).Append('\n');
        }
        text.Append("""

            With none of the outside servers configured (the default) it needs nothing but its data folder. On start it
            prints "rampay-server: http listening on ...", "rampay-server: tcp listening on ..." and "rampay-server: ready ...";
            Ctrl-C or SIGTERM stops it cleanly (listeners, then the engine drains and snapshots, then the sinks catch up,
            then the writer lease is released). Exit codes: 0 clean stop, 1 start-up failed, 2 bad configuration,
            70 a fatal fault (the engine failed or the writer lease was lost): nothing more is written, a restart replays
            the journal.

            """);
        return text.ToString();
    }

    /// <summary>README's settings table: one row per setting, in catalog order.</summary>
    public static IEnumerable<string> ReadmeRows() =>
        All.Select(s => $"| `{s.Key}`{(s.Flag is null ? "" : $" (`{s.Flag}`)")} | {(s.Default.Length == 0 ? "empty" : $"`{s.Default}`")} | {s.Description.Replace("|", "\\|", StringComparison.Ordinal)} |");

    private static IEnumerable<string> Wrap(string text, int width)
    {
        var line = new StringBuilder();
        foreach (var word in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.Length > 0 && line.Length + 1 + word.Length > width)
            {
                yield return line.ToString();
                line.Clear();
            }
            if (line.Length > 0) line.Append(' ');
            line.Append(word);
        }
        if (line.Length > 0) yield return line.ToString();
    }
}
