using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace RamPay.TestSupport;

/// <summary>
/// An <see cref="ILogger"/> that keeps every event (level, formatted message and structured fields) for a test to
/// assert on: what a library logs, and that its fields are fields (not only text in the message).
/// </summary>
public sealed class RecordingLogger : ILogger
{
    public sealed record Entry(LogLevel Level, EventId EventId, string Message, IReadOnlyDictionary<string, object?> Fields);

    private readonly ConcurrentQueue<Entry> _entries = new();

    public IReadOnlyList<Entry> Entries => _entries.ToArray();
    public IEnumerable<string> Messages => _entries.Select(e => e.Message);

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        var fields = new Dictionary<string, object?>();
        if (state is IEnumerable<KeyValuePair<string, object?>> pairs)
            foreach (var (key, value) in pairs) fields[key] = value;
        _entries.Enqueue(new Entry(logLevel, eventId, formatter(state, exception), fields));
    }
}

/// <summary>A <see cref="RecordingLogger"/> for a typed logger parameter.</summary>
public sealed class RecordingLogger<T> : ILogger<T>
{
    public RecordingLogger Inner { get; } = new();
    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => Inner.BeginScope(state);
    public bool IsEnabled(LogLevel logLevel) => true;
    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        Inner.Log(logLevel, eventId, state, exception, formatter);
}
