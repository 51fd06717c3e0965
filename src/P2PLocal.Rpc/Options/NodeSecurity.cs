using System.Security.Cryptography;
using System.Text;

namespace P2PLocal.Rpc;

/// <summary>
/// Who a node trusts (issue 10): <see cref="Open"/> (anyone, in clear text), <see cref="SharedKey(string)"/> (every
/// node holding one network key) or <see cref="Pinned"/> (the node ids it was given). Secure nodes talk over mutually
/// authenticated TLS 1.3, sign their beacons, and ignore open nodes and other groups; see README "Security".
/// </summary>
/// <remarks>Immutable and thread-safe; one instance may serve several nodes. Its text form never shows a key.</remarks>
public sealed class NodeSecurity
{
    /// <summary>The fewest bytes a network key may have (128 bits).</summary>
    public const int MinKeyBytes = 16;

    /// <summary>The fewest characters a network key given as text may have.</summary>
    public const int MinKeyCharacters = 20;

    private static readonly byte[] s_salt = "P2PLocal.Rpc network key v1"u8.ToArray();

    private NodeSecurity(SecurityMode mode)
    {
        Mode = mode;
    }

    /// <summary>
    /// No security, today's behaviour and the default: every host that can reach the node can list it, call it and
    /// read its traffic. A node in <see cref="DiscoveryScope.Lan"/> scope logs one warning at start saying so.
    /// </summary>
    public static NodeSecurity Open { get; } = new(SecurityMode.Open);

    /// <summary>True for <see cref="Open"/>.</summary>
    public bool IsOpen => Mode == SecurityMode.Open;

    internal SecurityMode Mode { get; }

    /// <summary>SharedKey: the key that seals beacons (HKDF of the network key).</summary>
    internal byte[] BeaconKey { get; private init; } = [];

    /// <summary>SharedKey: the key that proves a certificate belongs to a member (HKDF of the network key).</summary>
    internal byte[] CertificateKey { get; private init; } = [];

    /// <summary>Pinned: this node's own identity. SharedKey: null, each node makes a fresh one when it starts.</summary>
    internal NodeIdentity? Identity { get; private init; }

    /// <summary>Pinned: the ids trusted, in canonical form.</summary>
    internal IReadOnlySet<string> TrustedIds { get; private init; } = new HashSet<string>();

    /// <summary>
    /// Every node holding <paramref name="networkKey"/> trusts every other: nothing else to configure. The key is used
    /// as its UTF-8 bytes; keep it secret, as a password.
    /// </summary>
    /// <param name="networkKey">At least <see cref="MinKeyCharacters"/> characters; make one with <see cref="CreateNetworkKey"/>.</param>
    /// <exception cref="ArgumentException">The key is too short to be safe.</exception>
    public static NodeSecurity SharedKey(string networkKey)
    {
        ArgumentNullException.ThrowIfNull(networkKey);
        if (networkKey.Trim().Length < MinKeyCharacters)
            throw new ArgumentException(
                $"The network key has {networkKey.Trim().Length} characters; at least {MinKeyCharacters} are needed so that it cannot be guessed. " +
                "Make a good one with NodeSecurity.CreateNetworkKey() (or 'openssl rand -base64 32') and give the same key to every node of the group.",
                nameof(networkKey));
        return FromKey(Encoding.UTF8.GetBytes(networkKey));
    }

    /// <inheritdoc cref="SharedKey(string)"/>
    /// <param name="networkKey">At least <see cref="MinKeyBytes"/> random bytes.</param>
    public static NodeSecurity SharedKey(ReadOnlySpan<byte> networkKey)
    {
        if (networkKey.Length < MinKeyBytes)
            throw new ArgumentException(
                $"The network key has {networkKey.Length} bytes; at least {MinKeyBytes} random bytes are needed so that it cannot be guessed. " +
                "Make a good one with RandomNumberGenerator.GetBytes(32) (or NodeSecurity.CreateNetworkKey() as text) and give the same key to every node of the group.",
                nameof(networkKey));
        return FromKey(networkKey);
    }

    private static NodeSecurity FromKey(ReadOnlySpan<byte> key) => new(SecurityMode.SharedKey)
    {
        BeaconKey = HKDF.DeriveKey(HashAlgorithmName.SHA256, key.ToArray(), 32, s_salt, "beacon"u8.ToArray()),
        CertificateKey = HKDF.DeriveKey(HashAlgorithmName.SHA256, key.ToArray(), 32, s_salt, "certificate"u8.ToArray()),
    };

    /// <summary>
    /// The node proves <paramref name="identity"/> and trusts only the nodes whose <see cref="NodeIdentity.Id"/> is
    /// in <paramref name="trustedIds"/> (case, dashes and spaces do not matter).
    /// </summary>
    /// <exception cref="ArgumentException">An entry is not a node id.</exception>
    public static NodeSecurity Pinned(NodeIdentity identity, IEnumerable<string> trustedIds)
    {
        ArgumentNullException.ThrowIfNull(identity);
        ArgumentNullException.ThrowIfNull(trustedIds);
        var trusted = new HashSet<string>(StringComparer.Ordinal);
        foreach (var id in trustedIds)
        {
            trusted.Add(NodeIdentity.Normalize(id ?? "") ?? throw new ArgumentException(
                $"'{id}' is not a node id: an id is 32 base32 characters (A-Z, 2-7), as NodeIdentity.Id prints it.", nameof(trustedIds)));
        }

        return new NodeSecurity(SecurityMode.Pinned) { Identity = identity, TrustedIds = trusted };
    }

    /// <summary>A new random network key (32 bytes, base64) for <see cref="SharedKey(string)"/>.</summary>
    public static string CreateNetworkKey() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    /// <summary>The mode, and for <see cref="Pinned"/> this node's id; never a key.</summary>
    public override string ToString() => Mode switch
    {
        SecurityMode.Pinned => $"Pinned (id {Identity!.Id}, {TrustedIds.Count} trusted)",
        _ => Mode.ToString(),
    };
}

/// <summary>The kinds of <see cref="NodeSecurity"/>.</summary>
internal enum SecurityMode
{
    Open,
    SharedKey,
    Pinned,
}
