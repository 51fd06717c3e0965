using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace P2PLocal.Rpc.Hosting;

/// <summary>
/// Adds what a hosted node serves: <c>[P2PService]</c> classes built by dependency injection, and functions given as
/// delegates. Returned by <c>AddP2PNode</c>; every method returns the builder, for chaining. Everything is
/// registered on the node when the host starts, before <c>StartAsync</c> returns.
/// </summary>
/// <remarks>Not thread-safe: use it while the service collection is being built, as the collection itself.</remarks>
public sealed class P2PNodeBuilder
{
    internal P2PNodeBuilder(IServiceCollection services) => Services = services;

    /// <summary>The service collection the node is registered in.</summary>
    public IServiceCollection Services { get; }

    /// <summary>
    /// Serves every function of the <c>[P2PService]</c> class <typeparamref name="TService"/>, one instance built by
    /// dependency injection (constructor injection) for all calls. See <see cref="P2PServiceLifetime.Singleton"/>.
    /// </summary>
    /// <typeparam name="TService">A partial class marked <c>[P2PService]</c>.</typeparam>
    public P2PNodeBuilder AddService<TService>()
        where TService : class =>
        AddService<TService, TService>(P2PServiceLifetime.Singleton);

    /// <summary>Serves every function of the <c>[P2PService]</c> class <typeparamref name="TService"/>, with the lifetime given.</summary>
    /// <typeparam name="TService">A partial class marked <c>[P2PService]</c>.</typeparam>
    /// <param name="lifetime">One instance for all calls, or a scope and an instance per call.</param>
    public P2PNodeBuilder AddService<TService>(P2PServiceLifetime lifetime)
        where TService : class =>
        AddService<TService, TService>(lifetime);

    /// <summary>
    /// Serves the <c>[P2PService]</c> contract <typeparamref name="TContract"/> (an interface) with
    /// <typeparamref name="TImplementation"/>, built by dependency injection.
    /// </summary>
    /// <typeparam name="TContract">A <c>[P2PService]</c> interface (or class).</typeparam>
    /// <typeparam name="TImplementation">The class that implements it.</typeparam>
    /// <param name="lifetime">One instance for all calls (the default), or a scope and an instance per call.</param>
    /// <remarks>
    /// <typeparamref name="TImplementation"/> is added to the service collection as a singleton (or scoped, for
    /// <see cref="P2PServiceLifetime.ScopePerCall"/>) unless it is registered already. A service registered twice,
    /// or two services with a function of the same name, fail the host's start with <see cref="ArgumentException"/>.
    /// </remarks>
    public P2PNodeBuilder AddService<TContract, TImplementation>(P2PServiceLifetime lifetime = P2PServiceLifetime.Singleton)
        where TContract : class
        where TImplementation : class, TContract
    {
        if (lifetime == P2PServiceLifetime.Singleton)
            Services.TryAddSingleton<TImplementation>();
        else
            Services.TryAddScoped<TImplementation>();
        Services.AddSingleton<NodeRegistration>(new ServiceRegistration<TContract, TImplementation>(lifetime));
        return this;
    }

    /// <summary>Serves a function that takes the kwargs dictionary and returns a result, as <see cref="Node.Register(string, Func{IReadOnlyDictionary{string, object}, object})"/>.</summary>
    /// <param name="name">The function's name (not empty, not starting with <c>$</c>).</param>
    /// <param name="handler">The function; it may be called from many threads at once.</param>
    /// <exception cref="ArgumentException"><paramref name="name"/> is empty.</exception>
    public P2PNodeBuilder AddFunction(string name, Func<IReadOnlyDictionary<string, object?>, object?> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        return AddFunction(name, (kwargs, _) => new ValueTask<object?>(handler(kwargs)));
    }

    /// <summary>Serves an async function that takes the kwargs dictionary and the request's cancellation token.</summary>
    /// <param name="name">The function's name (not empty, not starting with <c>$</c>).</param>
    /// <param name="handler">The function; it may be called from many threads at once.</param>
    /// <exception cref="ArgumentException"><paramref name="name"/> is empty.</exception>
    public P2PNodeBuilder AddFunction(string name, Func<IReadOnlyDictionary<string, object?>, CancellationToken, ValueTask<object?>> handler)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(handler);
        Services.AddSingleton<NodeRegistration>(new FunctionRegistration(name, handler));
        return this;
    }
}
