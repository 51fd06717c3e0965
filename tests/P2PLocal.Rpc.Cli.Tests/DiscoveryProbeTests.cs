namespace P2PLocal.Rpc.Cli.Tests;

public class DiscoveryProbeTests
{
    [Fact]
    public async Task A_flood_is_heard_but_only_up_to_the_limit_is_kept()
    {
        var port = TestNetwork.FreeUdpPort();
        const int limit = 5;
        const int sent = 40;
        await using var probe = DiscoveryProbe.Open(port, DiscoveryScope.Loopback, maxKept: limit);
        var received = 0;
        var all = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        probe.Received += _ =>
        {
            if (Interlocked.Increment(ref received) == sent)
                all.TrySetResult();
        };

        using (var sender = new BeaconSender(port))
        {
            for (var i = 0; i < sent; i++)
                sender.Send($"junk {i}");
        }

        await all.Task.Within();
        Assert.Equal(limit, probe.Heard.Count);
        Assert.Equal(sent - limit, probe.NotKept);
        Assert.Equal("junk 0"u8.ToArray(), probe.Heard[0].Bytes);
    }

    [Fact]
    public async Task WaitFor_returns_a_datagram_already_heard_or_null_when_the_wait_ends()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var probe = DiscoveryProbe.Open(port, DiscoveryScope.Loopback);
        using var sender = new BeaconSender(port);

        var pending = probe.WaitForAsync(d => d.Beacon?.Name == "bob", TestNetwork.Patience, CancellationToken.None);
        sender.SendBeacon("bob", 1234, "b1");
        var heard = await pending;
        var again = await probe.WaitForAsync(d => d.Beacon?.Name == "bob", TimeSpan.Zero, CancellationToken.None);
        var none = await probe.WaitForAsync(d => d.Beacon?.Name == "nobody", TimeSpan.FromMilliseconds(50), CancellationToken.None);

        Assert.Equal("b1", heard!.Beacon!.InstanceId);
        Assert.Same(heard, again);
        Assert.Null(none);
    }
}
