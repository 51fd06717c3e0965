using System.Net.Sockets;

namespace P2PLocal.Rpc.Reliability.Tests;

/// <summary>
/// MaxIncomingConnections holds: connections past the limit are refused or evicted, whatever the node's choice of
/// which one goes (issue 17: removing the limit passed every test before this one).
/// </summary>
public class ConnectionLimitTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Connections_past_MaxIncomingConnections_are_refused_or_evicted()
    {
        const int limit = 8, extra = 5;
        var port = Net.FreeUdpPort();
        await using var victim = await Net.StartAsync(Net.Options("victim", port, maxIncoming: limit));
        victim.Register("echo", kwargs => kwargs.GetValueOrDefault("value"));

        // limit + extra connections that each say hello, as honest callers would, one after another.
        var peers = new List<RawPeer>();
        var closed = new List<Task>();
        for (var i = 0; i < limit + extra; i++)
        {
            var peer = await RawPeer.ConnectAsync(victim.ServiceEndPoint);
            try
            {
                await peer.SendFrameAsync(RawPeer.Hello($"p{i}"));
            }
            catch (SocketException)
            {
                // Refused before the hello could be sent: counted below as closed.
            }

            peers.Add(peer);
            closed.Add(peer.WaitClosedAsync());
        }

        try
        {
            // At least `extra` of them are closed by the node; the rest stay open (the idle timeout is 2 minutes).
            await WhenAtLeastAsync(closed, extra).Within();
            var closedCount = closed.Count(t => t.IsCompletedSuccessfully);
            output.WriteLine($"{limit + extra} connections with hello against MaxIncomingConnections {limit}: {closedCount} closed by the node");
            Assert.InRange(closedCount, extra, limit + extra);
        }
        finally
        {
            peers.ForEach(p => p.Dispose());
        }
    }

    /// <summary>Completes once <paramref name="count"/> of the tasks succeeded (a raw peer's read that timed out is not a close).</summary>
    private static async Task WhenAtLeastAsync(List<Task> tasks, int count)
    {
        var pending = new List<Task>(tasks);
        var succeeded = 0;
        while (succeeded < count)
        {
            Assert.True(pending.Count > 0, $"only {succeeded} of the connections were closed by the node; expected {count}");
            var finished = await Task.WhenAny(pending);
            pending.Remove(finished);
            if (finished.IsCompletedSuccessfully)
                succeeded++;
        }
    }
}
