namespace P2PLocal.Rpc;

/// <summary>The base of every error this library raises about peers and requests.</summary>
public class P2PException : Exception
{
    /// <summary>Creates the exception.</summary>
    public P2PException() { }

    /// <summary>Creates the exception with a message.</summary>
    public P2PException(string message) : base(message) { }

    /// <summary>Creates the exception with a message and its cause.</summary>
    public P2PException(string message, Exception? innerException) : base(message, innerException) { }

    /// <summary>The name of the peer the error is about, when there is one (null for errors of this node alone).</summary>
    public string? PeerName { get; init; }
}
