using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using P2PLocal.Rpc.Security;

namespace P2PLocal.Rpc.Reliability.Tests;

/// <summary>
/// Hostile input on the secure path (issue 10), rows S1-S6 of docs/reliability.md. Each test prints its figure.
/// S4 (a certificate with an unknown key) and S5 (a replayed beacon) are in <see cref="SecureModeTests"/>.
/// </summary>
public class HostileSecureTests(ITestOutputHelper output)
{
    private static readonly NodeSecurity s_security = NodeSecurity.SharedKey(NodeSecurity.CreateNetworkKey());

    private static NodeOptions Secure(string name, int port, TimeSpan? handshakeTimeout = null, int? maxIncoming = null) =>
        SecureModeTests.WithSecurity(Net.Options(name, port, handshakeTimeout: handshakeTimeout, maxIncoming: maxIncoming), s_security);

    private static async Task<(Node Victim, Node Caller)> PairAsync(TimeSpan? handshakeTimeout = null, int? maxIncoming = null)
    {
        var port = Net.FreeUdpPort();
        var victim = await Node.StartAsync(Secure("victim", port, handshakeTimeout, maxIncoming));
        victim.Register("echo", kwargs => kwargs.GetValueOrDefault("value"));
        var caller = await Node.StartAsync(Secure("caller", port));
        await caller.Peers.WaitForAsync("victim").Within();
        return (victim, caller);
    }

    [Fact]
    public async Task S1_a_plaintext_hello_to_a_secure_node_is_refused_in_plaintext_and_closed()
    {
        var (victim, caller) = await PairAsync();
        await using var _ = victim;
        await using var __ = caller;
        using var raw = await RawPeer.ConnectAsync(victim.ServiceEndPoint);
        var clock = Stopwatch.StartNew();
        await raw.SendFrameAsync(RawPeer.Hello("plain"));
        var refusal = await raw.ReadFrameAsync();
        Assert.NotNull(refusal);
        Assert.Contains("AuthenticationRequired", Encoding.UTF8.GetString(refusal));
        await raw.WaitClosedAsync();
        output.WriteLine($"S1: refused and closed in {clock.ElapsedMilliseconds} ms");
        await Net.AssertServesAsync(caller, "victim");
    }

    [Fact]
    public async Task S2_garbage_tls_records_close_the_connection_and_nothing_else()
    {
        var (victim, caller) = await PairAsync();
        await using var _ = victim;
        await using var __ = caller;
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < 20; i++)
        {
            using var raw = await RawPeer.ConnectAsync(victim.ServiceEndPoint);
            await raw.SendAsync([TlsChannel.HandshakeRecord, 0x03, 0x03, 0x01, 0x00, .. RandomNumberGenerator.GetBytes(256 + i * 100)]);
            await raw.WaitClosedAsync();
        }

        output.WriteLine($"S2: 20 connections of garbage TLS records, each closed; {clock.ElapsedMilliseconds / 20.0:0.0} ms per connection");
        await Net.AssertServesAsync(caller, "victim");
    }

    [Fact]
    public async Task S3_handshake_slowloris_is_closed_after_HandshakeTimeout_and_a_ClientHello_flood_cannot_lock_callers_out()
    {
        var handshakeTimeout = TimeSpan.FromMilliseconds(500);
        var (victim, caller) = await PairAsync(handshakeTimeout, maxIncoming: 16);
        await using var _ = victim;
        await using var __ = caller;

        // Slowloris: one byte of a TLS record, then nothing.
        using (var slow = await RawPeer.ConnectAsync(victim.ServiceEndPoint))
        {
            var clock = Stopwatch.StartNew();
            await slow.SendAsync([TlsChannel.HandshakeRecord]);
            await slow.WaitClosedAsync();
            output.WriteLine($"S3: a stalled TLS handshake was closed after {clock.ElapsedMilliseconds} ms (HandshakeTimeout {handshakeTimeout.TotalMilliseconds} ms)");
            Assert.True(clock.Elapsed <= handshakeTimeout * 3 + TimeSpan.FromSeconds(1), $"closed after {clock.Elapsed}");
        }

        // Flood: four times the connection limit in half-sent ClientHellos; the node stays reachable.
        var flood = new List<RawPeer>();
        try
        {
            for (var i = 0; i < 64; i++)
            {
                var raw = await RawPeer.ConnectAsync(victim.ServiceEndPoint);
                flood.Add(raw);
                await raw.SendAsync([TlsChannel.HandshakeRecord, 0x03, 0x01, 0x02, 0x00, 0x01]);
            }

            var clock = Stopwatch.StartNew();
            await using var late = await Node.StartAsync(Secure("late", victim.Options.DiscoveryPort));
            await late.Peers.WaitForAsync("victim").Within();
            await Net.AssertServesAsync(late, "victim");
            output.WriteLine($"S3: with 64 half-sent ClientHellos against MaxIncomingConnections=16, a new trusted caller got through in {clock.ElapsedMilliseconds} ms");
        }
        finally
        {
            foreach (var raw in flood)
                raw.Dispose();
        }
    }

    [Fact]
    public async Task S6_a_flood_of_well_formed_beacons_with_a_bad_mac_is_dropped_cheaply_and_discovery_goes_on()
    {
        var (victim, caller) = await PairAsync();
        await using var _ = victim;
        await using var __ = caller;
        using var sender = new BeaconSenderSocket(victim.Options.DiscoveryPort);
        var forger = new BeaconSeal(NodeSecurity.SharedKey(NodeSecurity.CreateNetworkKey()), NodeIdentity.Create());
        const int count = 20_000;
        var datagrams = Enumerable.Range(0, 64).Select(i => forger.Seal(
            Encoding.UTF8.GetBytes($"itecnet|forged{i}|127.0.0.1:{1000 + i}|p2p1|forgedinstance{i}|alive|1000|1"), DateTimeOffset.UtcNow)).ToArray();
        var forgeries = Interlocked.Read(ref victim.Seal!.Forgeries);
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < count; i++)
            sender.Send(datagrams[i % datagrams.Length]);
        var sendMs = clock.ElapsedMilliseconds;

        // The flood's last datagram is followed by a real newcomer; once seen, the flood was read.
        await using var newcomer = await Node.StartAsync(Secure("newcomer", victim.Options.DiscoveryPort));
        await victim.Peers.WaitForAsync("newcomer").Within();
        var rejected = Interlocked.Read(ref victim.Seal.Forgeries) - forgeries;
        Assert.True(rejected > 0);
        Assert.DoesNotContain(victim.Peers, p => p.Name.StartsWith("forged", StringComparison.Ordinal));

        // The cost of one rejection alone, measured in-process (four nodes' receive loops share the CPU figure above).
        var seal = victim.Seal;
        var probe = datagrams[0];
        var perCheck = Stopwatch.StartNew();
        for (var i = 0; i < 100_000; i++)
            seal.TryOpen(probe, "x", DateTimeOffset.UtcNow);
        output.WriteLine($"S6: {count} bad-MAC beacons sent in {sendMs} ms, {rejected} read and rejected (the rest dropped by the kernel buffer); " +
                         $"process CPU during the flood {(Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalMilliseconds:0} ms; one rejection costs {perCheck.Elapsed.TotalMilliseconds / 100:0.00} us");
        await Net.AssertServesAsync(caller, "victim");
    }
}
