using Microsoft.Extensions.Time.Testing;

namespace P2PLocal.Rpc.Tests;

/// <summary>
/// One clock (issue 9): request timeouts and idle reaping run on <see cref="NodeOptions.TimeProvider"/>, so a fake
/// clock drives them. Nothing here waits for real time to pass; the waits are safety nets for events.
/// </summary>
public sealed class ClockTests
{
    private static FakeTimeProvider NewClock() => new(DateTimeOffset.UnixEpoch.AddYears(56));

    [Fact]
    public async Task ARequestTimesOutOnTheNodesClock()
    {
        var port = TestNetwork.FreeUdpPort();
        var clock = NewClock();
        var running = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var bob = await TestNetwork.StartAsync("bob", port);
        bob.Register("hang", async (_, cancellationToken) =>
        {
            running.TrySetResult();
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return null;
        });
        await using var alice = await Node.StartAsync(new NodeOptions(TestNetwork.Options("alice", port))
        {
            TimeProvider = clock,
            RequestTimeout = TimeSpan.FromMinutes(10), // far beyond the test's patience: only the fake clock can get there
        });
        await alice.Peers.WaitForAsync("bob").WaitAsync(TestNetwork.Patience);

        var call = alice.RequestAsync("bob", "hang");
        await running.Task.WaitAsync(TestNetwork.Patience);
        clock.Advance(TimeSpan.FromMinutes(9));
        Assert.False(call.IsCompleted, "The request timed out before RequestTimeout passed on the node's clock.");

        clock.Advance(TimeSpan.FromMinutes(1));
        var error = await Assert.ThrowsAsync<TimeoutException>(() => call.WaitAsync(TestNetwork.Patience));
        Assert.Contains("did not answer 'hang' within 600000 ms", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnIdleConnectionClosesOnTheNodesClock()
    {
        var port = TestNetwork.FreeUdpPort();
        var clock = NewClock();
        // Bob (real clock) keeps connections for long, so only alice's reaper, on the fake clock, can close this one.
        await using var bob = await Node.StartAsync(new NodeOptions(TestNetwork.Options("bob", port)) { IdleConnectionTimeout = TimeSpan.FromMinutes(30) });
        bob.Register("ping", _ => "pong");
        await using var alice = await Node.StartAsync(new NodeOptions(TestNetwork.Options("alice", port))
        {
            TimeProvider = clock,
            IdleConnectionTimeout = TimeSpan.FromMinutes(10), // outgoing connections close after half of it, 5 min: only on the fake clock
        });
        var peer = await alice.Peers.WaitForAsync("bob").WaitAsync(TestNetwork.Patience);
        Assert.Equal("pong", await alice.RequestAsync("bob", "ping").WaitAsync(TestNetwork.Patience));
        Assert.True(alice.Pool.TryGetOpen(peer.InstanceId, out var connection));

        clock.Advance(TimeSpan.FromMinutes(4)); // the reaper runs (every 250 ms) but the connection is not idle long enough
        Assert.False(connection.IsClosed, "The connection closed before half the idle timeout passed on the node's clock.");

        clock.Advance(TimeSpan.FromMinutes(2));
        await connection.Closed.WaitAsync(TestNetwork.Patience);
        Assert.False(alice.Pool.TryGetOpen(peer.InstanceId, out _));
    }

    [Fact]
    public async Task AStreamCountsAsUseOnTheNodesClock()
    {
        var port = TestNetwork.FreeUdpPort();
        var clock = NewClock();
        await using var bob = await Node.StartAsync(new NodeOptions(TestNetwork.Options("bob", port)) { IdleConnectionTimeout = TimeSpan.FromMinutes(30) });
        bob.RegisterStream("count", (_, cancellationToken) => Count(3, cancellationToken));
        await using var alice = await Node.StartAsync(new NodeOptions(TestNetwork.Options("alice", port))
        {
            TimeProvider = clock,
            IdleConnectionTimeout = TimeSpan.FromMinutes(10),
        });
        var peer = await alice.Peers.WaitForAsync("bob").WaitAsync(TestNetwork.Patience);
        var items = new List<object?>();
        await foreach (var item in alice.RequestStreamAsync("bob", "count").WithCancellation(CancellationToken.None))
            items.Add(item);
        Assert.Equal(3, items.Count);
        Assert.True(alice.Pool.TryGetOpen(peer.InstanceId, out var connection));

        clock.Advance(TimeSpan.FromMinutes(1)); // well inside the 5 min the pool allows: a stream's use is stamped on the same clock
        Assert.False(connection.IsClosed, "The stream's connection was reaped as idle: its last use was not stamped on the node's clock.");
    }

    [Fact]
    public async Task AnEventCountsAsUseOnTheNodesClock()
    {
        var port = TestNetwork.FreeUdpPort();
        var clock = NewClock();
        await using var bob = await Node.StartAsync(new NodeOptions(TestNetwork.Options("bob", port)) { IdleConnectionTimeout = TimeSpan.FromMinutes(30) });
        var received = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var subscription = bob.Subscribe<int>("tick", value => received.TrySetResult(value));
        await using var alice = await Node.StartAsync(new NodeOptions(TestNetwork.Options("alice", port))
        {
            TimeProvider = clock,
            IdleConnectionTimeout = TimeSpan.FromMinutes(10),
        });
        var peer = await alice.Peers.WaitForAsync("bob").WaitAsync(TestNetwork.Patience);
        // Bob's topic reaches alice once a connection between them is up: publish until an event arrives.
        var deadline = DateTime.UtcNow + TestNetwork.Patience;
        while (!received.Task.IsCompleted && DateTime.UtcNow < deadline)
        {
            await alice.PublishAsync("tick", 7);
            await Task.WhenAny(received.Task, Task.Delay(50));
        }

        Assert.Equal(7, await received.Task.WaitAsync(TimeSpan.Zero));
        Assert.True(alice.Pool.TryGetOpen(peer.InstanceId, out var connection));
        clock.Advance(TimeSpan.FromMinutes(1)); // well inside the 5 min the pool allows: an event's send is stamped on the same clock
        Assert.False(connection.IsClosed, "The connection that sent an event was reaped as idle: its last use was not stamped on the node's clock.");
    }

    private static async IAsyncEnumerable<object?> Count(int n, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        for (var i = 0; i < n; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            await Task.Yield();
            yield return (long)i;
        }
    }
}
