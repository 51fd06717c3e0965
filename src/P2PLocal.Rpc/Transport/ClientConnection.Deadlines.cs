using P2PLocal.Rpc.Protocol;

namespace P2PLocal.Rpc.Transport;

/// <summary>
/// Request timeouts with one timer per connection instead of one per call (issue 16): each waiting call carries its
/// deadline in <see cref="_pending"/>, and the timer is due at the earliest deadline it has been told of. Calls
/// normally end long before their deadline, so a timer that fires finds the call it was set for gone, scans what is
/// still waiting, fails the overdue ones and sets itself for the earliest deadline left. With one timeout for all
/// calls of a node, a new call's deadline is never earlier than the one the timer is set for, so the per-call cost
/// is a comparison; the timer moves about once per timeout, and a scan costs one pass over the calls in flight.
/// </summary>
/// <remarks>Every deadline is a timestamp of <see cref="FramedConnection.Clock"/> (the node's <see cref="TimeProvider"/>), so a fake clock drives timeouts.</remarks>
internal sealed partial class ClientConnection
{
    private static readonly TimerCallback s_onDeadline = static state => ((ClientConnection)state!).OnDeadline();

    /// <summary>A call waiting for its reply, and when it times out (a timestamp of <see cref="FramedConnection.Clock"/>; <see cref="long.MaxValue"/> for never).</summary>
    private readonly record struct Waiting(PendingCall Call, long Deadline);

    private ITimer? _deadlineTimer;

    /// <summary>When <see cref="_deadlineTimer"/> fires; <see cref="long.MaxValue"/> when it is not set. Under <see cref="_pendingGate"/>.</summary>
    private long _timerDue = long.MaxValue;

    /// <summary>The deadline of a call of <paramref name="timeout"/> that starts at <paramref name="now"/>.</summary>
    private long DeadlineAfter(long now, TimeSpan timeout) => timeout == Timeout.InfiniteTimeSpan
        ? long.MaxValue
        : now + (long)(timeout.TotalSeconds * Clock.TimestampFrequency);

    /// <summary>Makes sure the timer fires by <paramref name="deadline"/>; under <see cref="_pendingGate"/>.</summary>
    private void WatchDeadlineLocked(long deadline)
    {
        if (deadline >= _timerDue || IsClosed)
            return; // the usual case: the timer is already due earlier (or the close fails every call)
        _timerDue = deadline;
        _deadlineTimer ??= Clock.CreateTimer(s_onDeadline, this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _deadlineTimer.Change(DueIn(deadline), Timeout.InfiniteTimeSpan);
    }

    /// <summary>The longest a system timer waits at once (2^32 - 2 ms, about 49.7 days).</summary>
    private static readonly TimeSpan s_longestTimerWait = TimeSpan.FromMilliseconds(uint.MaxValue - 1);

    /// <remarks>A deadline further away than a timer can wait fires the timer early; <see cref="OnDeadline"/> then finds nothing overdue and sets it again.</remarks>
    private TimeSpan DueIn(long deadline)
    {
        var due = TimeSpan.FromSeconds(Math.Max(0, deadline - Clock.GetTimestamp()) / (double)Clock.TimestampFrequency);
        return due > s_longestTimerWait ? s_longestTimerWait : due;
    }

    /// <summary>The timer fired: fail every overdue call with <see cref="TimeoutException"/>, and set the timer for the next deadline.</summary>
    /// <remarks>A timer callback queued before the timer was moved may run early; it finds nothing overdue and sets the timer again.</remarks>
    private void OnDeadline()
    {
        List<uint>? overdue = null;
        lock (_pendingGate)
        {
            if (_deadlineTimer is null)
                return; // closed
            var now = Clock.GetTimestamp();
            var next = long.MaxValue;
            foreach (var (id, waiting) in _pending)
            {
                if (waiting.Deadline <= now)
                    (overdue ??= []).Add(id);
                else if (waiting.Deadline < next)
                    next = waiting.Deadline;
            }

            if (overdue is not null)
            {
                foreach (var id in overdue)
                {
                    // Forgotten here, so a late reply finds no taker; the caller still sends the peer a cancel (Abandon).
                    if (_pending.Remove(id, out var waiting))
                        waiting.Call.TrySetException(new TimeoutException());
                }
            }

            _timerDue = long.MaxValue;
            if (next != long.MaxValue)
                WatchDeadlineLocked(next);
        }
    }

    /// <summary>The connection closed: the timer goes with it. Under <see cref="_pendingGate"/>.</summary>
    private void StopDeadlinesLocked()
    {
        _deadlineTimer?.Dispose();
        _deadlineTimer = null;
        _timerDue = long.MinValue; // never set again
    }
}
