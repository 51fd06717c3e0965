namespace P2PLocal.Rpc;

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
