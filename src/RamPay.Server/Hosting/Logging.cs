using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Console;

namespace RamPay.Server.Hosting;

/// <summary>
/// The server's console logging: one line per event, in the format <c>RamPay:Logging:Format</c> names. <c>text</c>
/// (the default) writes <c>rampay-server: message</c>, the lines scripts and tests wait for (<c>rampay-server: ready</c>,
/// <c>... http listening on ...</c>); <c>json</c> writes one JSON object per event with its structured fields. Warnings
/// and worse go to standard error.
/// </summary>
public static class ServerLogging
{
    public const string Prefix = "rampay-server: ";

    public static ILoggingBuilder AddServerConsole(this ILoggingBuilder logging, bool json)
    {
        logging.ClearProviders();
        logging.AddConsole(o =>
        {
            o.FormatterName = json ? ConsoleFormatterNames.Json : TextLogFormatter.FormatterName;
            o.LogToStandardErrorThreshold = LogLevel.Warning;
        });
        logging.AddConsoleFormatter<TextLogFormatter, ConsoleFormatterOptions>();
        logging.Services.Configure<JsonConsoleFormatterOptions>(o =>
        {
            o.JsonWriterOptions = new System.Text.Json.JsonWriterOptions { Indented = false };
            o.UseUtcTimestamp = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
            o.IncludeScopes = true;
        });
        // The framework's own information lines (request starts, hosting) are noise here; its warnings are not.
        logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        logging.AddFilter("Microsoft.Hosting", LogLevel.Warning);
        return logging;
    }

    /// <summary>A logger for before the host exists (a bad setting), in the same format.</summary>
    public static ILoggerFactory CreateStartupLoggerFactory(bool json) => LoggerFactory.Create(b => b.AddServerConsole(json));
}

/// <summary><c>rampay-server: [level: ][[category] ]message</c>, the exception (if any) on the following lines.</summary>
public sealed class TextLogFormatter() : ConsoleFormatter(FormatterName)
{
    public const string FormatterName = "rampay-text";

    public override void Write<TState>(in LogEntry<TState> logEntry, IExternalScopeProvider? scopeProvider, TextWriter textWriter)
    {
        string? message = logEntry.Formatter?.Invoke(logEntry.State, logEntry.Exception);
        if (string.IsNullOrEmpty(message) && logEntry.Exception is null) return;
        textWriter.Write(ServerLogging.Prefix);
        textWriter.Write(logEntry.LogLevel switch
        {
            LogLevel.Critical => "FATAL: ",
            LogLevel.Error => "error: ",
            LogLevel.Warning => "warning: ",
            _ => "",
        });
        // RamPay's own lines read as sentences; a framework line says where it comes from.
        if (!logEntry.Category.StartsWith("RamPay.", StringComparison.Ordinal))
        {
            textWriter.Write('[');
            textWriter.Write(logEntry.Category);
            textWriter.Write("] ");
        }
        textWriter.Write(message);
        if (logEntry.Exception is { } e)
        {
            textWriter.Write('\n');
            textWriter.Write(e.ToString());
        }
        textWriter.Write('\n');
    }
}
