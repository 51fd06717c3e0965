using P2PLocal.Rpc.Generators.Tests.Services;

namespace P2PLocal.Rpc.Generators.Tests;

/// <summary>Compile-and-run: a generated streaming dispatcher and proxy (issue 14) between two nodes on loopback.</summary>
public sealed class TypedStreamTests : IAsyncLifetime
{
    private readonly Ticker _ticker = new();
    private Node _alice = null!;
    private Node _bob = null!;

    private ITicker Proxy => _alice.Peers.Get<ITicker>("bob");

    public async Task InitializeAsync()
    {
        var port = TestNetwork.FreeUdpPort();
        _bob = await TestNetwork.StartAsync("bob", port);
        _bob.Register(_ticker);
        _alice = await TestNetwork.StartAsync("alice", port);
        await _alice.Peers.WaitForAsync("bob").Within();
    }

    public async Task DisposeAsync()
    {
        await _alice.DisposeAsync();
        await _bob.DisposeAsync();
    }

    [Fact]
    public async Task A_typed_proxy_streams_items_in_order_with_defaults_applied()
    {
        Assert.Equal(Enumerable.Range(5, 10), await Proxy.Count(5).ToListAsync().AsTask().Within());
        Assert.Equal(Enumerable.Range(0, 500), await Proxy.Count(0, 500).ToListAsync().AsTask().Within());
        var forecasts = await Proxy.Forecasts(["Oslo", "Rome"]).ToListAsync().AsTask().Within();
        Assert.Equal(["Oslo", "Rome"], forecasts.Select(f => f.City));
        Assert.Equal([4.0], forecasts[0].Temperatures);
    }

    [Fact]
    public async Task Peers_see_a_streaming_function_as_stream_of_its_item_type()
    {
        var count = Assert.Single(await _alice.GetFunctionsAsync("bob").Within(), f => f.Name == "Count");
        Assert.True(count.IsStream);
        Assert.Equal("stream<int>", count.ReturnType);
        Assert.Equal("Count(from:int,count:int=,)->stream<int>;", count.Signature);
        // The same function, called dynamically.
        var items = await _alice.RequestStreamAsync("bob", "Count", new Dictionary<string, object?> { ["from"] = 1, ["count"] = 2 }).ToListAsync().AsTask().Within();
        Assert.Equal([1L, 2L], items);
    }

    [Fact]
    public async Task Breaking_out_or_cancelling_through_either_token_stops_the_producer()
    {
        await foreach (var item in Proxy.Forever())
        {
            if (item == 3)
                break;
        }

        await _ticker.ForeverStopped.Task.Within();

        using var cts = new CancellationTokenSource();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var item in Proxy.Forever(cts.Token))
            {
                if (item == 3)
                    cts.Cancel();
            }
        }).Within();

        using var viaWith = new CancellationTokenSource();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var item in Proxy.Forever().WithCancellation(viaWith.Token))
            {
                if (item == 3)
                    viaWith.Cancel();
            }
        }).Within();
    }
}
