using System.Net.Sockets;
using System.Security.Cryptography;

namespace P2PLocal.Rpc.Cli;

/// <summary>
/// What a command that talks to the network runs: a <see cref="DiscoveryProbe"/> bound first (so it hears every
/// answer), then a node of its own named <c>p2plocal-XXXXXXXX</c>. The node's hello makes every node on the port answer
/// at once, which is why <c>peers</c> answers in milliseconds; other nodes see the tool join and leave.
/// </summary>
internal sealed class Session : IAsyncDisposable
{
    private Session(DiscoveryProbe probe, Node node)
    {
        Probe = probe;
        Node = node;
    }

    public DiscoveryProbe Probe { get; }

    public Node Node { get; }

    /// <summary>Opens the probe and starts the tool's node.</summary>
    /// <exception cref="SocketException">The discovery port or a service port cannot be bound.</exception>
    public static Task<Session> StartAsync(CommonSettings settings, TimeSpan requestTimeout, CancellationToken cancellationToken) =>
        StartAsync(settings, requestTimeout, beforeStart: null, cancellationToken);

    /// <summary>Opens the probe and starts the tool's node, after <paramref name="beforeStart"/> ran on it.</summary>
    /// <param name="settings">The common options.</param>
    /// <param name="requestTimeout">The node's request timeout.</param>
    /// <param name="beforeStart">Runs on the node before it starts (subscriptions), so no peer ever sees the tool without them.</param>
    /// <param name="cancellationToken">Ctrl+C.</param>
    /// <exception cref="SocketException">The discovery port or a service port cannot be bound.</exception>
    public static async Task<Session> StartAsync(CommonSettings settings, TimeSpan requestTimeout, Action<Node>? beforeStart, CancellationToken cancellationToken)
    {
        var probe = DiscoveryProbe.Open(settings.Port, settings.Scope);
        try
        {
            var node = Node.Create(new NodeOptions
            {
                Name = $"p2plocal-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}",
                Protocol = settings.Protocol,
                DiscoveryPort = settings.Port,
                Scope = settings.Scope,
                RequestTimeout = requestTimeout,
                ShutdownGracePeriod = TimeSpan.FromSeconds(1),
                Security = settings.CreateSecurity(),
            });
            try
            {
                beforeStart?.Invoke(node);
                await node.StartAsync(cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                await node.DisposeAsync().ConfigureAwait(false);
                throw;
            }

            return new Session(probe, node);
        }
        catch
        {
            await probe.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>True for a datagram this tool's own node sent.</summary>
    public bool IsOwn(HeardDatagram datagram) => datagram.Beacon?.InstanceId == Node.InstanceId;

    /// <summary>
    /// Waits until the answers to the hello have come in: no node not heard before for <paramref name="quiet"/>, or
    /// <paramref name="wait"/> at most. Nodes answer a hello within milliseconds; legacy nodes and nodes of another
    /// protocol only beacon on their own timer, so they show only if that falls inside the wait.
    /// </summary>
    public async Task SettleAsync(TimeSpan wait, TimeSpan quiet, CancellationToken cancellationToken)
    {
        var deadline = DateTimeOffset.UtcNow + wait;
        var seen = HeardNodes();
        while (true)
        {
            var left = deadline - DateTimeOffset.UtcNow;
            if (left <= TimeSpan.Zero)
                return;
            await Task.Delay(left < quiet ? left : quiet, cancellationToken).ConfigureAwait(false);
            var now = HeardNodes();
            if (now == seen)
                return;
            seen = now;
        }
    }

    /// <summary>How many nodes other than the tool's own have been heard (periodic beacons of known nodes do not count).</summary>
    private int HeardNodes() => Probe.Heard
        .Where(d => d.Beacon is not null && !IsOwn(d))
        .Select(d => (d.Beacon!.Protocol, d.Beacon.Name, d.Beacon.InstanceId))
        .Distinct()
        .Count();

    /// <summary>Waits up to <paramref name="wait"/> for the peer <paramref name="name"/>; null when it is not seen.</summary>
    public async Task<PeerInfo?> WaitForPeerAsync(string name, TimeSpan wait, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(wait);
        try
        {
            return await Node.Peers.WaitForAsync(name, timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return null;
        }
    }

    /// <summary>Waits up to <paramref name="wait"/> for any peer; false when none is seen.</summary>
    public async Task<bool> WaitForAnyPeerAsync(TimeSpan wait, CancellationToken cancellationToken)
    {
        var seen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void Joined(object? sender, PeerInfo peer) => seen.TrySetResult();
        Node.Peers.Joined += Joined;
        try
        {
            if (Node.Peers.Count > 0)
                return true;
            await seen.Task.WaitAsync(wait, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
        finally
        {
            Node.Peers.Joined -= Joined;
        }
    }

    /// <summary>Why <paramref name="name"/> was not found, in one sentence, for the commands that call it.</summary>
    public string NotSeenMessage(string name, CommonSettings settings)
    {
        var instances = Node.Peers.Count(p => p.Name == name);
        if (instances > 1)
            return $"two live nodes claim the name '{name}' ({instances} instances): calls to it fail until one leaves. Run `p2plocal doctor {name}` to see both.";
        var other = Probe.Heard.Select(d => d.Beacon).FirstOrDefault(b => b is not null && b.Name == name && b.Protocol != settings.Protocol);
        if (other is not null)
            return $"peer '{name}' was not seen with protocol '{settings.Protocol}', but a node of that name beacons with protocol '{other.Protocol}': add --protocol {other.Protocol}.";
        return $"peer '{name}' was not seen in {settings.Wait.TotalSeconds:0.###} s on port {settings.Port} (protocol {settings.Protocol}, scope {settings.ScopeName}). Run `p2plocal peers` to list who is there, or `p2plocal doctor {name}` to find out why.";
    }

    /// <summary>Why no peer at all was found, in one sentence.</summary>
    public static string NoPeerMessage(CommonSettings settings) =>
        $"no peer was seen in {settings.Wait.TotalSeconds:0.###} s on port {settings.Port} (protocol {settings.Protocol}, scope {settings.ScopeName}). Start a node, or run `p2plocal doctor` to find out why none is heard.";

    public async ValueTask DisposeAsync()
    {
        await Node.DisposeAsync().ConfigureAwait(false);
        await Probe.DisposeAsync().ConfigureAwait(false);
    }
}
