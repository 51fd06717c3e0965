namespace P2PLocal.Rpc.UnitTests.NodeFacade;

/// <summary>
/// Runs blocking facade calls on a thread of their own under a <see cref="SynchronizationContext"/> (as a UI thread
/// would) and counts what the library posts back to it. Posts still run, on the thread pool, so a test fails on the
/// count, never by hanging: library code awaits with <c>ConfigureAwait(false)</c>, and the blocking forms
/// (<c>Request</c>, <c>GetMethods</c>, <c>Shutdown</c>) would deadlock such a thread if it posted a continuation there.
/// </summary>
internal static class CallerContext
{
    /// <summary>Runs <paramref name="blocking"/> under a counting context; returns its result and what it posted there (where from).</summary>
    public static Task<(T Result, IReadOnlyList<string> Posted)> RunAsync<T>(Func<T> blocking)
    {
        var done = new TaskCompletionSource<(T, IReadOnlyList<string>)>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            var context = new CountingContext();
            SynchronizationContext.SetSynchronizationContext(context);
            try
            {
                var result = blocking();
                done.SetResult((result, context.Posted));
            }
            catch (Exception e)
            {
                done.SetException(e);
            }
        })
        {
            IsBackground = true,
            Name = "facade caller with a SynchronizationContext",
        };
        thread.Start();
        return done.Task;
    }

    private sealed class CountingContext : SynchronizationContext
    {
        private readonly System.Collections.Concurrent.ConcurrentQueue<string> _posted = new();

        public IReadOnlyList<string> Posted => [.. _posted];

        public override void Post(SendOrPostCallback d, object? state)
        {
            // Where the post came from, for the failure message: the awaiting method is in the stack.
            _posted.Enqueue(Environment.StackTrace);
            ThreadPool.QueueUserWorkItem(_ => d(state));
        }

        public override void Send(SendOrPostCallback d, object? state) => throw new NotSupportedException("The library sent work to the caller's context.");

        public override SynchronizationContext CreateCopy() => this;
    }
}
