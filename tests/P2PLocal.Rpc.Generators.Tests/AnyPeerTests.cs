using P2PLocal.Rpc.Generators.Tests.Services;

namespace P2PLocal.Rpc.Generators.Tests;

/// <summary>Calls addressed to a service instead of a node (issue 14): <c>Peers.Any&lt;T&gt;()</c> and <c>Peers.ServingAsync&lt;T&gt;()</c>.</summary>
public sealed class AnyPeerTests
{
    private static Task<Node> StartAsync(string name, int port, TimeSpan? grace = null) => Node.StartAsync(new NodeOptions
    {
        Name = name,
        DiscoveryPort = port,
        Scope = DiscoveryScope.Loopback,
        AdvertiseInterval = TimeSpan.FromSeconds(3),
        ShutdownGracePeriod = grace ?? TimeSpan.FromSeconds(2),
    });

    [Fact]
    public async Task Serving_lists_the_peers_that_serve_the_contract_and_no_others()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var first = await StartAsync("first", port);
        first.Register<IJobs>(new Jobs("first"));
        await using var second = await StartAsync("second", port);
        second.Register<IJobs>(new Jobs("second"));
        await using var other = await StartAsync("other", port);
        other.Register(new Calculator());
        await using var caller = await StartAsync("caller", port);
        foreach (var name in new[] { "first", "second", "other" })
            await caller.Peers.WaitForAsync(name).Within();

        Assert.Empty(caller.Peers.Serving<IJobs>()); // nothing checked yet: no traffic
        Assert.Equal(["first", "second"], (await caller.Peers.ServingAsync<IJobs>().Within()).Select(p => p.Name));
        Assert.Equal(["first", "second"], caller.Peers.Serving<IJobs>().Select(p => p.Name)); // cached now
        Assert.Equal(["other"], (await caller.Peers.ServingAsync<ICalculator>().Within()).Select(p => p.Name));
    }

    [Fact]
    public async Task Calls_spread_across_the_serving_peers()
    {
        var port = TestNetwork.FreeUdpPort();
        var (firstJobs, secondJobs) = (new Jobs("first"), new Jobs("second"));
        await using var first = await StartAsync("first", port);
        first.Register<IJobs>(firstJobs);
        await using var second = await StartAsync("second", port);
        second.Register<IJobs>(secondJobs);
        await using var caller = await StartAsync("caller", port);
        await caller.Peers.WaitForAsync("first").Within();
        await caller.Peers.WaitForAsync("second").Within();
        var jobs = caller.Peers.Any<IJobs>();

        for (var i = 0; i < 100; i++)
            await jobs.RunAsync(i).Within();

        Assert.Equal(100, firstJobs.Runs.Count + secondJobs.Runs.Count);
        Assert.InRange(firstJobs.Runs.Count, 25, 75);
    }

    [Fact]
    public async Task Without_a_serving_peer_a_call_fails_with_PeerNotFound_naming_the_contract()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var other = await StartAsync("other", port);
        other.Register(new Calculator());
        await using var caller = await StartAsync("caller", port);
        await caller.Peers.WaitForAsync("other").Within();

        var error = await Assert.ThrowsAsync<PeerNotFoundException>(() => caller.Peers.Any<IJobs>().RunAsync(1).Within());
        Assert.Contains("IJobs", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_serving_node_shut_down_mid_load_loses_no_call_and_runs_none_twice_unless_idempotent(bool idempotent)
    {
        var port = TestNetwork.FreeUdpPort();
        var (leavingJobs, stayingJobs) = (new Jobs("leaving"), new Jobs("staying"));
        var leaving = await StartAsync("leaving", port);
        leaving.Register<IJobs>(leavingJobs);
        await using var staying = await StartAsync("staying", port);
        staying.Register<IJobs>(stayingJobs);
        await using var caller = await StartAsync("caller", port);
        await caller.Peers.WaitForAsync("leaving").Within();
        await caller.Peers.WaitForAsync("staying").Within();
        var midLoad = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        leavingJobs.Hold = async (_, ct) =>
        {
            if (leavingJobs.Runs.Count + leavingJobs.Looks.Count >= 40)
                midLoad.TrySetResult();
            await Task.Yield();
        };
        stayingJobs.Hold = (_, ct) => Task.Delay(1, ct);
        var jobs = caller.Peers.Any<IJobs>();
        const int Workers = 8, PerWorker = 60;

        var load = FailoverLoad.RunAsync(Workers, PerWorker, job => idempotent ? jobs.LookAsync(job) : jobs.RunAsync(job));
        await midLoad.Task.Within();
        await leaving.DisposeAsync();
        var results = await load.Within();

        var (leavingCounts, stayingCounts) = idempotent ? (leavingJobs.Looks, stayingJobs.Looks) : (leavingJobs.Runs, stayingJobs.Runs);
        FailoverLoad.AssertNoneLostNoneRunTwice(results, Workers * PerWorker, "leaving", leavingCounts, stayingCounts, idempotent, Workers);
        Assert.True(stayingCounts.Count > Workers * PerWorker / 2, "the peer that stayed took over the load");
    }

    [Fact]
    public async Task An_idempotent_call_cut_off_by_shutdown_goes_to_another_peer_and_a_plain_one_does_not()
    {
        var port = TestNetwork.FreeUdpPort();
        var (leavingJobs, stayingJobs) = (new Jobs("leaving"), new Jobs("staying"));
        var leaving = await StartAsync("leaving", port, grace: TimeSpan.FromMilliseconds(200));
        leaving.Register<IJobs>(leavingJobs);
        await using var caller = await StartAsync("caller", port);
        await caller.Peers.WaitForAsync("leaving").Within();
        var held = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var heldCount = 0;
        leavingJobs.Hold = async (_, ct) =>
        {
            if (Interlocked.Increment(ref heldCount) == 2)
                held.TrySetResult();
            await Task.Delay(Timeout.Infinite, ct); // runs until shutdown cancels it
        };
        var jobs = caller.Peers.Any<IJobs>();
        var look = jobs.LookAsync(1); // only "leaving" serves: both calls go there and are held
        var run = jobs.RunAsync(2);
        await held.Task.Within();
        await using var staying = await StartAsync("staying", port);
        staying.Register<IJobs>(stayingJobs);
        await caller.Peers.WaitForAsync("staying").Within();

        await leaving.DisposeAsync(); // the held calls are cancelled there after the grace period

        Assert.Equal("staying", await look.Within());
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run.Within());
        Assert.Equal(1, leavingJobs.Looks[1]);
        Assert.Equal(1, stayingJobs.Looks[1]);
        Assert.Equal(1, leavingJobs.Runs[2]);
        Assert.False(stayingJobs.Runs.ContainsKey(2));
    }
}
