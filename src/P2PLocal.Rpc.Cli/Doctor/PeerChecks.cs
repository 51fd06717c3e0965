using System.Diagnostics;
using System.Net.Sockets;
using P2PLocal.Rpc.Cli.Commands;
using P2PLocal.Rpc.Dispatch;

namespace P2PLocal.Rpc.Cli.Doctor;

/// <summary>
/// The checks of one named peer, each building on the one before: seen, TCP connect, hello answered, functions
/// listed, round-trip time, contract fingerprints. The first failure ends the list (the next would fail for the same
/// reason).
/// </summary>
internal static class PeerChecks
{
    /// <summary>Calls of <c>$methods</c> timed for the round-trip check.</summary>
    private const int RoundTrips = 5;

    /// <summary>Above this median round trip the check warns: a LAN answers in well under a millisecond to a few.</summary>
    private static readonly TimeSpan s_slow = TimeSpan.FromMilliseconds(200);

    public static async Task<List<Check>> RunAsync(Session session, string name, CommonSettings settings, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var checks = new List<Check>();
        await RunAsync(checks, session, name, settings, timeout, cancellationToken).ConfigureAwait(false);
        return checks;
    }

    private static async Task RunAsync(List<Check> checks, Session session, string name, CommonSettings settings, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var peer = session.Node.Peers.TryGet(name, out var known) ? known : null;
        var contested = session.Node.Peers.Count(p => p.Name == name) > 1;
        if (peer is null && !contested && session.Probe.Heard.Any(d => d.Beacon?.Name == name && d.Beacon.Protocol == settings.Protocol))
        {
            // The probe heard it; the node's own socket may not have taken the same beacon in yet (a loaded machine).
            peer = await session.WaitForPeerAsync(name, timeout, cancellationToken).ConfigureAwait(false);
        }

        if (peer is null)
        {
            checks.Add(NotSeen(session, name, settings));
            return;
        }

        var version = session.Probe.Heard.LastOrDefault(d => d.Beacon?.InstanceId == peer.InstanceId && !peer.IsLegacy)?.Beacon?.LibraryVersion;
        checks.Add(Check.Ok(CheckIds.PeerSeen, $"'{name}' seen at {peer.EndPoint}, {(peer.IsLegacy ? "legacy (Python p2p-local)" : $"instance {peer.InstanceId}, version {version ?? "not said"}")}, last beacon {PeersCommand.Ago(DateTimeOffset.UtcNow - peer.LastSeen)}."));

        Socket? socket = null;
        try
        {
            (socket, var connected) = await HelloProbe.ConnectAsync(peer.EndPoint, timeout, cancellationToken).ConfigureAwait(false);
            checks.Add(Check.Ok(CheckIds.PeerTcp, $"TCP connect to {peer.EndPoint} in {Ms(connected)}."));
        }
        catch (Exception e) when (e is SocketException or TimeoutException)
        {
        }

        if (socket is null)
        {
            checks.Add(await TcpFailedAsync(peer, timeout, cancellationToken).ConfigureAwait(false));
            return;
        }

        using (socket)
        {
            if (peer.IsLegacy)
            {
                checks.Add(Check.Warn(CheckIds.PeerHello, $"'{name}' is a legacy (Python p2p-local) node: it speaks XML-RPC, not this protocol, so it sends no hello and takes no calls.",
                    "Move it to P2PLocal.Rpc, or call it with the Python p2p-local."));
                return;
            }

            PeerHello? hello = null;
            string? failure = null;
            try
            {
                hello = await HelloProbe.ExchangeAsync(socket, session.Node.Name, session.Node.InstanceId, timeout, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or TimeoutException or InvalidDataException)
            {
                failure = e.Message;
            }

            if (hello is null)
            {
                checks.Add(Check.Fail(CheckIds.PeerHello, $"{peer.EndPoint} accepted the connection but {failure}.",
                    "Another program may serve on that port (the peer restarted on a new one and will beacon it within one interval), or the node is overloaded; run `p2plocal peers` again."));
                return;
            }

            if (hello.InstanceId != peer.InstanceId)
            {
                checks.Add(Check.Fail(CheckIds.PeerHello, $"{peer.EndPoint} answered as '{hello.Name}' instance {hello.InstanceId}, but the beacon said '{name}' instance {peer.InstanceId}: the peer restarted, or another node took its port.",
                    $"Wait one beacon interval ({peer.AdvertiseInterval.TotalSeconds:0.#} s) and run again; calls go only to the instance the beacon names."));
                return;
            }

            checks.Add(Check.Ok(CheckIds.PeerHello, $"hello answered in {Ms(hello.Elapsed)}: '{hello.Name}', protocol version {hello.Version}, frames up to {hello.MaxFrameSize / 1024} KiB."));
        }

        IReadOnlyList<FunctionDescriptor>? functions = null;
        string? error = null;
        try
        {
            functions = await session.Node.GetFunctionsAsync(name, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (CallCommand.IsCallFailure(e, cancellationToken))
        {
            error = CallCommand.Describe(e);
        }

        if (functions is null)
        {
            checks.Add(Check.Fail(CheckIds.PeerFunctions, $"listing the functions failed: {error}", "See the exception table in the README for what it means."));
            return;
        }

        checks.Add(Check.Ok(CheckIds.PeerFunctions, functions.Count == 0
            ? "the peer serves no functions yet."
            : $"{functions.Count} function{(functions.Count == 1 ? "" : "s")}: {string.Join(", ", functions.Select(f => f.Name))}."));

        var times = new List<TimeSpan>();
        for (var i = 0; i < RoundTrips && error is null; i++)
        {
            var clock = Stopwatch.StartNew();
            try
            {
                await session.Node.GetFunctionsAsync(name, cancellationToken).ConfigureAwait(false);
                times.Add(clock.Elapsed);
            }
            catch (Exception e) when (CallCommand.IsCallFailure(e, cancellationToken))
            {
                error = CallCommand.Describe(e);
            }
        }

        if (error is not null)
        {
            checks.Add(Check.Fail(CheckIds.PeerRoundTrip, $"a call failed after {times.Count} of {RoundTrips}: {error}", "The connection is unstable; run `p2plocal doctor` again and look at the network."));
            return;
        }

        times.Sort();
        var median = times[times.Count / 2];
        var rtt = $"round trip of $methods: median {Ms(median)}, min {Ms(times[0])}, max {Ms(times[^1])} ({RoundTrips} calls).";
        checks.Add(median > s_slow
            ? Check.Warn(CheckIds.PeerRoundTrip, rtt, "Slow for a local network: the peer may be overloaded, or the path crosses Wi-Fi or a VPN.")
            : Check.Ok(CheckIds.PeerRoundTrip, rtt));

        var contracts = functions.Where(f => f.Fingerprint is not null).GroupBy(f => f.Fingerprint!)
            .Select(g => $"{g.Key} ({string.Join(", ", g.Select(f => f.Name))})").ToList();
        var dynamic = functions.Count(f => f.Fingerprint is null);
        checks.Add(Check.Ok(CheckIds.PeerContracts, contracts.Count == 0
            ? $"no typed contract: {dynamic} dynamic function{(dynamic == 1 ? "" : "s")}."
            : $"contract fingerprint{(contracts.Count == 1 ? "" : "s")} {string.Join("; ", contracts)}{(dynamic > 0 ? $"; {dynamic} dynamic" : "")}. A typed caller built with another fingerprint refuses to call (ContractMismatchException)."));
    }

    private static Check NotSeen(Session session, string name, CommonSettings settings)
    {
        var heard = session.Probe.Heard.Select(d => d.Beacon).OfType<BeaconMessage>().Where(b => b.InstanceId != session.Node.InstanceId).ToList();
        var sameName = heard.Where(b => b.Name == name).ToList();
        if (sameName.FirstOrDefault(b => b.Protocol != settings.Protocol) is { } other)
            return Check.Fail(CheckIds.PeerSeen, $"'{name}' was not seen with protocol '{settings.Protocol}', but a node named '{name}' beacons with protocol '{other.Protocol}' from {other.EndPoint}.",
                $"Use one protocol on both sides: run this tool with --protocol {other.Protocol}, or set NodeOptions.Protocol.");
        if (sameName.Count > 0)
            return Check.Fail(CheckIds.PeerSeen, $"'{name}' beacons, but no single live node holds the name (see name-conflicts).",
                "Stop one of the nodes that claim the name, or rename one.");
        var names = heard.Where(b => b.Protocol == settings.Protocol).Select(b => b.Name).Distinct().Order(StringComparer.Ordinal).ToList();
        return Check.Fail(CheckIds.PeerSeen, $"'{name}' was not heard in {settings.Wait.TotalSeconds:0.###} s{(names.Count > 0 ? $"; heard instead: {string.Join(", ", names.Take(10))}" : "")}.",
            $"Check the name, that the node runs with DiscoveryPort {settings.Port} and protocol '{settings.Protocol}', and its scope: a loopback-scope node is seen only on its own host{(settings.Scope == DiscoveryScope.Loopback ? "" : " (run this tool with --scope loopback there)")}.");
    }

    private static async Task<Check> TcpFailedAsync(PeerInfo peer, TimeSpan timeout, CancellationToken cancellationToken)
    {
        string reason;
        try
        {
            // Once more, to name the cause: refused (nothing listens) or timed out (dropped on the way).
            var (socket, _) = await HelloProbe.ConnectAsync(peer.EndPoint, timeout, cancellationToken).ConfigureAwait(false);
            socket.Dispose();
            reason = "it failed once and worked the second time";
        }
        catch (SocketException e)
        {
            reason = e.SocketErrorCode == SocketError.ConnectionRefused ? "connection refused: nothing listens there" : $"{e.SocketErrorCode}: {e.Message}";
        }
        catch (TimeoutException e)
        {
            reason = e.Message + ": a firewall may drop it";
        }

        return Check.Fail(CheckIds.PeerTcp, $"TCP connect to {peer.EndPoint} failed ({reason}).",
            $"The node is gone (it expires {peer.AdvertiseInterval.TotalSeconds * 3.5:0.#} s after its last beacon), or a firewall blocks TCP port {peer.EndPoint.Port}: allow it in on the peer's host.");
    }

    private static string Ms(TimeSpan span) => $"{span.TotalMilliseconds:0.0} ms";
}
