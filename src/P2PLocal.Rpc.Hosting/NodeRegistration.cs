using Microsoft.Extensions.DependencyInjection;
using P2PLocal.Rpc.Dispatch;

namespace P2PLocal.Rpc.Hosting;

/// <summary>One <c>AddService</c> or <c>AddFunction</c> of the builder, applied to the node when the host starts.</summary>
internal abstract class NodeRegistration
{
    public abstract void Apply(Node node, IServiceProvider services);
}

/// <summary>A function given as a delegate.</summary>
internal sealed class FunctionRegistration(string name, Func<IReadOnlyDictionary<string, object?>, CancellationToken, ValueTask<object?>> handler) : NodeRegistration
{
    public override void Apply(Node node, IServiceProvider services) => node.Register(name, handler);
}

/// <summary>A <c>[P2PService]</c> served as <typeparamref name="TContract"/> by a <typeparamref name="TImplementation"/> from DI.</summary>
internal sealed class ServiceRegistration<TContract, TImplementation>(P2PServiceLifetime lifetime) : NodeRegistration
    where TContract : class
    where TImplementation : class, TContract
{
    public override void Apply(Node node, IServiceProvider services)
    {
        if (lifetime == P2PServiceLifetime.Singleton)
            node.Register<TContract>(services.GetRequiredService<TImplementation>());
        else
            node.Register(new ScopePerCallDispatcher(services.GetRequiredService<IServiceScopeFactory>()));
    }

    /// <summary>Serves each call with an instance from a scope of its own.</summary>
    private sealed class ScopePerCallDispatcher : IServiceDispatcher
    {
        private readonly IServiceScopeFactory _scopes;

        public ScopePerCallDispatcher(IServiceScopeFactory scopes)
        {
            _scopes = scopes;
            // The function list comes from a dispatcher, and a dispatcher from an instance: build one now, which also
            // fails the host's start (not the first call) when DI cannot build the service.
            using var scope = scopes.CreateScope();
            Functions = CreateDispatcher(scope.ServiceProvider).Functions;
        }

        public IReadOnlyList<FunctionDescriptor> Functions { get; }

        public async ValueTask InvokeAsync(FunctionCall call)
        {
            var scope = _scopes.CreateAsyncScope();
            await using (scope.ConfigureAwait(false))
                await CreateDispatcher(scope.ServiceProvider).InvokeAsync(call).ConfigureAwait(false);
        }

        private static IServiceDispatcher CreateDispatcher(IServiceProvider services)
        {
            var service = services.GetRequiredService<TImplementation>();
            if (ServiceRegistry.TryCreateDispatcher<TContract>(service, out var dispatcher))
                return dispatcher;
            return service as IServiceDispatcher ?? throw new InvalidOperationException(
                $"No generated dispatcher for '{typeof(TContract)}' or '{service.GetType()}'. Mark the class (or its contract interface) " +
                "[P2PService], make the class partial, and reference the P2PLocal.Rpc package (it carries the generator).");
        }
    }
}
