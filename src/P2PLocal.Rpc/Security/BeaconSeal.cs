using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace P2PLocal.Rpc.Security;

/// <summary>
/// Seals a secure node's beacons and opens its peers' (issue 10; PROTOCOL.md "Secure beacons"). After the eight
/// fields of an open beacon (eight or more) come <c>|mode|id|freshness[|publicKey]|tag</c>, always last: <c>k1</c> beacons carry an HMAC-SHA256
/// under a key derived from the network key, <c>p1</c> beacons the sender's P-256 public key and its ECDSA signature.
/// The tag covers every byte before it, so name, endpoint, instance, kind and id are bound together.
/// </summary>
/// <remarks>
/// Freshness is the sender's clock in Unix ms, strictly increasing per sender. A receiver takes a beacon only when it
/// is within <see cref="FreshnessWindow"/> of its own clock and newer than every beacon it took from that instance,
/// so a captured beacon sent again never revives a node that left nor moves a name. Thread-safe.
/// </remarks>
internal sealed class BeaconSeal
{
    /// <summary>Secure beacons stay at or under this many bytes.</summary>
    public const int MaxSealedLength = 512;

    /// <summary>How far a beacon's freshness may be from the receiver's clock (hosts' clocks must agree this well).</summary>
    public static readonly TimeSpan FreshnessWindow = TimeSpan.FromSeconds(60);

    /// <summary>At most this many signatures are checked per second (pinned mode); a flood beyond it is dropped unchecked.</summary>
    public const int MaxSignatureChecksPerSecond = 512;

    private const string KeyedMode = "k1";
    private const string PinnedMode = "p1";
    private const int MaxRememberedInstances = 16 * 1024;

    private readonly NodeSecurity _security;
    private readonly NodeIdentity _identity;
    private readonly string _compactId;
    private readonly string _publicKey = "";
    private readonly object _gate = new();
    private readonly Dictionary<string, long> _highWater = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (string PublicKey, ECDsa Key)> _pinnedKeys = new(StringComparer.Ordinal);
    private long _lastSent;
    private long _checkSecond;
    private int _checksThisSecond;

    public BeaconSeal(NodeSecurity security, NodeIdentity identity)
    {
        _security = security;
        _identity = identity;
        _compactId = identity.Id.Replace("-", "", StringComparison.Ordinal);
        if (security.Mode == SecurityMode.Pinned)
        {
            var point = identity.Key.ExportParameters(false).Q;
            _publicKey = Base64Url([.. point.X!, .. point.Y!]);
        }
    }

    /// <summary>Beacons rejected by the freshness rules (replays), for tests and diagnostics.</summary>
    public long Replays;

    /// <summary>Beacons rejected for a bad tag, an untrusted id or a malformed secure field.</summary>
    public long Forgeries;

    /// <summary>Whether a datagram carries secure fields (an open node ignores such beacons). They are the last ones, so
    /// optional open fields (field 8, the library version) may come before them.</summary>
    public static bool IsSealed(ReadOnlySpan<byte> datagram)
    {
        // From the end: tag, [public key,] freshness, id, mode.
        var end = datagram.Length;
        for (var piece = 1; piece <= 5; piece++)
        {
            var pipe = datagram[..end].LastIndexOf((byte)'|');
            if (pipe < 0)
                return false;
            var field = datagram[(pipe + 1)..end];
            if ((piece == 4 && field.SequenceEqual("k1"u8)) || (piece == 5 && field.SequenceEqual("p1"u8)))
                return true;
            end = pipe;
        }

        return false;
    }

    /// <summary>Appends the secure fields and tag to an open beacon's bytes.</summary>
    public byte[] Seal(byte[] beacon, DateTimeOffset now)
    {
        long freshness;
        lock (_gate)
            _lastSent = freshness = Math.Max(now.ToUnixTimeMilliseconds(), _lastSent + 1);
        var mode = _security.Mode == SecurityMode.Pinned ? PinnedMode : KeyedMode;
        var fields = _security.Mode == SecurityMode.Pinned
            ? $"|{mode}|{_compactId}|{freshness.ToString(CultureInfo.InvariantCulture)}|{_publicKey}|"
            : $"|{mode}|{_compactId}|{freshness.ToString(CultureInfo.InvariantCulture)}|";
        var signed = new byte[beacon.Length + Encoding.ASCII.GetByteCount(fields)];
        beacon.CopyTo(signed, 0);
        Encoding.ASCII.GetBytes(fields, signed.AsSpan(beacon.Length));
        var tag = _security.Mode == SecurityMode.Pinned
            ? _identity.Key.SignData(signed, HashAlgorithmName.SHA256)
            : HMACSHA256.HashData(_security.BeaconKey, signed);
        return [.. signed, .. Encoding.ASCII.GetBytes(Base64Url(tag))];
    }

    /// <summary>
    /// Checks a beacon of this group: its tag, its id (pinned mode: one of the trusted), and its freshness. Returns the
    /// sender's verified id, or null when the beacon must be dropped.
    /// </summary>
    public string? TryOpen(ReadOnlySpan<byte> datagram, string instanceId, DateTimeOffset now)
    {
        if (datagram.Length > MaxSealedLength)
            return Forged();
        var lastPipe = datagram.LastIndexOf((byte)'|');
        if (lastPipe < 0)
            return Forged();
        var signed = datagram[..(lastPipe + 1)];
        var fields = Encoding.UTF8.GetString(signed).Split('|');
        // At least 8 open fields, then mode, id, freshness, [public key,] and the empty piece after the last '|'.
        var pinned = _security.Mode == SecurityMode.Pinned;
        var first = fields.Length - (pinned ? 5 : 4);
        if (first < 8 || fields[first] != (pinned ? PinnedMode : KeyedMode)
            || !long.TryParse(fields[first + 2], NumberStyles.None, CultureInfo.InvariantCulture, out var freshness))
            return Forged();
        var peerId = NodeIdentity.Normalize(fields[first + 1]);
        if (peerId is null)
            return Forged();

        var nowMs = now.ToUnixTimeMilliseconds();
        var windowMs = (long)FreshnessWindow.TotalMilliseconds;
        if (freshness < nowMs - windowMs || freshness > nowMs + windowMs)
            return Replayed();

        Span<byte> tag = stackalloc byte[64];
        if (!TryFromBase64Url(datagram[(lastPipe + 1)..], tag, out var tagLength))
            return Forged();
        tag = tag[..tagLength];
        if (pinned ? !CheckSignature(peerId, fields[first + 3], signed, tag, now) : !CheckMac(signed, tag))
            return Forged();

        lock (_gate)
        {
            if (_highWater.TryGetValue(instanceId, out var seen) && freshness <= seen)
                return Replayed();
            if (_highWater.Count >= MaxRememberedInstances)
            {
                // Entries outside the window are rejected by the clock check anyway.
                foreach (var (instance, last) in _highWater)
                {
                    if (last < nowMs - windowMs)
                        _highWater.Remove(instance);
                }
            }

            if (_highWater.Count < MaxRememberedInstances || _highWater.ContainsKey(instanceId))
                _highWater[instanceId] = freshness;
        }

        return peerId;
    }

    private bool CheckMac(ReadOnlySpan<byte> signed, ReadOnlySpan<byte> tag)
    {
        Span<byte> expected = stackalloc byte[32];
        HMACSHA256.HashData(_security.BeaconKey, signed, expected);
        return CryptographicOperations.FixedTimeEquals(expected, tag);
    }

    private bool CheckSignature(string peerId, string publicKey, ReadOnlySpan<byte> signed, ReadOnlySpan<byte> signature, DateTimeOffset now)
    {
        if (!_security.TrustedIds.Contains(peerId) || signature.Length != 64)
            return false;
        ECDsa? key;
        lock (_gate)
        {
            var second = now.ToUnixTimeSeconds();
            if (second != _checkSecond)
            {
                _checkSecond = second;
                _checksThisSecond = 0;
            }

            if (++_checksThisSecond > MaxSignatureChecksPerSecond)
                return false;
            key = _pinnedKeys.TryGetValue(peerId, out var known) ? (known.PublicKey == publicKey ? known.Key : null) : Import(peerId, publicKey);
        }

        return key is not null && key.VerifyData(signed, signature, HashAlgorithmName.SHA256);
    }

    /// <summary>Imports a trusted id's public key from its beacon, once: it must hash to that id. Under the lock.</summary>
    private ECDsa? Import(string peerId, string publicKey)
    {
        Span<byte> point = stackalloc byte[66];
        if (!TryFromBase64Url(Encoding.ASCII.GetBytes(publicKey), point, out var length) || length != 64)
            return null;
        ECDsa key;
        try
        {
            key = ECDsa.Create(new ECParameters { Curve = ECCurve.NamedCurves.nistP256, Q = new ECPoint { X = point[..32].ToArray(), Y = point[32..64].ToArray() } });
        }
        catch (CryptographicException)
        {
            return null; // not a point on the curve
        }

        if (NodeIdentity.IdOf(key.ExportSubjectPublicKeyInfo()) != peerId)
        {
            key.Dispose();
            return null;
        }

        _pinnedKeys[peerId] = (publicKey, key); // bounded by the trusted set
        return key;
    }

    private string? Forged()
    {
        Interlocked.Increment(ref Forgeries);
        return null;
    }

    private string? Replayed()
    {
        Interlocked.Increment(ref Replays);
        return null;
    }

    private static string Base64Url(ReadOnlySpan<byte> bytes) =>
        Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static bool TryFromBase64Url(ReadOnlySpan<byte> text, Span<byte> destination, out int written)
    {
        written = 0;
        if (text.Length > 88)
            return false;
        Span<char> padded = stackalloc char[92];
        var length = 0;
        foreach (var b in text)
            padded[length++] = b switch { (byte)'-' => '+', (byte)'_' => '/', _ => (char)b };
        while (length % 4 != 0)
            padded[length++] = '=';
        // Canonical text only: the decoder ignores a last character's spare bits, so two texts could carry one tag.
        return Convert.TryFromBase64Chars(padded[..length], destination, out written)
            && Encoding.ASCII.GetString(text) == Base64Url(destination[..written]);
    }
}
