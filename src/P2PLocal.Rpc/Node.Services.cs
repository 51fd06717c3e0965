using P2PLocal.Rpc.Dispatch;

namespace P2PLocal.Rpc;

public sealed partial class Node
{
    /// <summary>
    /// Registers every function of a <c>[P2PService]</c> service, through the dispatcher the source generator emitted
    /// for it (no reflection).
    /// </summary>
    /// <typeparam name="TService">
    /// The <c>[P2PService]</c> class, or a <c>[P2PService]</c> interface the service implements.
    /// </typeparam>
    /// <param name="service">The object whose methods serve the calls; it must be safe to call from many threads.</param>
    /// <returns>This node.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="service"/> is null.</exception>
    /// <exception cref="InvalidOperationException">
    /// No dispatcher was generated for <typeparamref name="TService"/> or the service's class.
    /// </exception>
    /// <exception cref="ArgumentException">A function name is already registered; nothing is registered then.</exception>
    public Node Register<TService>(TService service)
        where TService : class
    {
        ArgumentNullException.ThrowIfNull(service);
        if (ServiceRegistry.TryCreateDispatcher(service, out var dispatcher))
            return Register(dispatcher);
        // A hand-written dispatcher of a concrete type binds to this overload rather than Register(IServiceDispatcher).
        if (service is IServiceDispatcher handWritten)
            return Register(handWritten);
        throw new InvalidOperationException(
            $"No generated dispatcher for '{typeof(TService)}' or '{service.GetType()}'. Mark the class (or its contract interface) " +
            "[P2PService], make the class partial, and make sure the project references the P2PLocal.Rpc generator " +
            "(the P2PLocal.Rpc package carries it). To serve an implementation of a [P2PService] interface, register it as " +
            "that interface: node.Register<IMyService>(implementation).");
    }
}
