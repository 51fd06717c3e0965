using P2PLocal.Rpc.Framing;
using P2PLocal.Rpc.Protocol;

namespace P2PLocal.Rpc.UnitTests;

/// <summary>
/// One pooled outstanding call: the first completion wins, the timeout and the caller's token complete it, and a
/// disarmed call is reused without an old timer reaching it. Waits are bounded by a 10 s net that fails the test with
/// <see cref="NeverCompletedException"/>, never a <see cref="TimeoutException"/> the library could also throw.
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
        var call = new PendingCall(TimeProvider.System);
        call.Arm(TimeSpan.FromSeconds(30), CancellationToken.None);
        var frame = new ReceivedFrame([7, 8], 2);

        Assert.True(call.TrySetResult(frame));
        Assert.False(call.TrySetResult(new ReceivedFrame([1], 1)));
        Assert.False(call.TrySetException(new IOException("late")));

        var received = await Completion(call);
        Assert.Equal(new byte[] { 7, 8 }, received.Payload.ToArray());
        call.Disarm();
        call.Dispose();
    }

    [Fact]
    public async Task An_error_completes_the_call_and_a_later_result_is_refused()
    {
        var call = new PendingCall(TimeProvider.System);
        call.Arm(Timeout.InfiniteTimeSpan, CancellationToken.None);
        var error = new IOException("connection lost");

        Assert.True(call.TrySetException(error));
        Assert.False(call.TrySetResult(new ReceivedFrame([1], 1)));

        Assert.Same(error, await Assert.ThrowsAsync<IOException>(() => Completion(call)));
        call.Disarm();
    }

    [Fact]
    public async Task The_timeout_fails_the_call_with_TimeoutException()
    {
        var call = new PendingCall(TimeProvider.System);
        call.Arm(TimeSpan.FromMilliseconds(50), CancellationToken.None);
        await Assert.ThrowsAsync<TimeoutException>(() => Completion(call));
        call.Disarm();
        call.Dispose();
    }

    [Fact]
    public async Task The_callers_token_fails_the_call_with_that_token()
    {
        using var cts = new CancellationTokenSource();
        var call = new PendingCall(TimeProvider.System);
        call.Arm(TimeSpan.FromSeconds(30), cts.Token);
        await cts.CancelAsync();

        var error = await Assert.ThrowsAsync<OperationCanceledException>(() => Completion(call));
        Assert.Equal(cts.Token, error.CancellationToken);
        call.Disarm();
        call.Dispose();
    }

    [Fact]
    public async Task A_disarmed_call_is_reused_and_neither_its_old_timer_nor_its_old_token_reaches_the_next_use()
    {
        using var cts = new CancellationTokenSource();
        var call = new PendingCall(TimeProvider.System);
        call.Arm(TimeSpan.FromMilliseconds(200), cts.Token);
        Assert.True(call.TrySetResult(new ReceivedFrame([1], 1)));
        await Completion(call);
        call.Disarm();
        call.Reset();

        call.Arm(Timeout.InfiniteTimeSpan, CancellationToken.None);
        await cts.CancelAsync(); // the old token no longer counts
        await Task.Delay(400); // past the old 200 ms timeout: a timer left running would fail this use
        Assert.True(call.TrySetResult(new ReceivedFrame([2], 1)));
        Assert.Equal(new byte[] { 2 }, (await Completion(call)).Payload.ToArray());
        call.Disarm();
        call.Reset();

        // And the reused call still times out on its own.
        call.Arm(TimeSpan.FromMilliseconds(30), CancellationToken.None);
        await Assert.ThrowsAsync<TimeoutException>(() => Completion(call));
        call.Disarm();
        call.Dispose();
    }

    [Fact]
    public async Task A_call_disarmed_at_its_deadline_gets_a_fresh_timer_for_the_next_use()
    {
        var call = new PendingCall(TimeProvider.System);
        for (var use = 0; use < 3; use++)
        {
            call.Arm(TimeSpan.FromMilliseconds(1), CancellationToken.None); // disarmed at its deadline: its callback may be queued
            await Assert.ThrowsAsync<TimeoutException>(() => Completion(call));
            call.Disarm();
            call.Reset();
        }

        call.Arm(TimeSpan.FromMilliseconds(20), CancellationToken.None);
        await Assert.ThrowsAsync<TimeoutException>(() => Completion(call));
        call.Disarm();
        call.Dispose();
        call.Dispose();
    }

    /// <summary>A clock whose time and timer callbacks the test moves by hand, to deliver a callback late (issue 9).</summary>
    private sealed class HandClock : TimeProvider
    {
        public long Now { get; set; }

        public HandTimer? Timer { get; private set; }

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => Now;

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
            Timer = new HandTimer(callback, state);
    }

    private sealed class HandTimer(TimerCallback callback, object? state) : ITimer
    {
        public TimeSpan Due { get; private set; } = Timeout.InfiniteTimeSpan;

        public void Fire() => callback(state);

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            Due = dueTime;
            return true;
        }

        public void Dispose()
        {
        }

        public ValueTask DisposeAsync() => default;
    }

    [Fact]
    public async Task A_timer_callback_of_an_earlier_use_does_not_time_out_the_current_one()
    {
        var clock = new HandClock();
        var call = new PendingCall(clock);
        call.Arm(TimeSpan.FromSeconds(10), CancellationToken.None); // use 1: deadline 10 s
        Assert.True(call.TrySetResult(new ReceivedFrame([1], 1)));
        await Completion(call);
        call.Disarm();
        call.Reset();

        clock.Now = TimeSpan.FromSeconds(5).Ticks;
        call.Arm(TimeSpan.FromSeconds(10), CancellationToken.None); // use 2: deadline 15 s
        clock.Now = TimeSpan.FromSeconds(11).Ticks;
        clock.Timer!.Fire(); // use 1's callback, queued before Disarm stopped the timer, runs now
        Assert.False(call.Task.IsCompleted, "A callback of the earlier use timed out the current one.");
        Assert.Equal(TimeSpan.FromSeconds(4), clock.Timer.Due); // re-armed for what is left of use 2

        clock.Now = TimeSpan.FromSeconds(15).Ticks;
        clock.Timer.Fire();
        await Assert.ThrowsAsync<TimeoutException>(() => Completion(call));
        call.Disarm();
        call.Dispose();
    }
}
