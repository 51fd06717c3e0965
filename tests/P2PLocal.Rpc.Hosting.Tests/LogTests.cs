using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using P2PLocal.Rpc;

namespace P2PLocal.Rpc.Hosting.Tests;

public class LogTests
{
    [Fact]
    public async Task A_flood_of_bad_connections_logs_at_most_ten_warnings_a_minute()
    {
        var logs = new CapturingLoggerProvider();
        using var factory = LoggerFactory.Create(b => b.AddProvider(logs).SetMinimumLevel(LogLevel.Debug));
        await using var bob = await Node.StartAsync(new NodeOptions
        {
            Name = "bob",
            Scope = DiscoveryScope.Loopback,
            DiscoveryPort = LoopbackPorts.FreeUdpPort(),
            LoggerFactory = factory,
        });

        // One connection after another, each closed by the node before the next opens.
        const int flood = 30;
        for (var i = 0; i < flood; i++)
        {
            using var client = new TcpClient();
            await client.ConnectAsync(bob.ServiceEndPoint).Within();
            var stream = client.GetStream();
            await stream.WriteAsync(new byte[4]).AsTask().Within();   // a frame of length 0 breaks the protocol
            Assert.Equal(0, await stream.ReadAtLeastAsync(new byte[1], 1, throwOnEndOfStream: false).AsTask().Within());
        }

        // The node logs right after it closes; wait for the tenth line, then count: without the limit there are ~30 by now.
        using var patience = new CancellationTokenSource(Patience.Limit);
        while (Rejections(logs).Count < 10)
            await Task.Delay(5, patience.Token);
        var rejections = Rejections(logs);
        Assert.Equal(10, rejections.Count);
        Assert.All(rejections, e => Assert.Equal(LogLevel.Warning, e.Level));
        Assert.Contains("Frame length 0 is not positive", rejections[0].Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Peer_joins_and_leaves_are_logged_with_their_event_ids()
    {
        var logs = new CapturingLoggerProvider();
        using var factory = LoggerFactory.Create(b => b.AddProvider(logs).SetMinimumLevel(LogLevel.Debug));
        var port = LoopbackPorts.FreeUdpPort();
        await using var bob = await Node.StartAsync(new NodeOptions { Name = "bob", Scope = DiscoveryScope.Loopback, DiscoveryPort = port, LoggerFactory = factory });
        var left = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        bob.Peers.Left += (_, p) => left.TrySetResult();
        var alice = await TestNetwork.StartNodeAsync("alice", port);
        await bob.Peers.WaitForAsync("alice").Within();
        await alice.DisposeAsync();
        await left.Task.Within();

        Assert.Contains(logs.Entries, e => e.EventId == new EventId(10, "PeerJoined") && e.Message.Contains("alice", StringComparison.Ordinal));
        Assert.Contains(logs.Entries, e => e.EventId == new EventId(11, "PeerLeft") && e.Message.Contains("alice", StringComparison.Ordinal));
    }

    private static List<LogEntry> Rejections(CapturingLoggerProvider logs) =>
        [.. logs.Entries.Where(e => e.EventId.Id == 40)];
}
