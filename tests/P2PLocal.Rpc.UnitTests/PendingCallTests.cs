using P2PLocal.Rpc.Framing;
using P2PLocal.Rpc.Protocol;

namespace P2PLocal.Rpc.UnitTests;

/// <summary>
/// One pooled outstanding call: the first completion wins, the caller's token completes it, and a disarmed call is
/// reused without an old token reaching it. Timeouts are the connection's (DeadlineTests, Transport/ClientConnectionTests).
/// Waits are bounded by a 10 s net that fails the test with <see cref="NeverCompletedException"/>, never a
/// <see cref="TimeoutException"/> the library could also throw.
/// </summary>
public class PendingCallTests
{
    private static readonly TimeSpan s_net = TimeSpan.FromSeconds(10);

    private sealed class NeverCompletedException() : Exception("The call did not complete within the test's 10 s net.");

    private static async Task<ReceivedFrame> Completion(PendingCall call)
    {
        var task = call.Task.AsTask();
        if (await Task.WhenAny(task, Task.Delay(s_net)) != task)
            throw new NeverCompletedException();
        return await task;
    }

    [Fact]
    public async Task The_first_completion_wins_and_later_ones_return_false()
    {
        var call = new PendingCall();
        call.Arm(CancellationToken.None);
        var frame = new ReceivedFrame([7, 8], 2);

        Assert.True(call.TrySetResult(frame));
        Assert.False(call.TrySetResult(new ReceivedFrame([1], 1)));
        Assert.False(call.TrySetException(new IOException("late")));

        var received = await Completion(call);
        Assert.Equal(new byte[] { 7, 8 }, received.Payload.ToArray());
        call.Disarm();
    }

    [Fact]
    public async Task An_error_completes_the_call_and_a_later_result_is_refused()
    {
        var call = new PendingCall();
        call.Arm(CancellationToken.None);
        var error = new IOException("connection lost");

        Assert.True(call.TrySetException(error));
        Assert.False(call.TrySetResult(new ReceivedFrame([1], 1)));

        Assert.Same(error, await Assert.ThrowsAsync<IOException>(() => Completion(call)));
        call.Disarm();
    }

    [Fact]
    public async Task The_callers_token_fails_the_call_with_that_token()
    {
        using var cts = new CancellationTokenSource();
        var call = new PendingCall();
        call.Arm(cts.Token);
        await cts.CancelAsync();

        var error = await Assert.ThrowsAsync<OperationCanceledException>(() => Completion(call));
        Assert.Equal(cts.Token, error.CancellationToken);
        call.Disarm();
    }

    [Fact]
    public async Task A_disarmed_call_is_reused_and_its_old_token_does_not_reach_the_next_use()
    {
        using var cts = new CancellationTokenSource();
        var call = new PendingCall();
        call.Arm(cts.Token);
        Assert.True(call.TrySetResult(new ReceivedFrame([1], 1)));
        await Completion(call);
        call.Disarm();
        call.Reset();

        call.Arm(CancellationToken.None);
        await cts.CancelAsync(); // the old token no longer counts
        Assert.False(call.Task.IsCompleted, "The token of the earlier use completed the current one.");
        Assert.True(call.TrySetResult(new ReceivedFrame([2], 1)));
        Assert.Equal(new byte[] { 2 }, (await Completion(call)).Payload.ToArray());
        call.Disarm();
    }

    [Fact]
    public async Task A_completion_never_runs_the_waiters_continuation_on_the_completing_thread()
    {
        // The read loop completes calls: a caller that blocks after its await must not hold it (inline is opt-in, Deliver(true)).
        using var release = new ManualResetEventSlim();
        var call = new PendingCall();
        call.Arm(CancellationToken.None);
        var waiter = AwaitThenBlockAsync();

        var completing = System.Threading.Tasks.Task.Run(() => call.TrySetResult(new ReceivedFrame([1], 1)));
        var returned = await System.Threading.Tasks.Task.WhenAny(completing, System.Threading.Tasks.Task.Delay(s_net)) == completing;
        release.Set();
        await waiter;
        call.Disarm();
        Assert.True(returned, "TrySetResult ran the waiter's continuation before returning.");
        Assert.True(await completing);

        async Task AwaitThenBlockAsync()
        {
            await call.Task.ConfigureAwait(false); // no context: the continuation runs where the call is completed
            release.Wait();
        }
    }
}
