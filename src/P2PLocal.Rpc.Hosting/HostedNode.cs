using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace P2PLocal.Rpc.Hosting;

/// <summary>
/// Owns the host's node: started the first time anything asks for it (the hosted service at the latest), so
/// <see cref="Node"/> and <see cref="PeerDirectory"/> can be injected anywhere, hosted services' constructors included.
/// The container disposes it, so the node stops even when the host's start failed after the node started.
/// </summary>
internal sealed class HostedNode : IAsyncDisposable, IDisposable
{
    private readonly Lazy<Node> _node;

    public HostedNode(IOptions<P2PNodeOptions> options, IServiceProvider services)
    {
        _node = new Lazy<Node>(() =>
        {
            var nodeOptions = options.Value.ToNodeOptions(services.GetService<ILoggerFactory>(), services.GetService<TimeProvider>());
            // Node.StartAsync binds, announces and then checks the name for NodeOptions.NameCheckWindow (100 ms): the
            // first resolution blocks for that long. Resolving Node from DI has no async form.
            return Node.StartAsync(nodeOptions).GetAwaiter().GetResult();
        }, LazyThreadSafetyMode.ExecutionAndPublication);
    }

    public Node Node => _node.Value;

    public bool IsStarted => _node.IsValueCreated;

    public ValueTask DisposeAsync() => IsStarted ? _node.Value.DisposeAsync() : default;

    /// <summary>For a container disposed synchronously: blocks until the node shut down (see <see cref="Node.Shutdown"/>).</summary>
    public void Dispose()
    {
        if (IsStarted)
            _node.Value.Dispose();
    }
}

/// <summary>
/// Starts the node with the host and registers what the builder added; stops it with the host: a goodbye to peers,
/// then running requests finish within <see cref="NodeOptions.ShutdownGracePeriod"/> or the host's shutdown timeout,
/// whichever ends first.
/// </summary>
internal sealed class NodeHostedService(HostedNode hosted, IEnumerable<NodeRegistration> registrations, IServiceProvider services) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var node = hosted.Node;
        foreach (var registration in registrations)
            registration.Apply(node, services);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (!hosted.IsStarted)
            return;
        try
        {
            await hosted.Node.DisposeAsync().AsTask().WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The host's shutdown timeout passed: the node goes on closing (its grace period bounds it) while the host stops.
        }
    }
}
