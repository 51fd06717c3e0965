namespace P2PLocal.Rpc;

/// <summary>Sets how a method of a <see cref="P2PServiceAttribute"/> service is named on the wire.</summary>
/// <remarks>
/// Use it to give overloads distinct names, or to match a name a peer in another language calls.
/// Names must be non-empty and must not start with <c>$</c> (reserved for built-in functions).
/// </remarks>
[AttributeUsage(AttributeTargets.Method, Inherited = false, AllowMultiple = false)]
public sealed class P2PFunctionAttribute : Attribute
{
    /// <summary>The function's wire name; <see langword="null"/> keeps the method name.</summary>
    public string? Name { get; set; }

    /// <summary>
    /// True when running the function twice has the same effect as running it once (a read, or a write of the same
    /// value). A call through <see cref="PeerDirectory.Any{TService}"/> whose connection is lost after the request was
    /// written is sent again to another peer only for such a function; others fail with
    /// <see cref="PeerConnectionException"/>, since they may have run. Not part of the contract fingerprint.
    /// </summary>
    public bool Idempotent { get; set; }
}
