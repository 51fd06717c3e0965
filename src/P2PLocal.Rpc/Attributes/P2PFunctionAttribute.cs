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
    /// Runs the function on the connection's read loop, as its request is read, instead of queueing it to the thread
    /// pool: no thread hop per call, and the replies to one read go out in one send (issue 16). Default
    /// <see langword="false"/>.
    /// </summary>
    /// <remarks>
    /// Only for functions that return at once and never block: no I/O, no waiting on locks, events or other tasks,
    /// no <c>Thread.Sleep</c>. While an inline function runs, no other request of its connection is read, so one that
    /// blocks stalls every call of that caller (head-of-line blocking) and delays its cancellations; functions left
    /// at the default always run concurrently on the thread pool. An async function runs inline up to its first
    /// await that does not complete at once, and continues wherever that await resumes. A stream (<c>IAsyncEnumerable&lt;T&gt;</c>)
    /// always runs on the thread pool.
    /// </remarks>
    public bool Inline { get; set; }

    /// <summary>
    /// True when running the function twice has the same effect as running it once (a read, or a write of the same
    /// value). A call through <see cref="PeerDirectory.Any{TService}"/> whose connection is lost after the request was
    /// written is sent again to another peer only for such a function; others fail with
    /// <see cref="PeerConnectionException"/>, since they may have run. Not part of the contract fingerprint.
    /// </summary>
    public bool Idempotent { get; set; }
}
