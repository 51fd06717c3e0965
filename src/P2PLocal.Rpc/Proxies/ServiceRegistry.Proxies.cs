using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;

namespace P2PLocal.Rpc.Dispatch;

// The proxy half of the registry: proxies call through PeerClient, which sits above Node (docs/architecture.md).
public static partial class ServiceRegistry
{
    private static readonly ConcurrentDictionary<Type, Func<PeerClient, object>> s_proxies = new();

    /// <summary>Registers how to build the proxy of contract <typeparamref name="TService"/>. A later call for the same type wins.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="factory"/> is null.</exception>
    public static void AddProxy<TService>(Func<PeerClient, TService> factory)
        where TService : class
    {
        ArgumentNullException.ThrowIfNull(factory);
        s_proxies[typeof(TService)] = factory;
    }

    /// <summary>Builds the proxy of contract <typeparamref name="TService"/> that calls through <paramref name="client"/>.</summary>
    public static bool TryCreateProxy<TService>(PeerClient client, [NotNullWhen(true)] out TService? proxy)
        where TService : class
    {
        ArgumentNullException.ThrowIfNull(client);
        if (TryFind(s_proxies, typeof(TService), out var factory))
        {
            proxy = (TService)factory(client);
            return true;
        }

        proxy = null;
        return false;
    }
}
