using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;

namespace P2PLocal.Rpc.Diagnostics;

/// <summary>
/// Keeps events that a stranger can trigger at will (bad frames, refused connections, spoofed beacons) from filling
/// the log: per logger (one per node) and per event id, at most <see cref="MaxPerWindow"/> messages pass in each
/// <see cref="Window"/>; the first message after a quiet spell says how many were suppressed before it.
/// </summary>
/// <remarks>Thread-safe. Costs nothing unless the event's level is enabled.</remarks>
internal sealed class LogLimiter(TimeProvider time)
{
    public const int MaxPerWindow = 10;
    public static readonly TimeSpan Window = TimeSpan.FromMinutes(1);

    private static readonly ConditionalWeakTable<ILogger, LogLimiter> s_limiters = new();
    private readonly object _gate = new();
    private readonly Dictionary<int, (long WindowStart, int Passed, int Suppressed)> _events = [];

    /// <summary>The limiter of <paramref name="logger"/>: the one <see cref="Use"/> set, else one on real time.</summary>
    public static LogLimiter For(ILogger logger) => s_limiters.GetValue(logger, static _ => new LogLimiter(TimeProvider.System));

    /// <summary>
    /// Makes the windows of <paramref name="logger"/> follow <paramref name="time"/> (the node's clock). Nodes that
    /// share a logger (same name, same factory) share its limiter: the first one's clock counts.
    /// </summary>
    public static void Use(ILogger logger, TimeProvider time) => s_limiters.GetValue(logger, _ => new LogLimiter(time));

    /// <summary>
    /// Whether one more message of event <paramref name="eventId"/> may be written now; when it may,
    /// <paramref name="suppressed"/> is how many were held back since the last one that passed.
    /// </summary>
    public bool TryPass(int eventId, out int suppressed)
    {
        var now = time.GetTimestamp();
        lock (_gate)
        {
            _events.TryGetValue(eventId, out var state);
            if (state.WindowStart == 0 || time.GetElapsedTime(state.WindowStart, now) >= Window)
                state = (now, 0, state.Suppressed);
            if (state.Passed >= MaxPerWindow)
            {
                _events[eventId] = state with { Suppressed = state.Suppressed + 1 };
                suppressed = 0;
                return false;
            }

            suppressed = state.Suppressed;
            _events[eventId] = (state.WindowStart, state.Passed + 1, 0);
            return true;
        }
    }
}
