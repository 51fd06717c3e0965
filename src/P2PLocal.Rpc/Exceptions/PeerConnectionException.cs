namespace P2PLocal.Rpc;

/// <summary>The connection to the peer could not be made or was lost before the reply came.</summary>
public class PeerConnectionException : P2PException
{
    /// <summary>Creates the exception.</summary>
    public PeerConnectionException() { }

    /// <summary>Creates the exception with a message.</summary>
    public PeerConnectionException(string message) : base(message) { }

    /// <summary>Creates the exception with a message and its cause.</summary>
    public PeerConnectionException(string message, Exception? innerException) : base(message, innerException) { }
}
