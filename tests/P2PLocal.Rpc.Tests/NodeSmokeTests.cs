namespace P2PLocal.Rpc.Tests;

public class NodeSmokeTests
{
    [Fact]
    public async Task Two_nodes_find_each_other_and_call_a_function()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var bob = await TestNetwork.StartAsync("bob", port);
        bob.Register("greet", kwargs => $"Hello, {kwargs["name"]}");
        await using var alice = await TestNetwork.StartAsync("alice", port);

        await alice.Peers.WaitForAsync("bob").Within();
        var result = await alice.RequestAsync("bob", "greet", new Dictionary<string, object?> { ["name"] = "Ann" }).Within();

        Assert.Equal("Hello, Ann", result);
        Assert.Equal(["greet"], await alice.GetMethodsAsync("bob").Within());
    }
}
