namespace P2PLocal.Rpc.Hosting;

/// <summary>How a hosted node gets the object that serves the calls of a <c>[P2PService]</c>.</summary>
public enum P2PServiceLifetime
{
    /// <summary>
    /// One instance, built by dependency injection when the host starts, serves every call, from many threads at once
    /// (so it must be thread-safe). The default.
    /// </summary>
    Singleton,

    /// <summary>
    /// Each call gets its own dependency-injection scope and its own instance, disposed with the scope when the call
    /// ends, so scoped dependencies (a <c>DbContext</c>) work as in an ASP.NET Core request.
    /// </summary>
    ScopePerCall,
}
