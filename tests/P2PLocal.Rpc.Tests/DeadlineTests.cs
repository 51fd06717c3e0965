using Microsoft.Extensions.Time.Testing;

namespace P2PLocal.Rpc.Tests;

/// <summary>
/// Issue 16: a connection times its requests out with one timer, set for the earliest deadline it knows of, instead of
/// one timer per call. A call must still time out at its own deadline on the node's clock: not earlier because the timer
/// was set for a call that already finished, not later because the timer was set for a later one. Whether a call was
/// timed out too early is seen from its answer (a result, not a <see cref="TimeoutException"/>), never from timing.
/// </summary>
public sealed class DeadlineTests
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromMinutes(10); // only the fake clock gets there

    private sealed class Pair : IAsyncDisposable
    {
        public required Node Alice { get; init; }

        public required Node Bob { get; init; }

        public required FakeTimeProvider Clock { get; init; }

        /// <summary>Answers every "gate" call once set.</summary>
        public TaskCompletionSource Gate { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Counts the "gate" and "hang" calls bob has started.</summary>
        public SemaphoreSlim Started { get; } = new(0);

        public async ValueTask DisposeAsync()
        {
            await Alice.DisposeAsync();
            await Bob.DisposeAsync();
            Started.Dispose();
        }
    }

    private static async Task<Pair> StartAsync()
    {
        var port = TestNetwork.FreeUdpPort();
        var clock = new FakeTimeProvider(DateTimeOffset.UnixEpoch.AddYears(56));
        // Both announce hourly (alice then believes bob's hour), so bob's entry outlives the fake minutes the tests advance.
        var bob = await TestNetwork.StartAsync("bob", port, TimeSpan.FromHours(1));
        var alice = await Node.StartAsync(new NodeOptions(TestNetwork.Options("alice", port, TimeSpan.FromHours(1))) { TimeProvider = clock, RequestTimeout = s_timeout });
        var pair = new Pair { Alice = alice, Bob = bob, Clock = clock };
        bob.Register("ping", _ => "pong");
        bob.Register("gate", async (_, cancellationToken) =>
        {
            pair.Started.Release();
            await pair.Gate.Task.WaitAsync(cancellationToken);
            return "opened";
        });
        bob.Register("hang", async (_, cancellationToken) =>
        {
            pair.Started.Release();
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return null;
        });
        await alice.Peers.WaitForAsync("bob").WaitAsync(TestNetwork.Patience);
        return pair;
    }

    [Fact]
    public async Task A_timer_set_for_a_finished_call_neither_times_out_a_later_call_early_nor_forgets_it()
    {
        await using var pair = await StartAsync();
        Assert.Equal("pong", await pair.Alice.RequestAsync("bob", "ping").WaitAsync(TestNetwork.Patience)); // the timer is set for its deadline, t+10

        pair.Clock.Advance(TimeSpan.FromMinutes(5));
        var gated = pair.Alice.RequestAsync("bob", "gate"); // due at t+15
        await pair.Started.WaitAsync(TestNetwork.Patience);
        pair.Clock.Advance(TimeSpan.FromMinutes(5)); // t+10: the timer fires for the finished ping, finds the gated call not due
        pair.Gate.SetResult();
        Assert.Equal("opened", await gated.WaitAsync(TestNetwork.Patience)); // a TimeoutException had it been timed out early

        var hung = pair.Alice.RequestAsync("bob", "hang"); // due at t+20
        await pair.Started.WaitAsync(TestNetwork.Patience);
        pair.Clock.Advance(TimeSpan.FromMinutes(9));
        Assert.False(hung.IsCompleted, "The call timed out before its own deadline.");
        pair.Clock.Advance(TimeSpan.FromMinutes(1));
        await TimesOutAsync(hung);
    }

    [Fact]
    public async Task Calls_made_at_different_times_each_time_out_at_their_own_deadline()
    {
        await using var pair = await StartAsync();
        var first = pair.Alice.RequestAsync("bob", "hang"); // due at t+10
        await pair.Started.WaitAsync(TestNetwork.Patience);
        pair.Clock.Advance(TimeSpan.FromMinutes(5));
        var second = pair.Alice.RequestAsync("bob", "gate"); // due at t+15
        var third = pair.Alice.RequestAsync("bob", "hang"); // due at t+15
        await pair.Started.WaitAsync(TestNetwork.Patience);
        await pair.Started.WaitAsync(TestNetwork.Patience);

        pair.Clock.Advance(TimeSpan.FromMinutes(5)); // t+10: only the first is due
        await TimesOutAsync(first);
        pair.Gate.SetResult();
        Assert.Equal("opened", await second.WaitAsync(TestNetwork.Patience));

        pair.Clock.Advance(TimeSpan.FromMinutes(5)); // t+15: the timer was set again, for the third
        await TimesOutAsync(third);
    }

    /// <summary>The call failed with the request timeout (the safety net's own TimeoutException says something else).</summary>
    private static async Task TimesOutAsync(Task<object?> call)
    {
        var error = await Assert.ThrowsAsync<TimeoutException>(() => call.WaitAsync(TestNetwork.Patience));
        Assert.Contains("did not answer 'hang' within 600000 ms", error.Message, StringComparison.Ordinal);
    }
}
