using System.Diagnostics.CodeAnalysis;
using System.Net;
using P2PLocal.Rpc.Discovery;

namespace P2PLocal.Rpc;

/// <summary>What a discovery beacon says (see PROTOCOL.md).</summary>
public enum BeaconMessageKind
{
    /// <summary>A node that just started; every node that hears it answers with <see cref="Alive"/> at once.</summary>
    Hello,

    /// <summary>The periodic announcement, or the answer to a hello.</summary>
    Alive,

    /// <summary>The node is leaving.</summary>
    Bye,

    /// <summary>A beacon of the Python p2p-local (fields 0-2 only): its node is alive and speaks XML-RPC.</summary>
    Legacy,
}

/// <summary>
/// One discovery datagram, decoded exactly as a node decodes it, for tools that show or diagnose the network
/// (the <c>p2plocal</c> command-line tool). A node never needs it.
/// </summary>
/// <param name="Protocol">Field 0: the discovery protocol; nodes ignore beacons of another protocol.</param>
/// <param name="Name">Field 1: the sender's name.</param>
/// <param name="EndPoint">Field 2: where the sender says it serves requests, as written in the beacon.</param>
/// <param name="Kind">Field 5, or <see cref="BeaconMessageKind.Legacy"/> for a three-field beacon.</param>
/// <remarks>Immutable and thread-safe.</remarks>
public sealed record BeaconMessage(string Protocol, string Name, IPEndPoint EndPoint, BeaconMessageKind Kind)
{
    /// <summary>The largest datagram a node reads; longer ones are dropped unread.</summary>
    public const int MaxLength = Beacon.MaxLength;

    /// <summary>Field 4: unique per run of the sender; empty for a legacy beacon.</summary>
    public string InstanceId { get; init; } = "";

    /// <summary>Field 6: the sender's beacon interval; <see cref="TimeSpan.Zero"/> for a legacy beacon.</summary>
    public TimeSpan AdvertiseInterval { get; init; }

    /// <summary>Field 7: when the sender started; <see cref="DateTimeOffset.MinValue"/> for a legacy beacon.</summary>
    public DateTimeOffset StartedAt { get; init; }

    /// <summary>Field 8: the sender's P2PLocal.Rpc version, or null when it did not say (older nodes, legacy nodes).</summary>
    public string? LibraryVersion { get; init; }

    /// <summary>True for a beacon of the Python p2p-local (only fields 0-2, or without this library's marker).</summary>
    public bool IsLegacy => Kind == BeaconMessageKind.Legacy;

    /// <summary>
    /// Decodes a datagram heard on the discovery port. Never throws: returns false for anything a node would drop as
    /// not a beacon (empty, longer than <see cref="MaxLength"/>, not UTF-8, fewer than three fields, an empty name or
    /// protocol, a bad endpoint, or a malformed field of this library's format).
    /// </summary>
    /// <remarks>Thread-safe.</remarks>
    public static bool TryDecode(ReadOnlySpan<byte> datagram, [NotNullWhen(true)] out BeaconMessage? message)
    {
        message = null;
        if (!Beacon.TryParse(datagram, out var beacon) || beacon is null)
            return false;
        message = new BeaconMessage(beacon.Protocol, beacon.Name, beacon.EndPoint, beacon.Kind switch
        {
            BeaconKind.Hello => BeaconMessageKind.Hello,
            BeaconKind.Alive => BeaconMessageKind.Alive,
            BeaconKind.Bye => BeaconMessageKind.Bye,
            _ => BeaconMessageKind.Legacy,
        })
        {
            InstanceId = beacon.InstanceId,
            AdvertiseInterval = beacon.Interval,
            StartedAt = beacon.StartedAt,
            LibraryVersion = beacon.LibraryVersion,
        };
        return true;
    }
}
