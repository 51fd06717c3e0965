namespace P2PLocal.Rpc;

/// <summary>
/// A value could not be serialized or deserialized because its type has no MessagePack formatter on this side (for
/// example a class without <c>[MessagePackObject]</c>, a member without <c>[Key]</c>, or an interface without
/// <c>[Union]</c>), or its formatter failed. Raised on the side that has the problem: by a proxy for a kwarg it
/// cannot write or a result it cannot read, and reported to the caller (as a <see cref="RemoteException"/> whose
/// <see cref="RemoteException.RemoteType"/> is this type) when the serving side cannot read a kwarg or write a result.
/// The generator reports most such types at compile time (P2P014, P2P015).
/// </summary>
public class SerializationFailedException : P2PException
{
    /// <summary>Creates the exception.</summary>
    public SerializationFailedException() { }

    /// <summary>Creates the exception with a message.</summary>
    public SerializationFailedException(string message) : base(message) { }

    /// <summary>Creates the exception with a message and its cause.</summary>
    public SerializationFailedException(string message, Exception? innerException) : base(message, innerException) { }

    /// <summary>The type that could not be serialized, as C# names it.</summary>
    public string? TypeName { get; init; }

    /// <summary>Where the value was: <c>kwarg 'point' of 'Move'</c>, <c>the result of 'Move'</c>.</summary>
    public string? Member { get; init; }
}
