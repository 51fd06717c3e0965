using System.Threading.Tasks.Sources;
using P2PLocal.Rpc.Framing;

namespace P2PLocal.Rpc.Protocol;

/// <summary>
/// One outstanding request on a client connection: a reusable awaitable (no task, no <c>WaitAsync</c> timer task
/// per call) that completes exactly once, with the reply, a timeout, the caller's cancellation, or a lost connection.
/// Pooled per connection; see <see cref="Transport.ClientConnection"/>, which also owns the request timeouts (one timer
/// per connection for the earliest deadline, <c>ClientConnection.Deadlines.cs</c>) and fails an overdue call through
/// <see cref="TrySetException"/>.
/// </summary>
/// <remarks>
/// The first completion wins; later ones return false so the caller of <see cref="TrySetResult"/> can return the
/// frame to the pool. Continuations run on a thread-pool thread unless <see cref="Deliver"/> is told otherwise.
/// <see cref="Disarm"/> must run before the call goes back to the pool: it waits out a running cancellation callback,
/// so the caller's token of one use never reaches the next.
/// </remarks>
internal sealed class PendingCall : IValueTaskSource<ReceivedFrame>, IThreadPoolWorkItem
{
    private static readonly Action<object?, CancellationToken> s_onCanceled = static (state, token) => ((PendingCall)state!).TrySetException(new OperationCanceledException(token));

    // Completion is queued to the thread pool's global queue (Execute), where any idle thread takes it; with
    // RunContinuationsAsynchronously the continuation would sit in the read loop's local queue until stolen.
    private ManualResetValueTaskSourceCore<ReceivedFrame> _core = new() { RunContinuationsAsynchronously = false };
    private ReceivedFrame _result;
    private Exception? _error;
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

    /// <summary>Listens to the caller's token (only one that can be cancelled costs a registration).</summary>
    public void Arm(CancellationToken cancellationToken)
    {
        if (cancellationToken.CanBeCanceled)
            _cancellation = cancellationToken.UnsafeRegister(s_onCanceled, this);
    }

    /// <summary>Stops listening to the caller's token; after it returns, that token cannot complete this call again.</summary>
    public void Disarm()
    {
        _cancellation.Dispose(); // waits for a callback that is running
        _cancellation = default;
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

    ReceivedFrame IValueTaskSource<ReceivedFrame>.GetResult(short token) => _core.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<ReceivedFrame>.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource<ReceivedFrame>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
