namespace P2PLocal.Rpc;

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
