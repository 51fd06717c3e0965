using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace P2PLocal.Rpc.Security;

/// <summary>
/// One secure node's TLS side (issue 10): its self-signed certificate over its <see cref="NodeIdentity"/> key, and the
/// check each side makes of the other's certificate during the handshake, before a single frame is read or sent.
/// </summary>
/// <remarks>
/// The certificate is only a carrier for the public key, as in Syncthing and libp2p: no chain, name or date is
/// trusted. What is trusted: in <see cref="SecurityMode.Pinned"/> mode, the id of the key being in the pinned set; in
/// <see cref="SecurityMode.SharedKey"/> mode, a proof extension that holds HMAC-SHA256(certificate key, public key),
/// which only holders of the network key can make. TLS 1.3 itself proves that the peer holds the private key.
/// Thread-safe.
/// </remarks>
internal sealed class TlsChannel : IDisposable
{
    /// <summary>The first byte of every TLS handshake record (a ClientHello starts with it).</summary>
    public const byte HandshakeRecord = 0x16;

    /// <summary>The certificate extension carrying the network-key proof (an OID under 2.25, made from a UUID).</summary>
    public const string ProofOid = "2.25.327383332862027060843948246305668878060";

    private const string TargetHost = "p2plocal";
    private readonly NodeSecurity _security;
    private readonly X509Certificate2 _certificate;
    private readonly SslServerAuthenticationOptions _serverOptions;

    public TlsChannel(NodeSecurity security, NodeIdentity identity)
    {
        _security = security;
        Identity = identity;
        var request = new CertificateRequest("CN=P2PLocal.Rpc " + identity.Id, identity.Key, HashAlgorithmName.SHA256);
        if (security.Mode == SecurityMode.SharedKey)
            request.CertificateExtensions.Add(new X509Extension(ProofOid, Proof(identity.PublicKeyInfo), critical: false));
        var now = DateTimeOffset.UtcNow;
        _certificate = request.CreateSelfSigned(now.AddDays(-1), now.AddYears(20));
        _serverOptions = new SslServerAuthenticationOptions
        {
            ServerCertificateContext = SslStreamCertificateContext.Create(_certificate, [], offline: true),
            ClientCertificateRequired = true,
            EnabledSslProtocols = SslProtocols.Tls13,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            CertificateChainPolicy = NoChain(),
            RemoteCertificateValidationCallback = (_, certificate, _, _) => Check(certificate, out _) is null,
        };
    }

    public NodeIdentity Identity { get; }

    /// <summary>Runs the server side of the handshake and returns the caller's verified id.</summary>
    /// <exception cref="AuthenticationException">The caller is not trusted, or the handshake failed.</exception>
    public async Task<string> AuthenticateAsServerAsync(SslStream stream, CancellationToken cancellationToken)
    {
        await stream.AuthenticateAsServerAsync(_serverOptions, cancellationToken).ConfigureAwait(false);
        return IdOf(stream.RemoteCertificate) ?? throw new AuthenticationException("The caller sent no certificate.");
    }

    /// <summary>
    /// Runs the client side of the handshake over <paramref name="socket"/> (the returned stream owns it) and checks that
    /// the server is trusted and, when <paramref name="expectedPeerId"/> is given, that it is the node discovered under
    /// that name.
    /// </summary>
    /// <exception cref="PeerAuthenticationException">The server is not trusted, is another node, or speaks no TLS (an open node).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired.</exception>
    public async Task<(SslStream Stream, string PeerId)> AuthenticateAsClientAsync(Socket socket, string peerName, IPEndPoint endPoint,
        string? expectedPeerId, CancellationToken cancellationToken)
    {
        string? reason = null, peerId = null;
        var recorder = new HandshakeRecorder(new NetworkStream(socket, ownsSocket: true));
        var stream = new SslStream(recorder, leaveInnerStreamOpen: false);
        var options = new SslClientAuthenticationOptions
        {
            TargetHost = TargetHost,
            ClientCertificates = [_certificate],
            LocalCertificateSelectionCallback = (_, _, _, _, _) => _certificate,
            EnabledSslProtocols = SslProtocols.Tls13,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
            CertificateChainPolicy = NoChain(),
            RemoteCertificateValidationCallback = (_, certificate, _, _) =>
            {
                reason = Check(certificate, out peerId);
                if (reason is null && expectedPeerId is not null && peerId != expectedPeerId)
                    reason = $"the node there has id {peerId}, not {expectedPeerId}, the id discovered under the name '{peerName}'; " +
                             "another trusted node answers at its endpoint (it moved, or restarted with a new identity). Retry once discovery catches up.";
                return reason is null;
            },
        };
        try
        {
            await stream.AuthenticateAsClientAsync(options, cancellationToken).ConfigureAwait(false);
            recorder.Stop();
            return (stream, peerId!);
        }
        catch (Exception e) when (e is AuthenticationException or IOException)
        {
            var refusal = reason is null ? Refusal(recorder.Recorded, peerName, endPoint) : null;
            await stream.DisposeAsync().ConfigureAwait(false);
            if (refusal is not null)
                throw refusal;
            throw new PeerAuthenticationException(reason is not null
                ? $"Peer '{peerName}' at {endPoint} is not trusted: {reason}"
                : $"Peer '{peerName}' at {endPoint} did not complete a TLS handshake: it runs in open mode (NodeSecurity.Open) or is no P2PLocal.Rpc node. " +
                  "Give every node of the group the same NodeSecurity.", e);
        }
        catch
        {
            await stream.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// No chain is trusted (the key is what is checked), so the chain is built against an empty custom root store,
    /// without downloads or revocation: the system store is never loaded during a handshake.
    /// </summary>
    private static X509ChainPolicy NoChain() => new()
    {
        TrustMode = X509ChainTrustMode.CustomRootTrust,
        RevocationMode = X509RevocationMode.NoCheck,
        DisableCertificateDownloads = true,
    };

    /// <summary>
    /// The server answered our ClientHello with a plaintext refusal frame (it is full, or refused our address) rather
    /// than TLS: the exception a caller gets for it, or null when the bytes are not one.
    /// </summary>
    private static P2PException? Refusal(ReadOnlySpan<byte> received, string peerName, IPEndPoint endPoint)
    {
        if (received.Length < 5 || received[0] == HandshakeRecord)
            return null;
        var length = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(received);
        if (length == 0 || length > received.Length - 4)
            return null;
        try
        {
            var reader = new MessagePack.MessagePackReader(received.Slice(4, (int)length).ToArray());
            if (Protocol.Messages.ReadKind(ref reader, out var count) != Protocol.MessageKind.Error || reader.ReadUInt32() != 0)
                return null;
            var (code, type, message) = Protocol.Messages.ReadError(ref reader, count);
            return code == Protocol.ErrorCode.Busy
                ? new PeerBusyException($"Peer '{peerName}' at {endPoint} refused the connection: {message}")
                : new PeerConnectionException($"Peer '{peerName}' at {endPoint} refused the connection: {type}: {message}");
        }
        catch (Exception e) when (Protocol.MalformedInput.IsMalformed(e))
        {
            return null;
        }
    }

    /// <summary>Why a certificate is not trusted, or null when it is (with its id).</summary>
    public string? Check(X509Certificate? certificate, out string? peerId)
    {
        peerId = null;
        if (certificate is not X509Certificate2 x509)
            return "it sent no certificate";
        byte[] publicKeyInfo;
        using (var key = x509.GetECDsaPublicKey())
        {
            if (key is null || key.KeySize != 256)
                return "its certificate key is not ECDSA P-256";
            publicKeyInfo = key.ExportSubjectPublicKeyInfo();
        }

        peerId = NodeIdentity.IdOf(publicKeyInfo);
        switch (_security.Mode)
        {
            case SecurityMode.Pinned:
                return _security.TrustedIds.Contains(peerId) ? null
                    : $"its id {peerId} is not among the {_security.TrustedIds.Count} ids pinned here; add it to NodeSecurity.Pinned's trusted ids if you trust that node";
            case SecurityMode.SharedKey:
                var proof = x509.Extensions[ProofOid]?.RawData;
                return proof is not null && CryptographicOperations.FixedTimeEquals(proof, Proof(publicKeyInfo)) ? null
                    : "it does not hold this group's network key (no valid key proof in its certificate); give both nodes the same NodeSecurity.SharedKey";
            default:
                return "this node is open";
        }
    }

    /// <summary>The id of a certificate's key, or null when it has none.</summary>
    public static string? IdOf(X509Certificate? certificate)
    {
        if (certificate is not X509Certificate2 x509)
            return null;
        using var key = x509.GetECDsaPublicKey();
        return key is null ? null : NodeIdentity.IdOf(key.ExportSubjectPublicKeyInfo());
    }

    private byte[] Proof(byte[] publicKeyInfo) => HMACSHA256.HashData(_security.CertificateKey, publicKeyInfo);

    public void Dispose() => _certificate.Dispose();
}
