namespace P2PLocal.Rpc;

/// <summary>The peer refused the request because the connection already runs as many requests as the peer allows.</summary>
public class PeerBusyException : P2PException
{
    /// <summary>Creates the exception.</summary>
    public PeerBusyException() { }

    /// <summary>Creates the exception with a message.</summary>
    public PeerBusyException(string message) : base(message) { }

    /// <summary>Creates the exception with a message and its cause.</summary>
    public PeerBusyException(string message, Exception? innerException) : base(message, innerException) { }
}
