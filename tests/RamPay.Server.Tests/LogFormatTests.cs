using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using RamPay.Server.Hosting;

namespace RamPay.Server.Tests;

/// <summary>The text log format: the "rampay-server: " lines scripts and tests wait for, a level word for warnings and worse.</summary>
public class LogFormatTests
{
    private static string Format(LogLevel level, string category, string message, Exception? exception = null)
    {
        var writer = new StringWriter();
        var entry = new LogEntry<string>(level, category, new EventId(0), message, exception, (s, _) => s);
        new TextLogFormatter().Write(entry, null, writer);
        return writer.ToString();
    }

    [Fact]
    public void RamPay_information_is_a_plain_prefixed_line()
    {
        Assert.Equal("rampay-server: ready: data /x, journal sequence 5\n", Format(LogLevel.Information, "RamPay.Server.Hosting.ReadyService", "ready: data /x, journal sequence 5"));
    }

    [Fact]
    public void Warnings_errors_and_fatal_faults_say_so_and_framework_lines_name_their_category()
    {
        Assert.Equal("rampay-server: warning: kafka: broker down\n", Format(LogLevel.Warning, "RamPay.Server.Hosting.SinksService", "kafka: broker down"));
        Assert.Equal("rampay-server: FATAL: lost the writer lease: x\n", Format(LogLevel.Critical, "RamPay.Server.Hosting.ExitingFatalFaultHandler", "lost the writer lease: x"));
        Assert.Equal("rampay-server: error: [Microsoft.AspNetCore.Server.Kestrel] boom\n", Format(LogLevel.Error, "Microsoft.AspNetCore.Server.Kestrel", "boom"));
    }

    [Fact]
    public void An_exception_follows_its_line()
    {
        string text = Format(LogLevel.Error, "RamPay.Server", "start-up failed", new InvalidOperationException("no journal"));
        Assert.StartsWith("rampay-server: error: start-up failed\nSystem.InvalidOperationException: no journal", text, StringComparison.Ordinal);
    }
}
