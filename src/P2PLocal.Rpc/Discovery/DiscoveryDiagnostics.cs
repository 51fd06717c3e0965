using System.Net;
using System.Reflection;
using P2PLocal.Rpc.Discovery;

namespace P2PLocal.Rpc;

/// <summary>Where a node's beacons would go from this machine, by interface.</summary>
/// <param name="Interface">The network interface's name (<c>lo</c> for loopback scope).</param>
/// <param name="Advertised">The address the beacon carries, which peers then call.</param>
/// <param name="Destination">The broadcast address and discovery port the beacon is sent to.</param>
/// <remarks>Immutable and thread-safe.</remarks>
public sealed record BeaconRoute(string Interface, IPAddress Advertised, IPEndPoint Destination);

/// <summary>
/// What tools need to explain discovery (the <c>p2plocal</c> command-line tool): this library's version and the
/// routes a node's beacons take. Decode datagrams with <see cref="BeaconMessage.TryDecode"/>.
/// </summary>
/// <remarks>Thread-safe.</remarks>
public static class DiscoveryDiagnostics
{
    /// <summary>
    /// This library's version (the package version, without build metadata), as nodes send it in field 8 of their
    /// beacons.
    /// </summary>
    public static string LibraryVersion { get; } = ReadVersion();

    /// <summary>
    /// The routes a node started now with <paramref name="scope"/> would send its beacons by: one per IPv4 address of
    /// every up, non-loopback interface with a broadcast address for <see cref="DiscoveryScope.Lan"/>;
    /// 127.255.255.255 for <see cref="DiscoveryScope.Loopback"/>. Seeds come on top. Reads the interfaces each call.
    /// </summary>
    /// <param name="scope">The scope the node would run in.</param>
    /// <param name="discoveryPort">The discovery port (1 to 65535).</param>
    /// <returns>The routes; empty when no interface can broadcast (a node would then be seen only through seeds).</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="discoveryPort"/> is not a port.</exception>
    public static IReadOnlyList<BeaconRoute> GetBeaconRoutes(DiscoveryScope scope, int discoveryPort)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(discoveryPort, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(discoveryPort, 65535);
        if (scope == DiscoveryScope.Loopback)
            return [.. BeaconTargets.ForLoopback(discoveryPort).Select(t => new BeaconRoute("lo", t.Advertised, t.Destination))];
        return [.. BeaconTargets.SystemInterfaces()
            .SelectMany(nic => BeaconTargets.ForLan([nic], discoveryPort).Select(t => new BeaconRoute(nic.Name, t.Advertised, t.Destination)))];
    }

    private static string ReadVersion()
    {
        var assembly = typeof(DiscoveryDiagnostics).Assembly;
        var version = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
            ?? assembly.GetName().Version?.ToString()
            ?? "0.0.0";
        var plus = version.IndexOf('+', StringComparison.Ordinal);
        version = plus >= 0 ? version[..plus] : version;
        return version.Length is > 0 and <= Beacon.MaxLibraryVersionLength && !version.Contains('|', StringComparison.Ordinal) ? version : "0.0.0";
    }
}
