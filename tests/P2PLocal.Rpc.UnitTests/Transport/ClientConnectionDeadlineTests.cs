using Microsoft.Extensions.Time.Testing;
using P2PLocal.Rpc.Protocol;
using P2PLocal.Rpc.Testing;
using P2PLocal.Rpc.Transport;

namespace P2PLocal.Rpc.UnitTests.Transport;

/// <summary>
/// Request timeouts on one timer per connection (ClientConnection.Deadlines.cs), on a fake clock: every call times out
/// at its own deadline, not earlier because the timer was set for a call that already ended, not later because a later
/// call moved it; calls due together all time out; a call is due at exactly its deadline. Whether a call timed out is
/// seen from its outcome, never from timing. (tests/P2PLocal.Rpc.Tests/DeadlineTests checks the same through two nodes.)
/// </summary>
public class ClientConnectionDeadlineTests
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromMinutes(10);

    private static Task<int> Call(ClientConnection connection, string function, TimeSpan? timeout = null) =>
        connection.InvokeAsync(function, 1, ScriptedPeer.WriteX, ScriptedPeer.ReadInt, timeout ?? s_timeout, CancellationToken.None).AsTask();

    private static async Task TimesOutAsync(Task<int> call, string function)
    {
        var error = await Assert.ThrowsAsync<TimeoutException>(() => call.Within());
        Assert.Equal($"Peer 'bob' did not answer '{function}' within 600000 ms; the request was cancelled there.", error.Message);
    }

    [Fact]
    public async Task A_timer_set_for_a_finished_call_neither_times_out_a_later_call_early_nor_forgets_it()
    {
        var clock = new FakeTimeProvider();
        var (connection, peer) = await ScriptedPeer.ConnectAsync(clock);
        var ping = Call(connection, "ping"); // the timer is set for its deadline, t+10
        await peer.ReplyAsync((await peer.ReadAsync(MessageKind.Request)).Id, 1);
        Assert.Equal(1, await ping.Within());

        clock.Advance(TimeSpan.FromMinutes(5));
        var gated = Call(connection, "gate"); // due at t+15
        var gate = await peer.ReadAsync(MessageKind.Request);
        clock.Advance(TimeSpan.FromMinutes(5)); // t+10: the timer fires for the finished ping and finds the gated call not due
        await peer.ReplyAsync(gate.Id, 2);
        Assert.Equal(2, await gated.Within());

        var hung = Call(connection, "hang"); // due at t+20
        await peer.ReadAsync(MessageKind.Request);
        clock.Advance(TimeSpan.FromMinutes(9));
        Assert.False(hung.IsCompleted, "The call timed out before its own deadline.");
        clock.Advance(TimeSpan.FromMinutes(1));
        await TimesOutAsync(hung, "hang");
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task Calls_made_at_different_times_each_time_out_at_their_own_deadline()
    {
        var clock = new FakeTimeProvider();
        var (connection, peer) = await ScriptedPeer.ConnectAsync(clock);
        var first = Call(connection, "hang"); // due at t+10
        await peer.ReadAsync(MessageKind.Request);
        clock.Advance(TimeSpan.FromMinutes(5));
        var second = Call(connection, "gate"); // due at t+15
        var third = Call(connection, "hang"); // due at t+15
        var gate = await peer.ReadAsync(MessageKind.Request);
        await peer.ReadAsync(MessageKind.Request);

        clock.Advance(TimeSpan.FromMinutes(5)); // t+10: only the first is due
        await TimesOutAsync(first, "hang");
        await peer.ReplyAsync(gate.Id, 2);
        Assert.Equal(2, await second.Within());
        Assert.False(third.IsCompleted, "The third call timed out with the first.");

        clock.Advance(TimeSpan.FromMinutes(5)); // t+15: the timer was set again, for the third
        await TimesOutAsync(third, "hang");
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_call_made_after_a_shorter_one_does_not_put_off_the_shorter_ones_deadline()
    {
        var clock = new FakeTimeProvider();
        var (connection, peer) = await ScriptedPeer.ConnectAsync(clock);
        var shorter = Call(connection, "hang"); // due at t+10
        var longer = Call(connection, "hang", TimeSpan.FromMinutes(30)); // due at t+30: the timer stays at t+10
        await peer.ReadAsync(MessageKind.Request);
        await peer.ReadAsync(MessageKind.Request);

        clock.Advance(s_timeout);
        await TimesOutAsync(shorter, "hang");
        Assert.False(longer.IsCompleted);
        connection.Close();
        await Assert.ThrowsAsync<PeerConnectionException>(() => longer.Within());
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task Calls_due_together_all_time_out_and_a_call_is_due_at_exactly_its_deadline()
    {
        var clock = new FakeTimeProvider();
        var (connection, peer) = await ScriptedPeer.ConnectAsync(clock);
        var calls = Enumerable.Range(0, 3).Select(_ => Call(connection, "hang")).ToArray();
        for (var i = 0; i < calls.Length; i++)
            await peer.ReadAsync(MessageKind.Request);

        clock.Advance(s_timeout); // exactly the deadline, not a tick past it
        foreach (var call in calls)
            await TimesOutAsync(call, "hang");
        Assert.Equal(0, connection.PendingCount);
        await connection.DisposeAsync();
    }
}
