using System.Security.Cryptography;
using System.Text;

namespace P2PLocal.Rpc;

/// <summary>
/// A node's own key pair (ECDSA P-256) and the id derived from it: the proof a node shows in secure mode
/// (<see cref="NodeSecurity.Pinned"/>), like a Syncthing device id or a libp2p peer id.
/// </summary>
/// <remarks>
/// <see cref="Id"/> is the SHA-256 hash of the public key (its DER SubjectPublicKeyInfo), first 160 bits, in base32
/// grouped by four: short enough to read out, long enough that nobody can make a key with the same id. Immutable and
/// thread-safe; the private key never leaves the object except through <see cref="LoadOrCreate"/>'s file.
/// </remarks>
public sealed class NodeIdentity
{
    private const int IdBytes = 20;
    private const string PemLabel = "PRIVATE KEY";

    private NodeIdentity(ECDsa key)
    {
        Key = key;
        PublicKeyInfo = key.ExportSubjectPublicKeyInfo();
        Id = IdOf(PublicKeyInfo);
    }

    /// <summary>The id peers pin: a hash of the public key, such as <c>MFRG-GZDF-MZTW-Q2LK-NNWG-23TP-OBYX-E4ZT</c>.</summary>
    public string Id { get; }

    internal ECDsa Key { get; }

    internal byte[] PublicKeyInfo { get; }

    /// <summary>Makes a new identity that lives in memory only (a new id on every run).</summary>
    public static NodeIdentity Create() => new(ECDsa.Create(ECCurve.NamedCurves.nistP256));

    /// <summary>
    /// Loads the identity kept in <paramref name="path"/> (a PKCS#8 PEM private key), or, when the file does not exist,
    /// makes one and writes it there, readable by its owner only (mode 0600 on Unix).
    /// </summary>
    /// <exception cref="InvalidDataException">
    /// The file exists but holds no valid P-256 private key (it was edited or damaged), or others may read it. A new
    /// identity is never made silently in its place: the id peers pinned would change.
    /// </exception>
    /// <exception cref="IOException">The file cannot be read or written.</exception>
    /// <exception cref="UnauthorizedAccessException">This process may not read or create the file.</exception>
    public static NodeIdentity LoadOrCreate(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (File.Exists(path))
            return Load(path);
        var identity = Create();
        var pem = PemEncoding.Write(PemLabel, identity.Key.ExportPkcs8PrivateKey());
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var file = new FileStream(path, options))
        {
            file.Write(Encoding.ASCII.GetBytes(pem));
            file.Write("\n"u8);
        }

        return identity;
    }

    private static NodeIdentity Load(string path)
    {
        if (!OperatingSystem.IsWindows())
        {
            var mode = File.GetUnixFileMode(path);
            if ((mode & (UnixFileMode.GroupRead | UnixFileMode.OtherRead | UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) != 0)
                throw new InvalidDataException($"The key file '{path}' may be read or written by other users; anyone who reads it can act as this node. Run 'chmod 600 {path}'.");
        }

        var text = File.ReadAllText(path);
        var key = ECDsa.Create();
        try
        {
            if (!PemEncoding.TryFind(text, out var fields) || text[fields.Label] != PemLabel)
                throw new CryptographicException("no '-----BEGIN PRIVATE KEY-----' block");
            key.ImportPkcs8PrivateKey(Convert.FromBase64String(text[fields.Base64Data]), out _);
            if (key.KeySize != 256 || key.ExportParameters(false).Curve.Oid.Value != ECCurve.NamedCurves.nistP256.Oid.Value)
                throw new CryptographicException("the key is not an ECDSA P-256 key");
            // A damaged key may still import: prove it signs what its public key verifies.
            var probe = key.SignData("p2plocal identity check"u8, HashAlgorithmName.SHA256);
            if (!key.VerifyData("p2plocal identity check"u8, probe, HashAlgorithmName.SHA256))
                throw new CryptographicException("the private and public halves do not match");
        }
        catch (Exception e) when (e is CryptographicException or FormatException)
        {
            key.Dispose();
            throw new InvalidDataException(
                $"The key file '{path}' does not hold a valid node identity ({e.Message}). It was edited or damaged. Restore it from a backup; " +
                "or delete it to make a new identity, and give its new id to every peer that pinned the old one.", e);
        }

        return new NodeIdentity(key);
    }

    /// <summary>The id of a public key given as DER SubjectPublicKeyInfo.</summary>
    internal static string IdOf(ReadOnlySpan<byte> publicKeyInfo)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(publicKeyInfo, hash);
        return Format(Base32(hash[..IdBytes]));
    }

    /// <summary>An id as users may write it (any case, dashes or spaces anywhere) in its canonical form, or null if it is not an id.</summary>
    internal static string? Normalize(string id)
    {
        var compact = new StringBuilder(id.Length);
        foreach (var c in id)
        {
            if (c is '-' or ' ')
                continue;
            var upper = char.ToUpperInvariant(c);
            if (upper is not ((>= 'A' and <= 'Z') or (>= '2' and <= '7')))
                return null;
            compact.Append(upper);
        }

        return compact.Length == IdBytes * 8 / 5 ? Format(compact.ToString()) : null;
    }

    private static string Format(string compact)
    {
        var text = new StringBuilder(compact.Length + compact.Length / 4);
        for (var i = 0; i < compact.Length; i += 4)
        {
            if (i > 0)
                text.Append('-');
            text.Append(compact, i, Math.Min(4, compact.Length - i));
        }

        return text.ToString();
    }

    private static string Base32(ReadOnlySpan<byte> bytes)
    {
        const string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        var text = new StringBuilder((bytes.Length * 8 + 4) / 5);
        int buffer = 0, bits = 0;
        foreach (var b in bytes)
        {
            buffer = (buffer << 8) | b;
            bits += 8;
            while (bits >= 5)
            {
                text.Append(alphabet[(buffer >> (bits - 5)) & 31]);
                bits -= 5;
            }
        }

        if (bits > 0)
            text.Append(alphabet[(buffer << (5 - bits)) & 31]);
        return text.ToString();
    }

    /// <summary>The id (never the key).</summary>
    public override string ToString() => Id;
}
