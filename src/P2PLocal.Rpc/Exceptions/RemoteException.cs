namespace P2PLocal.Rpc;

/// <summary>The remote handler failed, or rejected the kwargs it was sent.</summary>
public class RemoteException : P2PException
{
    /// <summary>Creates the exception.</summary>
    public RemoteException() { }

    /// <summary>Creates the exception with a message.</summary>
    public RemoteException(string message) : base(message) { }

    /// <summary>Creates the exception with a message and its cause.</summary>
    public RemoteException(string message, Exception? innerException) : base(message, innerException) { }

    /// <summary>The full name of the exception type thrown on the remote side, such as <c>System.InvalidOperationException</c>.</summary>
    public string RemoteType { get; init; } = "";

    /// <summary>The message of the remote exception.</summary>
    public string RemoteMessage { get; init; } = "";
}
