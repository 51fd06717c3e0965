namespace P2PLocal.Rpc;

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
    /// <remarks>The same value as <see cref="P2PException.PeerName"/> (declared here too since this type shipped with it).</remarks>
    public new string? PeerName { get => base.PeerName; init => base.PeerName = value; }
}
