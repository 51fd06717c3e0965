namespace P2PLocal.Rpc;

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
    /// <remarks>The same value as <see cref="P2PException.PeerName"/> (declared here too since this type shipped with it).</remarks>
    public new string? PeerName { get => base.PeerName; init => base.PeerName = value; }
}
