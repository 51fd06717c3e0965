namespace P2PLocal.Rpc;

/// <summary>
/// A typed proxy found that the peer serves its contract differently (another version of the service, or another
/// service with the same function names), so the call was not sent. Rebuild both sides from the same contract.
/// </summary>
public class ContractMismatchException : P2PException
{
    /// <summary>Creates the exception.</summary>
    public ContractMismatchException() { }

    /// <summary>Creates the exception with a message.</summary>
    public ContractMismatchException(string message) : base(message) { }

    /// <summary>Creates the exception with a message and its cause.</summary>
    public ContractMismatchException(string message, Exception? innerException) : base(message, innerException) { }

    /// <summary>The peer that was called.</summary>
    /// <remarks>The same value as <see cref="P2PException.PeerName"/> (declared here too since this type shipped with it).</remarks>
    public new string? PeerName { get => base.PeerName; init => base.PeerName = value; }

    /// <summary>The contract (the proxy's interface name) the caller expected.</summary>
    public string? Contract { get; init; }
}
