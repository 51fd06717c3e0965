using System.Threading.Tasks.Sources;
using P2PLocal.Rpc.Framing;

namespace P2PLocal.Rpc.Protocol;

/// <summary>
/// One outstanding request on a client connection: a reusable awaitable (no task, no <c>WaitAsync</c> timer task
/// per call) that completes exactly once, with the reply, a timeout, the caller's cancellation, or a lost connection.
/// Pooled per connection; see <see cref="Transport.ClientConnection"/>.
/// </summary>
/// <remarks>
/// The first completion wins; later ones return false so the caller of <see cref="TrySetResult"/> can return the
/// frame to the pool. Continuations always run on a thread-pool thread, never on the read loop that completes the call.
/// <see cref="Disarm"/> must run before the call goes back to the pool: it waits out a running cancellation
/// callback. A timer callback that was already queued when the timer was stopped carries no use of its own (the timer
/// is reused, so as not to allocate per call), so the current use's deadline stands for its generation: the callback
/// completes the call only if it is armed and that deadline, on the node's clock, has passed. A callback of an earlier
/// use lands before the current deadline and re-arms the timer for the rest, so no safety margin is needed.
/// </remarks>
internal sealed class PendingCall : IValueTaskSource<ReceivedFrame>, IThreadPoolWorkItem
{
    private static readonly TimerCallback s_onTimeout = static state => ((PendingCall)state!).OnTimeout();
    private static readonly Action<object?, CancellationToken> s_onCanceled = static (state, token) => ((PendingCall)state!).TrySetException(new OperationCanceledException(token));

    // Completion is queued to the thread pool's global queue (Execute), where any idle thread takes it; with
    // RunContinuationsAsynchronously the continuation would sit in the read loop's local queue until stolen.
    private ManualResetValueTaskSourceCore<ReceivedFrame> _core = new() { RunContinuationsAsynchronously = false };
    private ReceivedFrame _result;
    private Exception? _error;
    private readonly object _timerGate = new();
    private readonly TimeProvider _clock;
    private ITimer? _timer;
    private bool _timerArmed;
    private long _deadline; // a timestamp of _clock
    private CancellationTokenRegistration _cancellation;
    private int _completed;

    /// <summary>A call whose timeouts run on <paramref name="clock"/> (the node's <see cref="TimeProvider"/>).</summary>
    public PendingCall(TimeProvider clock) => _clock = clock;

    /// <summary>The awaitable for the current use.</summary>
    public ValueTask<ReceivedFrame> Task => new(this, _core.Version);

    /// <summary>Makes the call ready for another use; only after <see cref="Disarm"/>.</summary>
    public void Reset()
    {
        _core.Reset();
        _result = default;
        _error = null;
        _completed = 0;
    }

    /// <summary>Starts the timeout and listens to the caller's token.</summary>
    public void Arm(TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (timeout != Timeout.InfiniteTimeSpan)
        {
            lock (_timerGate)
            {
                // One timer per pooled call, re-armed with Change: no allocation per use.
                _timer ??= _clock.CreateTimer(s_onTimeout, this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
                _deadline = _clock.GetTimestamp() + (long)(timeout.TotalSeconds * _clock.TimestampFrequency);
                _timerArmed = true;
                _timer.Change(timeout, Timeout.InfiniteTimeSpan);
            }
        }

        if (cancellationToken.CanBeCanceled)
            _cancellation = cancellationToken.UnsafeRegister(s_onCanceled, this);
    }

    /// <summary>Stops the timeout and the cancellation callback; after it returns neither can complete this call again.</summary>
    public void Disarm()
    {
        _cancellation.Dispose(); // waits for a callback that is running
        _cancellation = default;
        lock (_timerGate)
        {
            if (!_timerArmed)
                return;
            _timerArmed = false;
            _timer!.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        }
    }

    private void OnTimeout()
    {
        lock (_timerGate)
        {
            if (!_timerArmed)
                return; // disarmed: the callback of a finished use
            var left = _deadline - _clock.GetTimestamp();
            if (left > 0)
            {
                // The current use is not due: this is a callback queued for an earlier use (or an early tick).
                // Re-arm for the rest of this use's timeout rather than fire it early.
                _timer!.Change(TimeSpan.FromSeconds((double)left / _clock.TimestampFrequency), Timeout.InfiniteTimeSpan);
                return;
            }

            _timerArmed = false;
        }

        TrySetException(new TimeoutException());
    }

    public bool TrySetResult(ReceivedFrame frame) => TryComplete(frame, null);

    public bool TrySetException(Exception error) => TryComplete(default, error);

    private bool TryComplete(ReceivedFrame frame, Exception? error)
    {
        if (!TryClaim(frame, error))
            return false;
        Deliver(inline: false);
        return true;
    }

    /// <summary>
    /// The first half of <see cref="TrySetResult"/>: claims the call for <paramref name="frame"/> (false when it already
    /// completed), so the caller can let go of its lock before <see cref="Deliver"/> resumes the waiter.
    /// </summary>
    public bool TryTakeResult(ReceivedFrame frame) => TryClaim(frame, null);

    private bool TryClaim(ReceivedFrame frame, Exception? error)
    {
        if (Interlocked.Exchange(ref _completed, 1) != 0)
            return false;
        _result = frame;
        _error = error;
        return true;
    }

    /// <summary>
    /// Resumes the waiter of a call claimed by <see cref="TryTakeResult"/>: on this thread when <paramref name="inline"/>
    /// (its continuation runs before this returns), else on a pool thread.
    /// </summary>
    public void Deliver(bool inline)
    {
        if (inline)
            ((IThreadPoolWorkItem)this).Execute();
        else
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
    }

    void IThreadPoolWorkItem.Execute()
    {
        if (_error is { } error)
            _core.SetException(error);
        else
            _core.SetResult(_result);
    }

    /// <summary>Releases the timer when the connection drops its pool.</summary>
    public void Dispose()
    {
        lock (_timerGate)
        {
            _timer?.Dispose();
            _timer = null;
        }
    }

    ReceivedFrame IValueTaskSource<ReceivedFrame>.GetResult(short token) => _core.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<ReceivedFrame>.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource<ReceivedFrame>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
