using System.Net;

namespace P2PLocal.Rpc.Tests;

/// <summary>The name index of the peer table (issue 9): what a call resolves through, without the discovery lock.</summary>
public sealed class PeerTableTests
{
    private static PeerInfo Peer(string name, string instance, int port = 1000) =>
        new(name, "itecnet", new IPEndPoint(IPAddress.Loopback, port), instance);

    [Fact]
    public void NamedFollowsAddsReplacementsRenamesAndRemovals()
    {
        var table = new PeerTable();
        Assert.Empty(table.Named("bob"));

        table["i1"] = Peer("bob", "i1");
        Assert.Equal("i1", Assert.Single(table.Named("bob")).InstanceId);

        table["i1"] = Peer("bob", "i1", port: 2000); // a newer beacon of the same instance replaces, not adds
        Assert.Equal(2000, Assert.Single(table.Named("bob")).EndPoint.Port);

        table["i2"] = Peer("bob", "i2"); // a second live claimant: a conflict shows as two
        Assert.Equal(2, table.Named("bob").Length);

        table["i2"] = Peer("carol", "i2"); // the same key under another name moves between names
        Assert.Single(table.Named("bob"));
        Assert.Single(table.Named("carol"));

        Assert.True(table.Remove("i1", out var removed));
        Assert.Equal("bob", removed.Name);
        Assert.Empty(table.Named("bob"));
        Assert.False(table.Remove("i1"));

        table.Clear();
        Assert.Empty(table.Named("carol"));
        Assert.Equal(0, table.Count);
    }

    [Fact]
    public void AReadNeverSeesAPublishedArrayChange()
    {
        var table = new PeerTable();
        table["i1"] = Peer("bob", "i1");
        var before = table.Named("bob");
        table["i2"] = Peer("bob", "i2");
        Assert.Single(before); // lock-free readers keep a consistent snapshot
        Assert.Equal(2, table.Named("bob").Length);
    }
}
