using P2PLocal.Rpc.Protocol;
using P2PLocal.Rpc.Testing;
using P2PLocal.Rpc.Transport;

namespace P2PLocal.Rpc.UnitTests.Transport;

/// <summary>
/// The pool of calls of a client connection (<c>ClientConnection.Register</c> and <c>Return</c>): a call goes back to
/// the pool when it ends, on every path; the caller's token of one call never reaches the next user of it; the pool
/// is bounded; a closed connection keeps none; a call refused by a closing connection is not left registered.
/// </summary>
public class ClientConnectionCallPoolTests
{
    private static ValueTask<int> Call(ClientConnection connection, string function, int x, CancellationToken cancellationToken = default) =>
        connection.InvokeAsync(function, x, ScriptedPeer.WriteX, ScriptedPeer.ReadInt, ScriptedPeer.Forever, cancellationToken);

    [Fact]
    public async Task A_call_that_ends_goes_back_to_the_pool_and_the_next_call_takes_it()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        Assert.Equal(0, connection.PooledCalls);
        var first = Call(connection, "f", 1).AsTask();
        await peer.ReplyAsync((await peer.ReadAsync(MessageKind.Request)).Id, 10);
        Assert.Equal(10, await first.Within());
        Assert.Equal(1, connection.PooledCalls);

        var second = Call(connection, "f", 2).AsTask();
        var request = await peer.ReadAsync(MessageKind.Request);
        Assert.Equal(0, connection.PooledCalls); // taken by the call in flight
        await peer.ReplyAsync(request.Id, 20);
        Assert.Equal(20, await second.Within());
        Assert.Equal(1, connection.PooledCalls);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task The_token_of_a_finished_call_does_not_cancel_the_next_call_that_reuses_it()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        using var cts = new CancellationTokenSource();
        var first = Call(connection, "f", 1, cts.Token).AsTask();
        await peer.ReplyAsync((await peer.ReadAsync(MessageKind.Request)).Id, 10);
        Assert.Equal(10, await first.Within());

        var second = Call(connection, "g", 2).AsTask(); // the pooled call of the first, with no token of its own
        var request = await peer.ReadAsync(MessageKind.Request);
        await cts.CancelAsync();
        await peer.ReplyAsync(request.Id, 20);
        Assert.Equal(20, await second.Within());
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task The_pool_keeps_at_most_1024_calls()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        const int Calls = 1025;
        var calls = Enumerable.Range(0, Calls).Select(i => Call(connection, "f", i).AsTask()).ToArray();
        var ids = new List<uint>();
        for (var i = 0; i < Calls; i++)
            ids.Add((await peer.ReadAsync(MessageKind.Request)).Id);
        Assert.Equal(0, connection.PooledCalls);
        foreach (var id in ids)
            await peer.ReplyAsync(id, 1);

        await Task.WhenAll(calls).Within();
        Assert.Equal(1024, connection.PooledCalls);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_closed_connection_drops_its_pooled_calls_and_takes_none_back()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        var done = new[] { Call(connection, "f", 1).AsTask(), Call(connection, "f", 2).AsTask() };
        foreach (var id in new[] { (await peer.ReadAsync(MessageKind.Request)).Id, (await peer.ReadAsync(MessageKind.Request)).Id })
            await peer.ReplyAsync(id, 1);
        await Task.WhenAll(done).Within();
        var waiting = Call(connection, "f", 3).AsTask();
        await peer.ReadAsync(MessageKind.Request);
        Assert.Equal(1, connection.PooledCalls);

        connection.Close();
        await Assert.ThrowsAsync<PeerConnectionException>(() => waiting.Within());
        Assert.Equal(0, connection.PooledCalls); // the close dropped the pooled call, and the failed call did not come back
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_call_refused_while_the_connection_closes_after_its_flush_is_not_left_registered()
    {
        var (connection, peer) = await ScriptedPeer.ConnectAsync(toPeer: ScriptedPeer.NotReading);
        var first = connection.InvokeAsync("f", 2000, ScriptedPeer.WritePadding, ScriptedPeer.ReadInt, ScriptedPeer.Forever, CancellationToken.None).AsTask();
        // Above the pipe's 1 KiB: its write waits until the test's end reads, so the close waits to flush it.
        Assert.Equal(1, connection.PendingCount);
        var closing = connection.CloseAfterFlushAsync(Patience.Limit);
        Assert.False(connection.IsClosed); // still writing the first call

        var refused = await Assert.ThrowsAsync<PeerConnectionException>(() => Call(connection, "late", 2).AsTask().Within());
        Assert.Equal("The connection to peer 'bob' at ? was lost before the reply came.", refused.Message);
        Assert.Equal(1, connection.PendingCount);
        Assert.Equal(1, connection.PooledCalls); // the refused call went back (the connection is not closed yet)

        Assert.Equal("f", (await peer.ReadAsync(MessageKind.Request)).Function);
        await closing.Within();
        await Assert.ThrowsAsync<PeerConnectionException>(() => first.Within());
        Assert.Equal(0, connection.PendingCount);
        Assert.Equal(0, connection.PooledCalls);
        await connection.DisposeAsync();
    }
}
