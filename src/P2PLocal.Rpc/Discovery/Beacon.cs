using System.Globalization;
using System.Net;
using System.Text;

namespace P2PLocal.Rpc.Discovery;

/// <summary>What a beacon says about its sender.</summary>
internal enum BeaconKind
{
    /// <summary>A node that just started: "here I am; who else is there?" Receivers answer with <see cref="Alive"/> at once.</summary>
    Hello,

    /// <summary>The periodic announcement.</summary>
    Alive,

    /// <summary>The node is leaving; drop it now.</summary>
    Bye,

    /// <summary>A three-field beacon from the Python p2p-local: it is alive.</summary>
    Legacy,
}

/// <summary>
/// One discovery datagram. The text stays compatible with the Python p2p-local, which reads only the first three
/// fields: <c>protocol|name|ip:port</c>. This library appends its own fields after them:
/// <c>|p2p1|instance|kind|intervalMs|startedMs|libraryVersion</c> (see PROTOCOL.md).
/// </summary>
internal sealed record Beacon(
    string Protocol,
    string Name,
    IPEndPoint EndPoint,
    BeaconKind Kind,
    string InstanceId = "",
    TimeSpan Interval = default,
    DateTimeOffset StartedAt = default)
{
    /// <summary>The marker of this library's extra fields.</summary>
    public const string Marker = "p2p1";

    /// <summary>Larger datagrams are dropped unread.</summary>
    public const int MaxLength = 1024;

    /// <summary>
    /// Field 8: the sender's P2PLocal.Rpc version, for tools (<c>p2plocal peers</c>). Beacons this node sends carry
    /// its own; a parsed beacon carries the sender's, or null when the sender did not say (older nodes).
    /// </summary>
    public string? LibraryVersion { get; init; } = DiscoveryDiagnostics.LibraryVersion;

    /// <summary>
    /// Throws when this node's beacon could exceed <see cref="MaxLength"/> (receivers drop longer datagrams unread,
    /// so the node would serve and never be seen). The longest endpoint a beacon carries is an IPv4 one
    /// (<c>255.255.255.255:65535</c>) and the longest kind is <c>alive</c>, so one check covers every beacon it sends.
    /// </summary>
    /// <exception cref="ArgumentException">The name (with the protocol) makes the beacon too long.</exception>
    public static void ThrowIfTooLong(string protocol, string name, string instanceId, TimeSpan interval, DateTimeOffset startedAt)
    {
        var longest = new Beacon(protocol, name, new IPEndPoint(IPAddress.Broadcast, IPEndPoint.MaxPort),
            BeaconKind.Alive, instanceId, interval, startedAt).ToBytes().Length;
        if (longest <= MaxLength)
            return;
        var nameBytes = Encoding.UTF8.GetByteCount(name);
        var room = Math.Max(0, MaxLength - (longest - nameBytes));
        var shown = name.Length <= 40 ? name : name[..40] + "...";
        throw new ArgumentException(
            $"The name '{shown}' ({nameBytes} bytes in UTF-8) makes this node's beacon {longest} bytes, above the {MaxLength}-byte " +
            $"limit of a discovery datagram, so no peer would ever see the node. With protocol '{protocol}' the name may be " +
            $"at most {room} bytes in UTF-8 ({room} ASCII characters; other characters take 2 to 4 bytes each). Choose a shorter name.",
            nameof(name));
    }

    public byte[] ToBytes()
    {
        var text = string.Join('|',
            Protocol,
            Name,
            FormatEndPoint(EndPoint),
            Marker,
            InstanceId,
            Kind switch { BeaconKind.Hello => "hello", BeaconKind.Bye => "bye", _ => "alive" },
            ((long)Interval.TotalMilliseconds).ToString(CultureInfo.InvariantCulture),
            StartedAt.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture));
        if (LibraryVersion is not null)
            text = text + "|" + LibraryVersion;
        return Encoding.UTF8.GetBytes(text);
    }

    private static string FormatEndPoint(IPEndPoint endPoint) => endPoint.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6
        ? $"[{endPoint.Address}]:{endPoint.Port}"
        : $"{endPoint.Address}:{endPoint.Port}";

    /// <summary>
    /// Parses a datagram. Returns false for anything that is not a beacon: too long, not UTF-8, fewer than three
    /// fields, an empty name or protocol, or a bad endpoint. Unknown extra fields are ignored, as the old parser did.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> datagram, out Beacon? beacon)
    {
        beacon = null;
        if (datagram.Length is 0 or > MaxLength)
            return false;

        string text;
        try
        {
            text = s_strictUtf8.GetString(datagram);
        }
        catch (DecoderFallbackException)
        {
            return false;
        }

        var fields = text.Split('|');
        if (fields.Length < 3 || fields[0].Length == 0 || fields[1].Length == 0)
            return false;
        if (!IPEndPoint.TryParse(fields[2], out var endPoint) || endPoint.Port == 0)
            return false;

        if (fields.Length < 8 || fields[3] != Marker)
        {
            beacon = new Beacon(fields[0], fields[1], endPoint, BeaconKind.Legacy) { LibraryVersion = null };
            return true;
        }

        var kind = fields[5] switch
        {
            "hello" => BeaconKind.Hello,
            "alive" => BeaconKind.Alive,
            "bye" => BeaconKind.Bye,
            _ => (BeaconKind?)null,
        };
        if (kind is null || fields[4].Length is 0 or > 64
            || !long.TryParse(fields[6], NumberStyles.None, CultureInfo.InvariantCulture, out var intervalMs)
            || !long.TryParse(fields[7], NumberStyles.None, CultureInfo.InvariantCulture, out var startedMs)
            || intervalMs is < 1 or > 86_400_000
            || startedMs > DateTimeOffset.MaxValue.ToUnixTimeMilliseconds())
            return false;

        beacon = new Beacon(fields[0], fields[1], endPoint, kind.Value, fields[4],
            TimeSpan.FromMilliseconds(intervalMs), DateTimeOffset.FromUnixTimeMilliseconds(startedMs))
        {
            // Optional: older nodes send 8 fields; a version that is empty or too long is ignored, never fatal.
            LibraryVersion = fields.Length > 8 && fields[8].Length is > 0 and <= MaxLibraryVersionLength ? fields[8] : null,
        };
        return true;
    }

    /// <summary>The longest library version a beacon may carry.</summary>
    public const int MaxLibraryVersionLength = 64;

    private static readonly UTF8Encoding s_strictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
}
