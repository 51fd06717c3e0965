using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;

namespace P2PLocal.Rpc.Reliability.Tests;

/// <summary>B1 and B2: frames that lie about their length, and callers that trickle bytes or go quiet.</summary>
public class BadFrameTests(ITestOutputHelper output)
{
    private static NodeOptions VictimOptions(int port, int? maxIncoming = null, TimeSpan? handshakeTimeout = null) =>
        Net.Options("victim", port, maxFrameSize: 64 * 1024, handshakeTimeout: handshakeTimeout ?? TimeSpan.FromSeconds(1),
            idleTimeout: TimeSpan.FromSeconds(2), maxIncoming: maxIncoming);

    public static TheoryData<string> LengthLies => ["negative", "zero", "huge", "shorter", "longer", "longer-before-hello"];

    [Theory]
    [MemberData(nameof(LengthLies))]
    public async Task B1_frame_length_lie_closes_that_connection_and_the_node_keeps_serving(string lie)
    {
        var (victim, caller) = await Net.VictimAndCallerAsync(VictimOptions(Net.FreeUdpPort()));
        await using var _ = victim;
        await using var __ = caller;

        using var raw = lie == "longer-before-hello"
            ? await RawPeer.ConnectAsync(victim.ServiceEndPoint)
            : await RawPeer.ConnectWithHelloAsync(victim.ServiceEndPoint);
        var request = RawPeer.Request(1, "echo", Net.Pack(b => b.Map(1).Str("value").Str("x")));
        byte[] bytes = lie switch
        {
            "negative" => [0xFF, 0xFF, 0xFF, 0xF0, .. request],
            "zero" => [0, 0, 0, 0, .. request],
            "huge" => [0x7F, 0xFF, 0xFF, 0xFF, .. request],
            "shorter" => [.. Prefix(request.Length - 3), .. request],
            "longer" or "longer-before-hello" => [.. Prefix(request.Length + 100), .. request],
            _ => throw new ArgumentOutOfRangeException(nameof(lie)),
        };

        var clock = Stopwatch.StartNew();
        await raw.SendAsync(bytes);
        // While the liar's connection is open or closing, an honest caller is served.
        await Net.AssertServesAsync(caller, victim.Name);
        await raw.WaitClosedAsync();
        var closedAfter = clock.ElapsedMilliseconds;
        await Net.AssertServesAsync(caller, victim.Name);

        output.WriteLine($"B1 {lie}: node closed the lying connection after {closedAfter} ms (idle timeout {victim.Options.IdleConnectionTimeout.TotalMilliseconds} ms, handshake timeout {victim.Options.HandshakeTimeout.TotalMilliseconds} ms); honest caller served before and after");
        // A lie the node can see is closed at once, well before the idle reaper (2 s) could close it instead; a body that
        // never comes is left to the reaper that owns that connection state, within 3x its timeout + 1 s.
        var bound = lie switch
        {
            "longer" => (3 * victim.Options.IdleConnectionTimeout) + TimeSpan.FromSeconds(1),
            "longer-before-hello" => (3 * victim.Options.HandshakeTimeout) + TimeSpan.FromSeconds(1),
            _ => victim.Options.IdleConnectionTimeout * 0.75,
        };
        Assert.InRange(closedAfter, 0, (long)bound.TotalMilliseconds);
    }

    [Fact]
    public async Task B1_frame_above_the_limit_is_refused_before_its_bytes_arrive()
    {
        var (victim, caller) = await Net.VictimAndCallerAsync(VictimOptions(Net.FreeUdpPort()));
        await using var _ = victim;
        await using var __ = caller;
        using var raw = await RawPeer.ConnectWithHelloAsync(victim.ServiceEndPoint);

        // Announce 1 MiB over the 64 KiB limit and send only the prefix: the node must not wait for (or buffer) the body.
        var clock = Stopwatch.StartNew();
        await raw.SendAsync(Prefix(1024 * 1024));
        await raw.WaitClosedAsync();
        var closedAfter = clock.ElapsedMilliseconds;
        await Net.AssertServesAsync(caller, victim.Name);
        output.WriteLine($"B1 huge prefix alone: closed {closedAfter} ms after the prefix, without waiting for the body; honest caller served");
        // Refused on the prefix: well before the 2 s idle reaper, which is what closed it when the limit check was off.
        Assert.InRange(closedAfter, 0, (long)(victim.Options.IdleConnectionTimeout * 0.75).TotalMilliseconds);
    }

    [Fact]
    public async Task B2_slowloris_connections_are_reaped_and_do_not_lock_out_callers()
    {
        const int attackers = 48;
        // The handshake timeout is long enough that the attack holds every slot while the honest caller connects.
        var options = VictimOptions(Net.FreeUdpPort(), maxIncoming: attackers, handshakeTimeout: TimeSpan.FromSeconds(4));
        var (victim, caller) = await Net.VictimAndCallerAsync(options);
        await using var _ = victim;
        await using var __ = caller;

        var hello = RawPeer.Frame(RawPeer.Hello("slow"));
        var peers = new List<RawPeer>();
        for (var i = 0; i < attackers; i++)
        {
            var peer = await RawPeer.ConnectAsync(victim.ServiceEndPoint);
            await peer.SendAsync(hello[..1]);
            peers.Add(peer);
        }

        // One byte a second on every attacking connection, until the node reaps them.
        using var pacing = new CancellationTokenSource();
        var trickle = Task.Run(async () =>
        {
            using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
            var sent = 1;
            while (sent < hello.Length && await timer.WaitForNextTickAsync(pacing.Token))
            {
                foreach (var peer in peers)
                {
                    try
                    {
                        await peer.Socket.SendAsync(hello.AsMemory(sent, 1), SocketFlags.None);
                    }
                    catch (SocketException)
                    {
                        // Reaped already.
                    }
                }

                sent++;
            }
        });

        var clock = Stopwatch.StartNew();
        Exception? lockedOut = null;
        try
        {
            await Net.AssertServesAsync(caller, victim.Name);
        }
        catch (P2PException e)
        {
            lockedOut = e;
        }

        var servedAfter = clock.ElapsedMilliseconds;
        await Task.WhenAll(peers.Select(p => p.WaitClosedAsync())).Within();
        var reapedAfter = clock.ElapsedMilliseconds;
        await pacing.CancelAsync();
        await trickle.ContinueWith(_ => { });
        await Net.AssertServesAsync(caller, victim.Name);
        peers.ForEach(p => p.Dispose());

        output.WriteLine($"B2 slowloris: {attackers} connections (= MaxIncomingConnections) trickling 1 byte/s; honest caller {(lockedOut is null ? "served" : "LOCKED OUT: " + lockedOut.Message)} after {servedAfter} ms; all attackers reaped after {reapedAfter} ms (handshake timeout {options.HandshakeTimeout.TotalMilliseconds} ms)");
        Assert.Null(lockedOut);
        Assert.InRange(reapedAfter, 0, (long)((3 * options.HandshakeTimeout) + TimeSpan.FromSeconds(1)).TotalMilliseconds);
    }

    [Fact]
    public async Task B2_idle_and_half_open_connections_are_reaped()
    {
        var (victim, caller) = await Net.VictimAndCallerAsync(VictimOptions(Net.FreeUdpPort()));
        await using var _ = victim;
        await using var __ = caller;

        var silent = await RawPeer.ConnectAsync(victim.ServiceEndPoint);                 // never says hello
        var idle = await RawPeer.ConnectWithHelloAsync(victim.ServiceEndPoint);          // hello, then nothing
        var halfClosed = await RawPeer.ConnectWithHelloAsync(victim.ServiceEndPoint);    // hello, then FIN on its send side
        var partial = await RawPeer.ConnectWithHelloAsync(victim.ServiceEndPoint);       // half a request, then nothing
        halfClosed.Socket.Shutdown(SocketShutdown.Send);
        var request = RawPeer.Frame(RawPeer.Request(1, "echo", Net.Pack(b => b.Map(0))));
        await partial.SendAsync(request[..(request.Length / 2)]);

        var clock = Stopwatch.StartNew();
        var times = new Dictionary<string, long>();
        await Task.WhenAll(
            Timed("silent", silent), Timed("idle", idle), Timed("half-closed", halfClosed), Timed("partial request", partial)).Within();
        await Net.AssertServesAsync(caller, victim.Name);
        foreach (var p in new[] { silent, idle, halfClosed, partial })
            p.Dispose();

        output.WriteLine($"B2 reaping (handshake {victim.Options.HandshakeTimeout.TotalMilliseconds} ms, idle {victim.Options.IdleConnectionTimeout.TotalMilliseconds} ms): "
            + string.Join(", ", times.OrderBy(t => t.Value).Select(t => $"{t.Key} closed after {t.Value} ms")));
        long Bound(TimeSpan timeout) => (long)((3 * timeout) + TimeSpan.FromSeconds(1)).TotalMilliseconds;
        Assert.InRange(times["half-closed"], 0, (long)(victim.Options.HandshakeTimeout * 0.75).TotalMilliseconds); // at once: nothing can follow a FIN
        Assert.InRange(times["silent"], 0, Bound(victim.Options.HandshakeTimeout));
        Assert.InRange(times["idle"], 0, Bound(victim.Options.IdleConnectionTimeout));
        Assert.InRange(times["partial request"], 0, Bound(victim.Options.IdleConnectionTimeout));

        async Task Timed(string what, RawPeer peer)
        {
            await peer.WaitClosedAsync();
            lock (times)
                times[what] = clock.ElapsedMilliseconds;
        }
    }

    [Fact]
    public async Task B2_a_caller_closes_its_idle_connection_before_a_peer_with_a_shorter_idle_timeout_reaps_it()
    {
        // The victim reaps after 3 s; the caller's own idle timeout is the default 2 min. Without the victim's timeout
        // (sent in its hello), the victim's reaper closed the connection under the caller's next request: B1 "longer"
        // failed that way about once in three full runs. 3 s rather than 1 s leaves the caller's early close a margin
        // of several hundred milliseconds, which a loaded 2-core machine needs (issue 17).
        var port = Net.FreeUdpPort();
        var logs = new CapturingLogs(Microsoft.Extensions.Logging.LogLevel.Debug);
        var options = Net.Options("victim", port, idleTimeout: TimeSpan.FromSeconds(3));
        await using var victim = await Net.StartAsync(new NodeOptions
        {
            Name = options.Name,
            DiscoveryPort = port,
            Scope = DiscoveryScope.Loopback,
            AdvertiseInterval = options.AdvertiseInterval,
            IdleConnectionTimeout = options.IdleConnectionTimeout,
            LoggerFactory = logs,
        });
        victim.Register("echo", kwargs => kwargs.GetValueOrDefault("value"));
        await using var caller = await Net.StartAsync("caller", port);
        await caller.Peers.WaitForAsync("victim").Within();

        var clock = Stopwatch.StartNew();
        await Net.AssertServesAsync(caller, "victim");
        var connection = OutgoingConnections(caller).Single();
        var reason = await connection.Closed.Within();
        var closedAfter = clock.ElapsedMilliseconds;
        output.WriteLine($"close reason: {reason}; peer idle {connection.PeerHello.IdleTimeoutMs}; logs: {string.Join(" | ", logs.Lines)}");
        await Net.AssertServesAsync(caller, "victim"); // a new connection

        Assert.DoesNotContain(logs.Lines, l => l.Contains("Idle.", StringComparison.Ordinal));
        Assert.InRange(closedAfter, 0, 3000);
        output.WriteLine($"B2 caller closed its idle connection {closedAfter} ms after its last call (victim's idle timeout 3000 ms, caller's {caller.Options.IdleConnectionTimeout.TotalSeconds} s); the victim never had to reap it");
    }

    private static List<Transport.ClientConnection> OutgoingConnections(Node node) => [.. node.Pool.Connections];

    private static byte[] Prefix(int length)
    {
        var prefix = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(prefix, length);
        return prefix;
    }
}
