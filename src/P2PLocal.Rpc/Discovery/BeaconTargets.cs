using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;

namespace P2PLocal.Rpc.Discovery;

/// <summary>Where one copy of a beacon goes, and the address it advertises there.</summary>
/// <param name="Destination">The broadcast (or seed) address and discovery port.</param>
/// <param name="Advertised">The address peers reached through <paramref name="Destination"/> should call.</param>
internal sealed record BeaconTarget(IPEndPoint Destination, IPAddress Advertised);

/// <summary>An IPv4 address of an interface, with its mask.</summary>
internal sealed record InterfaceAddress(IPAddress Address, IPAddress Mask);

/// <summary>The parts of a network interface that beacon targeting looks at (a seam for tests).</summary>
internal sealed record InterfaceInfo(string Name, bool IsUp, bool IsLoopback, bool SupportsBroadcast, IReadOnlyList<InterfaceAddress> Addresses);

/// <summary>Chooses where beacons go.</summary>
internal static class BeaconTargets
{
    /// <summary>The loopback broadcast address: every socket on this host bound to the port receives it.</summary>
    public static readonly IPAddress LoopbackBroadcast = IPAddress.Parse("127.255.255.255");

    public static IReadOnlyList<BeaconTarget> ForLoopback(int port) =>
        [new BeaconTarget(new IPEndPoint(LoopbackBroadcast, port), IPAddress.Loopback)];

    /// <summary>
    /// One target per IPv4 address of every up, non-loopback interface that has a broadcast address, each
    /// advertising that interface's own address. Never a loopback address, never the limited broadcast address
    /// 255.255.255.255 (it leaves by one interface only), and no DNS.
    /// </summary>
    public static IReadOnlyList<BeaconTarget> ForLan(IEnumerable<InterfaceInfo> interfaces, int port)
    {
        var targets = new List<BeaconTarget>();
        foreach (var nic in interfaces)
        {
            if (!nic.IsUp || nic.IsLoopback || !nic.SupportsBroadcast)
                continue;
            foreach (var (address, mask) in nic.Addresses)
            {
                if (address.AddressFamily != AddressFamily.InterNetwork || IPAddress.IsLoopback(address) || IsLinkLocal(address))
                    continue;
                var broadcast = BroadcastOf(address, mask);
                if (broadcast is null)
                    continue;
                var target = new BeaconTarget(new IPEndPoint(broadcast, port), address);
                if (!targets.Contains(target))
                    targets.Add(target);
            }
        }

        return targets;
    }

    /// <summary>The subnet broadcast address, or null for a /31 or /32 (point-to-point: no broadcast).</summary>
    public static IPAddress? BroadcastOf(IPAddress address, IPAddress mask)
    {
        Span<byte> a = stackalloc byte[4];
        Span<byte> m = stackalloc byte[4];
        if (!address.TryWriteBytes(a, out _) || !mask.TryWriteBytes(m, out _))
            return null;
        var hostBits = 0;
        for (var i = 0; i < 4; i++)
        {
            hostBits += 8 - System.Numerics.BitOperations.PopCount(m[i]);
            a[i] = (byte)(a[i] | ~m[i]);
        }

        return hostBits < 2 ? null : new IPAddress(a);
    }

    private static bool IsLinkLocal(IPAddress address)
    {
        var bytes = address.GetAddressBytes();
        return bytes[0] == 169 && bytes[1] == 254;
    }

    /// <summary>Reads this machine's interfaces.</summary>
    public static IEnumerable<InterfaceInfo> SystemInterfaces()
    {
        foreach (var nic in NetworkInterface.GetAllNetworkInterfaces())
        {
            IReadOnlyList<InterfaceAddress> addresses;
            try
            {
                addresses = nic.GetIPProperties().UnicastAddresses
                    .Where(u => u.Address.AddressFamily == AddressFamily.InterNetwork && u.IPv4Mask is not null)
                    .Select(u => new InterfaceAddress(u.Address, u.IPv4Mask))
                    .ToList();
            }
            catch (NetworkInformationException)
            {
                continue;
            }

            yield return new InterfaceInfo(nic.Name, nic.OperationalStatus is OperationalStatus.Up or OperationalStatus.Unknown,
                nic.NetworkInterfaceType == NetworkInterfaceType.Loopback, nic.NetworkInterfaceType != NetworkInterfaceType.Ppp, addresses);
        }
    }
}
