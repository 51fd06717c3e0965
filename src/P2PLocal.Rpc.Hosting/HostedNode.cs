using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace P2PLocal.Rpc.Hosting;

/// <summary>
/// Owns the host's node: created (not started) the first time anything asks for it, so <see cref="Node"/> and
/// <see cref="PeerDirectory"/> can be injected anywhere, hosted services' constructors included, without blocking.
/// The hosted service registers the builder's services on it and then starts it, asynchronously, so no peer ever sees
/// the node without its services. The container disposes it, so the node stops even when the host's start failed.
/// </summary>
internal sealed class HostedNode : IAsyncDisposable, IDisposable
{
    private readonly Lazy<Node> _node;

    public HostedNode(IOptions<P2PNodeOptions> options, IServiceProvider services)
    {
        _node = new Lazy<Node>(() =>
        {
            var nodeOptions = options.Value.ToNodeOptions(services.GetService<ILoggerFactory>(), services.GetService<TimeProvider>());
            return Node.Create(nodeOptions);
        }, LazyThreadSafetyMode.ExecutionAndPublication);
    }

    public Node Node => _node.Value;

    /// <summary>Whether the node was created; it is started by <see cref="NodeHostedService.StartAsync"/>.</summary>
    public bool IsCreated => _node.IsValueCreated;

    public ValueTask DisposeAsync() => IsCreated ? _node.Value.DisposeAsync() : default;

    /// <summary>For a container disposed synchronously: blocks until the node shut down (see <see cref="Node.Shutdown"/>).</summary>
    public void Dispose()
    {
        if (IsCreated)
            _node.Value.Dispose();
    }
}

/// <summary>
/// Registers what the builder added and then starts the node with the host (binding, the hello and the name check,
/// <see cref="NodeOptions.NameCheckWindow"/>, are awaited, never blocked on); stops it with the host: a goodbye to peers,
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
        return node.StartAsync(cancellationToken);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (!hosted.IsCreated)
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
