using P2PLocal.Rpc.Generators.Tests.Services;

namespace P2PLocal.Rpc.Generators.Tests;

public sealed class ContractTests
{
    private static async Task<(Node Alice, Node Bob)> StartPairAsync()
    {
        var port = TestNetwork.FreeUdpPort();
        var bob = await TestNetwork.StartAsync("bob", port);
        var alice = await TestNetwork.StartAsync("alice", port);
        await alice.Peers.WaitForAsync("bob").Within();
        return (alice, bob);
    }

    [Fact]
    public async Task A_proxy_refuses_a_peer_that_serves_another_version_of_its_contract()
    {
        var (alice, bob) = await StartPairAsync();
        await using var _ = alice;
        await using var __ = bob;
        bob.Register(new ShopV2());

        var shop = alice.Peers.Get<IShopV1>("bob");
        var error = await Assert.ThrowsAsync<ContractMismatchException>(() => Task.Run(() => shop.Price("tea")).Within());

        Assert.Equal("bob", error.PeerName);
        Assert.Equal("P2PLocal.Rpc.Generators.Tests.Services.IShopV1", error.Contract);
        Assert.Contains("'Price' is (item: string) -> int here but (item: int) -> int there", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_proxy_refuses_a_peer_that_lacks_a_function_of_its_contract()
    {
        var (alice, bob) = await StartPairAsync();
        await using var _ = alice;
        await using var __ = bob;
        bob.Register("Price", kwargs => 1);
        bob.Register(new Calculator());

        var error = await Assert.ThrowsAsync<ContractMismatchException>(() => alice.Peers.Get<IWeather>("bob").ForecastAsync("x").Within());
        Assert.Contains("it has no function 'ForecastAsync'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_proxy_checks_a_peer_once_and_then_calls_it()
    {
        var (alice, bob) = await StartPairAsync();
        await using var _ = alice;
        await using var __ = bob;
        bob.Register(new ShopV1());
        var shop = alice.Peers.Get<IShopV1>("bob");
        Assert.Equal(3, await Task.Run(() => shop.Price("tea")).Within());
        Assert.Equal(4, await Task.Run(() => alice.Peers.Get<IShopV1>("bob").Price("milk")).Within());
    }

    [Fact]
    public async Task A_proxy_checks_a_restarted_peer_again()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var alice = await TestNetwork.StartAsync("alice", port);
        var first = await TestNetwork.StartAsync("bob", port);
        first.Register(new ShopV1());
        await alice.Peers.WaitForAsync("bob").Within();
        var shop = alice.Peers.Get<IShopV1>("bob");
        Assert.Equal(3, await Task.Run(() => shop.Price("tea")).Within());

        // The restart is seen through the new instance's beacons, whatever became of the goodbye: wait for alice to list
        // the new instance itself, not for bob to leave (issue 17: waiting for Left passed with the goodbye removed).
        var firstInstance = first.InstanceId;
        await first.DisposeAsync();
        await using var second = await TestNetwork.StartAsync("bob", port);
        second.Register(new ShopV2());
        await WaitForInstanceAsync(alice, "bob", second.InstanceId);
        Assert.NotEqual(firstInstance, second.InstanceId);

        await Assert.ThrowsAsync<ContractMismatchException>(() => Task.Run(() => shop.Price("tea")).Within());
    }

    [Fact]
    public async Task A_proxy_trusts_a_dynamic_function_of_the_same_name_because_it_claims_no_contract()
    {
        var (alice, bob) = await StartPairAsync();
        await using var _ = alice;
        await using var __ = bob;
        bob.Register("Price", kwargs => ((string)kwargs["item"]!).Length * 10);
        Assert.Equal(30, await Task.Run(() => alice.Peers.Get<IShopV1>("bob").Price("tea")).Within());
    }

    [Fact]
    public async Task A_service_class_that_implements_a_contract_interface_serves_that_interface()
    {
        var (alice, bob) = await StartPairAsync();
        await using var _ = alice;
        await using var __ = bob;
        bob.Register(new WeatherStation());

        var weather = alice.Peers.Get<IWeather>("bob");
        Assert.Equal("station", await Task.Run(weather.Station).Within());
        Assert.Equal("OSLO", (await weather.ForecastAsync("Oslo").Within()).City);
    }

    [Fact]
    public async Task Get_fails_clearly_for_an_interface_without_a_generated_proxy()
    {
        var (alice, bob) = await StartPairAsync();
        await using var _ = alice;
        await using var __ = bob;
        var error = Assert.Throws<InvalidOperationException>(() => alice.Peers.Get<IDisposable>("bob"));
        Assert.Contains("No generated proxy for 'System.IDisposable'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Register_fails_clearly_for_a_type_without_a_generated_dispatcher()
    {
        var (alice, bob) = await StartPairAsync();
        await using var _ = alice;
        await using var __ = bob;
        var error = Assert.Throws<InvalidOperationException>(() => bob.Register(new object()));
        Assert.Contains("No generated dispatcher", error.Message, StringComparison.Ordinal);
        Assert.Empty(bob.Functions);
    }

    [Fact]
    public async Task Register_of_a_hand_written_dispatcher_class_registers_it_as_a_dispatcher()
    {
        var (alice, bob) = await StartPairAsync();
        await using var _ = alice;
        await using var __ = bob;
        bob.Register(new HandWritten());
        Assert.Equal("by hand", await alice.RequestAsync("bob", "manual").Within());
    }

    private sealed class HandWritten : Dispatch.IServiceDispatcher
    {
        public IReadOnlyList<Dispatch.FunctionDescriptor> Functions { get; } = [Dispatch.FunctionDescriptor.Dynamic("manual")];

        public ValueTask InvokeAsync(Dispatch.FunctionCall request) => Dispatch.GeneratedResults.Write(request, "by hand");
    }

    private static async Task WaitForInstanceAsync(Node node, string name, string instanceId)
    {
        var seen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        node.Peers.Joined += (_, peer) =>
        {
            if (peer.Name == name && peer.InstanceId == instanceId)
                seen.TrySetResult();
        };
        if (node.Peers.TryGet(name, out var current) && current.InstanceId == instanceId)
            return;
        await seen.Task.Within();
    }
}
