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
}

/// <summary>No peer of that name is known (it never announced itself, left, or expired).</summary>
public class PeerNotFoundException : P2PException
{
    /// <summary>Creates the exception.</summary>
    public PeerNotFoundException() { }

    /// <summary>Creates the exception with a message.</summary>
    public PeerNotFoundException(string message) : base(message) { }

    /// <summary>Creates the exception with a message and its cause.</summary>
    public PeerNotFoundException(string message, Exception? innerException) : base(message, innerException) { }

    /// <summary>The name that was asked for.</summary>
    public string? PeerName { get; init; }
}

/// <summary>The peer does not serve a function of that name.</summary>
public class MethodNotFoundException : P2PException
{
    /// <summary>Creates the exception.</summary>
    public MethodNotFoundException() { }

    /// <summary>Creates the exception with a message.</summary>
    public MethodNotFoundException(string message) : base(message) { }

    /// <summary>Creates the exception with a message and its cause.</summary>
    public MethodNotFoundException(string message, Exception? innerException) : base(message, innerException) { }

    /// <summary>The function that was asked for.</summary>
    public string? Function { get; init; }
}

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

/// <summary>The kwargs did not fit the function: a required one was missing, an unknown one was sent, or one had the wrong type.</summary>
public class InvalidKwargsException : RemoteException
{
    /// <summary>Creates the exception.</summary>
    public InvalidKwargsException() { }

    /// <summary>Creates the exception with a message.</summary>
    public InvalidKwargsException(string message) : base(message) { }

    /// <summary>Creates the exception with a message and its cause.</summary>
    public InvalidKwargsException(string message, Exception? innerException) : base(message, innerException) { }
}

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

/// <summary>A request or reply was larger than the frame limit of one side.</summary>
public class FrameTooLargeException : P2PException
{
    /// <summary>Creates the exception.</summary>
    public FrameTooLargeException() { }

    /// <summary>Creates the exception with a message.</summary>
    public FrameTooLargeException(string message) : base(message) { }

    /// <summary>Creates the exception with a message and its cause.</summary>
    public FrameTooLargeException(string message, Exception? innerException) : base(message, innerException) { }
}

/// <summary>
/// Two live nodes claim one name. Requests to that name fail with this until one of them leaves, and the newer of
/// the two nodes refuses to send requests until its name is unique again.
/// </summary>
public class NameConflictException : P2PException
{
    /// <summary>Creates the exception.</summary>
    public NameConflictException() { }

    /// <summary>Creates the exception with a message.</summary>
    public NameConflictException(string message) : base(message) { }

    /// <summary>Creates the exception with a message and its cause.</summary>
    public NameConflictException(string message, Exception? innerException) : base(message, innerException) { }

    /// <summary>The contested name.</summary>
    public string? PeerName { get; init; }
}
