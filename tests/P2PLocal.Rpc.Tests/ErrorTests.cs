namespace P2PLocal.Rpc.Tests;

public class ErrorTests
{
    [Fact]
    public async Task Unknown_peer_and_unknown_function_fail_with_their_own_exceptions()
    {
        await using var pair = await NodePair.StartAsync();

        var noPeer = await Assert.ThrowsAsync<PeerNotFoundException>(() => pair.Alice.RequestAsync("nobody", "f"));
        Assert.Equal("nobody", noPeer.PeerName);
        var noFunction = await Assert.ThrowsAsync<MethodNotFoundException>(() => pair.Alice.RequestAsync("bob", "nope"));
        Assert.Equal("nope", noFunction.Function);
        Assert.Contains("nope", noFunction.Message);
    }

    [Fact]
    public async Task Handler_exception_reaches_the_caller_as_RemoteException_and_the_node_keeps_serving()
    {
        await using var pair = await NodePair.StartAsync();
        pair.Bob.Register("fail", _ => throw new InvalidOperationException("the disk is on fire"));
        pair.Bob.Register("ok", _ => "fine");

        var error = await Assert.ThrowsAsync<RemoteException>(() => pair.Alice.RequestAsync("bob", "fail"));

        Assert.Equal("System.InvalidOperationException", error.RemoteType);
        Assert.Equal("the disk is on fire", error.RemoteMessage);
        Assert.Equal("fine", await pair.Alice.RequestAsync("bob", "ok"));
    }

    [Fact]
    public async Task InvalidKwargsException_thrown_by_a_handler_reaches_the_caller_as_InvalidKwargsException()
    {
        await using var pair = await NodePair.StartAsync();
        pair.Bob.Register("needs-a", kwargs => kwargs.TryGetValue("a", out var a) ? a : throw new InvalidKwargsException("Missing required kwarg 'a'."));

        var error = await Assert.ThrowsAsync<InvalidKwargsException>(() => pair.Alice.RequestAsync("bob", "needs-a"));
        Assert.Contains("'a'", error.Message);
    }

    [Fact]
    public async Task Timeout_fails_the_call_and_cancels_the_remote_handler()
    {
        await using var pair = await NodePair.StartAsync(aliceOptions: o => o.With(requestTimeout: TimeSpan.FromMilliseconds(200)));
        var handlerCancelled = new TaskCompletionSource();
        pair.Bob.Register("hang", async (_, ct) =>
        {
            using var registration = ct.Register(() => handlerCancelled.TrySetResult());
            await Task.Delay(Timeout.Infinite, ct);
            return null;
        });

        await Patience.AssertRequestTimeoutAsync(pair.Alice.RequestAsync("bob", "hang"), "hang", TimeSpan.FromMilliseconds(200));
        await handlerCancelled.Task.Within();
    }

    [Fact]
    public async Task Caller_cancellation_reaches_the_remote_handler()
    {
        await using var pair = await NodePair.StartAsync();
        var handlerStarted = new TaskCompletionSource();
        var handlerCancelled = new TaskCompletionSource();
        pair.Bob.Register("hang", async (_, ct) =>
        {
            using var registration = ct.Register(() => handlerCancelled.TrySetResult());
            handlerStarted.TrySetResult();
            await Task.Delay(Timeout.Infinite, ct);
            return null;
        });
        using var cancel = new CancellationTokenSource();

        var call = pair.Alice.RequestAsync("bob", "hang", cancellationToken: cancel.Token);
        await handlerStarted.Task.Within();
        cancel.Cancel();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
        await handlerCancelled.Task.Within();
    }

    [Fact]
    public async Task Requests_above_the_concurrency_limit_are_rejected_as_busy()
    {
        await using var pair = await NodePair.StartAsync(bobOptions: o => o.With(maxConcurrent: 2));
        var release = new TaskCompletionSource<object?>(TaskCreationOptions.RunContinuationsAsynchronously);
        var running = new CountdownEvent(2);
        pair.Bob.Register("hold", async (_, ct) => { running.Signal(); return await release.Task.WaitAsync(ct); });

        var held = new[] { pair.Alice.RequestAsync("bob", "hold"), pair.Alice.RequestAsync("bob", "hold") };
        Assert.True(running.Wait(TestNetwork.Patience));
        await Assert.ThrowsAsync<PeerBusyException>(() => pair.Alice.RequestAsync("bob", "hold"));

        release.SetResult("done");
        Assert.Equal(["done", "done"], await Task.WhenAll(held).Within());
        // Capacity is back once they finished.
        pair.Bob.Register("quick", _ => 1);
        Assert.Equal(1L, await pair.Alice.RequestAsync("bob", "quick"));
    }

    [Fact]
    public async Task Options_are_validated_with_clear_errors()
    {
        await Assert.ThrowsAsync<ArgumentException>(() => Node.StartAsync(new NodeOptions { Name = "a|b", Scope = DiscoveryScope.Loopback }));
        await Assert.ThrowsAsync<ArgumentException>(() => Node.StartAsync(new NodeOptions { Name = "", Scope = DiscoveryScope.Loopback }));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Node.StartAsync(new NodeOptions { Name = "a", DiscoveryPort = 0, Scope = DiscoveryScope.Loopback }));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Node.StartAsync(new NodeOptions { Name = "a", MaxFrameSize = 10, Scope = DiscoveryScope.Loopback }));
    }
}
