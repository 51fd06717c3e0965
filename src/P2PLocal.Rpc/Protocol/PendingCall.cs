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
/// callback, and a timer callback that may already be queued finds its timer retired and does nothing.
/// </remarks>
internal sealed class PendingCall : IValueTaskSource<ReceivedFrame>, IThreadPoolWorkItem
{
    private static readonly TimerCallback s_onTimeout = static state => ((TimerBox)state!).Owner.OnTimeout((TimerBox)state);
    private static readonly Action<object?, CancellationToken> s_onCanceled = static (state, token) => ((PendingCall)state!).TrySetException(new OperationCanceledException(token));

    /// <summary>A callback this close to its deadline may already be queued when the timer is stopped.</summary>
    private const long QueuedCallbackSlackMs = 100;

    // Completion is queued to the thread pool's global queue (Execute), where any idle thread takes it; with
    // RunContinuationsAsynchronously the continuation would sit in the read loop's local queue until stolen.
    private ManualResetValueTaskSourceCore<ReceivedFrame> _core = new() { RunContinuationsAsynchronously = false };
    private ReceivedFrame _result;
    private Exception? _error;
    private readonly object _timerGate = new();
    private Timer? _timer;
    private TimerBox? _timerBox;
    private bool _timerArmed;
    private long _deadline;
    private CancellationTokenRegistration _cancellation;
    private int _completed;

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
                if (_timer is null)
                {
                    _timerBox = new TimerBox(this);
                    _timer = new Timer(s_onTimeout, _timerBox, Timeout.Infinite, Timeout.Infinite);
                }

                _deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
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
            _timer!.Change(Timeout.Infinite, Timeout.Infinite);
            if (Environment.TickCount64 >= _deadline - QueuedCallbackSlackMs)
            {
                // Its callback may be queued already: retire this timer so that callback cannot reach a later use.
                _timer.Dispose();
                _timer = null;
                _timerBox = null;
            }
        }
    }

    private void OnTimeout(TimerBox box)
    {
        lock (_timerGate)
        {
            if (box != _timerBox || !_timerArmed)
                return;
            _timerArmed = false;
        }

        TrySetException(new TimeoutException());
    }

    private sealed class TimerBox(PendingCall owner)
    {
        public PendingCall Owner { get; } = owner;
    }

    public bool TrySetResult(ReceivedFrame frame)
    {
        if (!TryTakeResult(frame))
            return false;
        Deliver(inline: false);
        return true;
    }

    /// <summary>
    /// The first half of <see cref="TrySetResult"/>: claims the call for <paramref name="frame"/> (false when it already
    /// completed), so the caller can let go of its lock before <see cref="Deliver"/> resumes the waiter.
    /// </summary>
    public bool TryTakeResult(ReceivedFrame frame)
    {
        if (Interlocked.Exchange(ref _completed, 1) != 0)
            return false;
        _result = frame;
        _error = null;
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

    public bool TrySetException(Exception error)
    {
        if (Interlocked.Exchange(ref _completed, 1) != 0)
            return false;
        _result = default;
        _error = error;
        ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        return true;
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
            _timerBox = null;
        }
    }

    ReceivedFrame IValueTaskSource<ReceivedFrame>.GetResult(short token) => _core.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<ReceivedFrame>.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource<ReceivedFrame>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
