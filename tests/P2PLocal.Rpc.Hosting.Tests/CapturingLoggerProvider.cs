using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace P2PLocal.Rpc.Hosting.Tests;

public sealed record LogEntry(string Category, LogLevel Level, EventId EventId, string Message);

/// <summary>Keeps every log entry in memory.</summary>
public sealed class CapturingLoggerProvider : ILoggerProvider
{
    public ConcurrentQueue<LogEntry> Entries { get; } = new();

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(CapturingLoggerProvider owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            owner.Entries.Enqueue(new LogEntry(category, logLevel, eventId, formatter(state, exception)));
    }
}
