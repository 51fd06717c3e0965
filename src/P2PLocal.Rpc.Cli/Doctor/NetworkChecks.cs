using System.Net;

namespace P2PLocal.Rpc.Cli.Doctor;

/// <summary>
/// The checks that need only what was heard on the port: other nodes, other hosts, other protocols, legacy nodes,
/// datagrams that are not beacons, and name conflicts. Pure: tests feed them datagrams.
/// </summary>
internal static class NetworkChecks
{
    /// <summary>How many names or senders a summary lists before it says "and N more".</summary>
    private const int MaxListed = 5;

    public static IEnumerable<Check> Run(IReadOnlyList<HeardDatagram> heard, CommonSettings settings, string ownInstance, IReadOnlySet<IPAddress> localAddresses)
    {
        var others = heard.Where(d => d.Beacon is not null && (d.Beacon.IsLegacy || d.Beacon.InstanceId != ownInstance)).ToList();
        yield return OthersHeard(others, settings);
        if (settings.Scope == DiscoveryScope.Lan && others.Count > 0)
            yield return OtherHosts(others, settings, localAddresses);
        yield return OtherProtocols(others, settings);
        yield return Legacy(others, settings);
        yield return Undecodable(heard, settings);
        yield return NameConflicts(others, settings);
    }

    private static Check OthersHeard(List<HeardDatagram> others, CommonSettings settings)
    {
        var senders = others.Select(d => (d.Beacon!.Protocol, d.Beacon.Name, d.Beacon.InstanceId)).Distinct().ToList();
        var ours = senders.Count(s => s.Protocol == settings.Protocol);
        if (senders.Count > 0)
            return Check.Ok(CheckIds.OthersHeard, $"heard {Count(senders.Count, "node")} in {Seconds(settings)} ({ours} of protocol {settings.Protocol}): {List(senders.Select(s => s.Name))}");
        return settings.Scope == DiscoveryScope.Loopback
            ? Check.Fail(CheckIds.OthersHeard, $"no beacon from any other node on this host in {Seconds(settings)}.",
                $"Start a node with Scope = DiscoveryScope.Loopback and DiscoveryPort = {settings.Port} (a Lan-scope node beacons to the network, not to 127.255.255.255), or wait longer with --wait.")
            : Check.Fail(CheckIds.OthersHeard, $"no beacon from any other node in {Seconds(settings)}: broadcast may be blocked on this network (Wi-Fi client isolation, VPN, container bridge), or no node runs on port {settings.Port}.",
                "List the peers in NodeOptions.Seeds (their address and discovery port), check that the nodes use the same discovery port, or wait longer with --wait.");
    }

    private static Check OtherHosts(List<HeardDatagram> others, CommonSettings settings, IReadOnlySet<IPAddress> localAddresses)
    {
        var remote = others.Where(d => !IPAddress.IsLoopback(d.Source.Address) && !localAddresses.Contains(d.Source.Address))
            .Select(d => d.Source.Address).Distinct().ToList();
        return remote.Count > 0
            ? Check.Ok(CheckIds.OtherHosts, $"heard beacons from {Count(remote.Count, "other host")}: {List(remote.Select(a => a.ToString()))}")
            : Check.Warn(CheckIds.OtherHosts, $"no beacon from any other host in {Seconds(settings)}, only from this one: broadcast may be blocked on this network (Wi-Fi client isolation, VPN, container bridge).",
                "List the peers in NodeOptions.Seeds, or check the other hosts' firewalls allow UDP port " + settings.Port + ".");
    }

    private static Check OtherProtocols(List<HeardDatagram> others, CommonSettings settings)
    {
        var foreign = others.Where(d => d.Beacon!.Protocol != settings.Protocol)
            .GroupBy(d => d.Beacon!.Protocol)
            .Select(g => $"'{g.Key}' ({List(g.Select(d => $"{d.Beacon!.Name} from {d.Source.Address}"))})")
            .ToList();
        return foreign.Count == 0
            ? Check.Ok(CheckIds.OtherProtocols, $"no node of another protocol on port {settings.Port}.")
            : Check.Warn(CheckIds.OtherProtocols, $"nodes of another protocol share port {settings.Port}: {string.Join("; ", foreign)}. They and protocol '{settings.Protocol}' cannot see each other.",
                "If they should see each other, give them the same NodeOptions.Protocol (or run this tool with --protocol <name>); if not, this is harmless.");
    }

    private static Check Legacy(List<HeardDatagram> others, CommonSettings settings)
    {
        var legacy = others.Where(d => d.Beacon!.IsLegacy && d.Beacon.Protocol == settings.Protocol)
            .Select(d => $"'{d.Beacon!.Name}' at {d.Beacon.EndPoint} (from {d.Source.Address})").Distinct().ToList();
        return legacy.Count == 0
            ? Check.Ok(CheckIds.Legacy, "no legacy (Python p2p-local) node heard.")
            : Check.Warn(CheckIds.Legacy, $"legacy node{(legacy.Count == 1 ? "" : "s")} (three-field beacon, Python p2p-local): {List(legacy)}. They are listed as peers but speak XML-RPC, so calls to them fail.",
                "Move them to P2PLocal.Rpc, or call them with the Python p2p-local.");
    }

    private static Check Undecodable(IReadOnlyList<HeardDatagram> heard, CommonSettings settings)
    {
        var junk = heard.Where(d => d.Beacon is null).ToList();
        return junk.Count == 0
            ? Check.Ok(CheckIds.Undecodable, $"every datagram on port {settings.Port} was a beacon.")
            : Check.Warn(CheckIds.Undecodable, $"{Count(junk.Count, "datagram")} on port {settings.Port} {(junk.Count == 1 ? "was" : "were")} not a beacon, from {List(junk.Select(d => d.Source.ToString()))}: another program uses this port.",
                $"Give the nodes a port of their own (NodeOptions.DiscoveryPort, --port), or stop the program that sends to UDP port {settings.Port}.");
    }

    /// <summary>Two instances of one name that both beaconed in the window, and neither said bye, are both alive.</summary>
    private static Check NameConflicts(List<HeardDatagram> others, CommonSettings settings)
    {
        var conflicts = others
            .Where(d => d.Beacon is { IsLegacy: false } b && b.Protocol == settings.Protocol)
            .GroupBy(d => d.Beacon!.InstanceId)
            .Select(g => g.Last())
            .Where(d => d.Beacon!.Kind != BeaconMessageKind.Bye)
            .GroupBy(d => d.Beacon!.Name)
            .Where(g => g.Count() > 1)
            .Select(g => $"'{g.Key}' by {string.Join(" and ", g.OrderBy(d => d.Beacon!.StartedAt).Select(d => $"instance {d.Beacon!.InstanceId} at {d.Beacon.EndPoint} (started {d.Beacon.StartedAt:u})"))}")
            .ToList();
        return conflicts.Count == 0
            ? Check.Ok(CheckIds.NameConflicts, "no name is claimed by two live nodes.")
            : Check.Fail(CheckIds.NameConflicts, $"two live nodes claim one name: {string.Join("; ", conflicts)}. The older keeps the name; calls to it fail with NameConflictException until one leaves.",
                "Stop one of them, or give it another NodeOptions.Name.");
    }

    private static string Seconds(CommonSettings settings) => $"{settings.Wait.TotalSeconds:0.###} s";

    private static string Count(int count, string noun) => $"{count} {noun}{(count == 1 ? "" : "s")}";

    private static string List(IEnumerable<string> items)
    {
        var distinct = items.Distinct().ToList();
        return distinct.Count <= MaxListed
            ? string.Join(", ", distinct)
            : string.Join(", ", distinct.Take(MaxListed)) + $" and {distinct.Count - MaxListed} more";
    }
}
