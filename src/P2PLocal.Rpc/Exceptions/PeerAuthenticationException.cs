namespace P2PLocal.Rpc;

/// <summary>
/// A peer could not prove that it is trusted (another network key, an id that is not pinned, a certificate that does
/// not match the node discovered under that name), or the two nodes run different security modes (open and secure).
/// The message names the cause and the fix. Nothing was sent to the peer.
/// </summary>
public class PeerAuthenticationException : P2PException
{
    /// <summary>Creates the exception.</summary>
    public PeerAuthenticationException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public PeerAuthenticationException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and its cause.</summary>
    public PeerAuthenticationException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
