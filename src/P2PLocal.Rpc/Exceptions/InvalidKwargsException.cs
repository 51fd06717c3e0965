namespace P2PLocal.Rpc;

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
