using System.Collections.Concurrent;
using System.Threading.Channels;
using MessagePack;
using Microsoft.Extensions.Logging;
using P2PLocal.Rpc.Diagnostics;
using P2PLocal.Rpc.Framing;
using P2PLocal.Rpc.Protocol;
using P2PLocal.Rpc.Server;
using P2PLocal.Rpc.Transport;

namespace P2PLocal.Rpc.Events;

/// <summary>Calls one subscriber's handler with an event's value, still serialized, and its sender.</summary>
internal delegate Task EventHandlerCall(ReadOnlyMemory<byte> value, PeerInfo sender, CancellationToken cancellationToken);

/// <summary>
/// A node's events (issue 14, PROTOCOL.md "Events"). Subscriber side: the topics this node listens to, announced to
/// every caller that offered the <c>events</c> feature, and one bounded inbox per publisher whose events run through the
/// handlers in order. Publisher side: one <see cref="EventLink"/> per live peer, a bounded queue with one sender loop,
/// so a peer that reads slowly costs only its own queue, and drops are counted.
/// </summary>
/// <remarks>Thread-safe. Handlers of one publisher's events run one at a time, in the order published; handlers of
/// different publishers may run at the same time.</remarks>
internal sealed class EventHub : IEventSink
{
    private readonly Node _node;
    private readonly EventOptions _options;
    private readonly ILogger _logger;
    private readonly object _gate = new();
    private readonly Dictionary<string, List<Subscription>> _byTopic = new(StringComparer.Ordinal);
    private readonly HashSet<ServerConnection> _listeners = [];
    private readonly ConcurrentDictionary<ServerConnection, EventInbox> _inboxes = new();
    private readonly ConcurrentDictionary<string, EventLink> _links = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();
    private readonly Action _countSent;
    private long _sent;
    private long _droppedBySender;
    private long _received;
    private long _droppedByReceiver;
    private long _handlerFailures;

    public EventHub(Node node, EventOptions options, ILogger logger)
    {
        _node = node;
        _options = options;
        _logger = logger;
        _countSent = () => Interlocked.Increment(ref _sent);
    }

    public EventOptions Options => _options;

    public EventStatistics Statistics => new(Interlocked.Read(ref _sent), Interlocked.Read(ref _droppedBySender),
        Interlocked.Read(ref _received), Interlocked.Read(ref _droppedByReceiver), Interlocked.Read(ref _handlerFailures));

    // ---------------------------------------------------------------- subscriber side

    /// <exception cref="ArgumentException">The topic is empty or longer than <see cref="EventOptions.MaxTopicBytes"/>.</exception>
    /// <exception cref="InvalidOperationException">The node already subscribes to <see cref="EventOptions.MaxTopicsPerPeer"/> topics.</exception>
    public IDisposable Subscribe(string topic, EventHandlerCall handler)
    {
        if (EventMessages.TopicProblem(topic) is { } problem)
            throw new ArgumentException(problem, nameof(topic));
        var subscription = new Subscription(this, topic, handler, _stopping.Token);
        lock (_gate)
        {
            if (!_byTopic.TryGetValue(topic, out var handlers))
            {
                if (_byTopic.Count >= _options.MaxTopicsPerPeer)
                {
                    subscription.Dispose();
                    throw new InvalidOperationException($"Node '{_node.Name}' already subscribes to {_byTopic.Count} topics, the most Events.MaxTopicsPerPeer allows (peers keep no more of a node's topics). Raise it on every node, or use fewer topics.");
                }

                _byTopic[topic] = handlers = [];
                handlers.Add(subscription);
                AnnounceLocked();
            }
            else
            {
                handlers.Add(subscription);
            }
        }

        return subscription;
    }

    private void Unsubscribe(Subscription subscription)
    {
        lock (_gate)
        {
            if (!_byTopic.TryGetValue(subscription.Topic, out var handlers) || !handlers.Remove(subscription) || handlers.Count > 0)
                return;
            _byTopic.Remove(subscription.Topic);
            AnnounceLocked();
        }
    }

    /// <summary>A caller that offered <c>events</c> said hello: tell it this node's topics now, and on every change.</summary>
    public void Attach(ServerConnection connection)
    {
        lock (_gate)
        {
            _listeners.Add(connection);
            SendTopicsLocked(connection);
        }
    }

    /// <summary>The caller's connection closed.</summary>
    public void Detach(ServerConnection connection)
    {
        lock (_gate)
            _listeners.Remove(connection);
        if (_inboxes.TryRemove(connection, out var inbox))
            inbox.Complete();
    }

    private void AnnounceLocked()
    {
        foreach (var listener in _listeners)
            SendTopicsLocked(listener);
    }

    /// <remarks>Under <see cref="_gate"/>, so each caller sees the changes in order.</remarks>
    private void SendTopicsLocked(ServerConnection connection)
    {
        // A topic list above the caller's frame limit would close its connection: send the topics that fit.
        var room = connection.EventFrameLimit - 16;
        var topics = new List<string>(_byTopic.Count);
        foreach (var topic in _byTopic.Keys)
        {
            room -= System.Text.Encoding.UTF8.GetByteCount(topic) + 3;
            if (room < 0)
            {
                _logger.LogWarning("Node {Node} subscribes to more topics than fit in the frame limit of caller {Caller}; it is told of {Count} of {Total}.",
                    _node.Name, connection.RemoteEndPoint, topics.Count, _byTopic.Count);
                break;
            }

            topics.Add(topic);
        }

        var frame = new FrameBuffer(64 + (topics.Count * 16));
        var writer = new MessagePackWriter(frame);
        EventMessages.WriteSubscriptions(ref writer, topics);
        writer.Flush();
        frame.Complete(int.MaxValue);
        connection.TrySend(frame);
    }

    /// <summary>An event arrived on <paramref name="connection"/> (its read loop): queue it for the handlers, or count the drop.</summary>
    /// <returns>Whether this node subscribes to the topic.</returns>
    public bool Receive(ServerConnection connection, string topic, ReadOnlyMemory<byte> value, int frameLength)
    {
        lock (_gate)
        {
            if (!_byTopic.ContainsKey(topic))
                return false; // unsubscribed while the event was on its way
        }

        Interlocked.Increment(ref _received);
        // Created with the caller's first wanted event; only its read loop gets here, so there is no race to create it.
        if (!_inboxes.TryGetValue(connection, out var inbox))
        {
            inbox = new EventInbox(this, connection, SenderOf(connection), _options.MaxQueuedEventsPerPeer);
            _inboxes[connection] = inbox;
            if (connection.IsClosed && _inboxes.TryRemove(connection, out _))
                inbox.Complete(); // closed meanwhile: Detach ran before the inbox existed
        }

        if (frameLength > _options.MaxEventSize || !inbox.TryQueue(topic, value.ToArray()))
            DroppedByReceiver();
        return true;
    }

    /// <summary>The caller, as handlers see it: the peer table's entry for its instance, or what its hello said (a caller that does not listen is not in the table).</summary>
    private PeerInfo SenderOf(ServerConnection connection)
    {
        var hello = connection.Peer!.Value;
        if (_node.Peers.TryGet(hello.Name, out var known) && known.InstanceId == hello.InstanceId)
            return known;
        return new PeerInfo(hello.Name, _node.Options.Protocol, connection.CallerEndPoint ?? new System.Net.IPEndPoint(System.Net.IPAddress.None, 0), hello.InstanceId)
        {
            PeerId = connection.PeerId,
        };
    }

    private void DroppedByReceiver()
    {
        Interlocked.Increment(ref _droppedByReceiver);
        RpcMetrics.EventDropped("subscriber");
    }

    /// <summary>Runs every handler of <paramref name="topic"/>, one after the other; a handler that throws is counted and logged.</summary>
    private async Task DeliverAsync(string topic, byte[] value, PeerInfo sender)
    {
        Subscription[] handlers;
        lock (_gate)
            handlers = _byTopic.TryGetValue(topic, out var list) ? [.. list] : [];
        foreach (var subscription in handlers)
        {
            if (subscription.IsDisposed)
                continue;
            try
            {
                await subscription.Handler(value, sender, subscription.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (subscription.Token.IsCancellationRequested)
            {
            }
            catch (Exception e)
            {
                Interlocked.Increment(ref _handlerFailures);
                _logger.LogWarning(e, "A handler of topic {Topic} on node {Node} failed on an event from {Sender}.", topic, _node.Name, sender.Name);
            }
        }
    }

    // ---------------------------------------------------------------- publisher side

    /// <summary>Queues an event (a whole message, <c>[9, topic, value]</c>) for every live peer that subscribes to its topic.</summary>
    public void Publish(string topic, byte[] message)
    {
        var live = new HashSet<string>(StringComparer.Ordinal);
        foreach (var peer in _node.Peers)
        {
            if (peer.IsLegacy)
                continue;
            live.Add(peer.InstanceId);
            var link = _links.GetOrAdd(peer.InstanceId, static (_, state) => new EventLink(state.Hub, state.Peer), (Hub: this, Peer: peer));
            link.Offer(topic, message);
        }

        // Peers that left: stop their links (what they still hold is dropped with them).
        foreach (var (instance, link) in _links)
        {
            if (!live.Contains(instance) && _links.TryRemove(new KeyValuePair<string, EventLink>(instance, link)))
                link.Stop();
        }
    }

    private void DroppedBySender()
    {
        Interlocked.Increment(ref _droppedBySender);
        RpcMetrics.EventDropped("publisher");
    }

    /// <summary>Stops every loop: the node is shutting down.</summary>
    public void Stop()
    {
        _stopping.Cancel();
        foreach (var (_, link) in _links)
            link.Stop();
        _links.Clear();
        lock (_gate)
            _listeners.Clear();
        foreach (var (connection, inbox) in _inboxes)
        {
            if (_inboxes.TryRemove(connection, out _))
                inbox.Complete();
        }
    }

    private sealed class Subscription : IDisposable
    {
        private readonly EventHub _hub;
        private readonly CancellationTokenSource _cancellation;
        private int _disposed;

        public Subscription(EventHub hub, string topic, EventHandlerCall handler, CancellationToken stopping)
        {
            _hub = hub;
            Topic = topic;
            Handler = handler;
            _cancellation = CancellationTokenSource.CreateLinkedTokenSource(stopping);
            Token = _cancellation.Token;
        }

        public string Topic { get; }

        public EventHandlerCall Handler { get; }

        /// <summary>Fires when the subscription is disposed or the node shuts down.</summary>
        public CancellationToken Token { get; }

        public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0)
                return;
            _hub.Unsubscribe(this);
            _cancellation.Cancel();
            _cancellation.Dispose();
        }
    }

    /// <summary>The events of one publisher (one incoming connection), handled one at a time in arrival order.</summary>
    private sealed class EventInbox
    {
        private readonly EventHub _hub;
        private readonly ServerConnection _connection;
        private readonly PeerInfo _sender;
        private readonly Channel<(string Topic, byte[] Value)> _queue;

        public EventInbox(EventHub hub, ServerConnection connection, PeerInfo sender, int capacity)
        {
            _hub = hub;
            _connection = connection;
            _sender = sender;
            _queue = Channel.CreateBounded<(string, byte[])>(new BoundedChannelOptions(capacity)
            {
                SingleReader = true,
                SingleWriter = true,
                FullMode = BoundedChannelFullMode.Wait, // TryWrite fails when full: the drop is counted by the caller
            });
            _ = Task.Run(RunAsync);
        }

        /// <summary>Queues an event, counting its bytes against the connection's buffer limit until handled; false when the queue is full.</summary>
        public bool TryQueue(string topic, byte[] value)
        {
            _connection.HoldEventBytes(value.Length); // before the handlers can release it
            if (_queue.Writer.TryWrite((topic, value)))
                return true;
            _connection.ReleaseEventBytes(value.Length);
            return false;
        }

        public void Complete() => _queue.Writer.TryComplete();

        private async Task RunAsync()
        {
            try
            {
                await foreach (var (topic, value) in _queue.Reader.ReadAllAsync(_hub._stopping.Token).ConfigureAwait(false))
                {
                    await _hub.DeliverAsync(topic, value, _sender).ConfigureAwait(false);
                    _connection.ReleaseEventBytes(value.Length);
                }
            }
            catch (OperationCanceledException)
            {
                // The node is shutting down.
            }
        }
    }

    /// <summary>
    /// What this node still has to send to one peer instance: a bounded queue and one loop that connects, waits for the
    /// peer's topics, and writes each event the peer subscribes to, waiting while the connection is over its buffer
    /// limit (the peer reads slowly); meanwhile new events beyond the queue are dropped and counted.
    /// </summary>
    private sealed class EventLink
    {
        private readonly EventHub _hub;
        private readonly PeerInfo _peer;
        private readonly Channel<(string Topic, byte[] Message)> _queue;
        private readonly CancellationTokenSource _stop;
        private ClientConnection? _connection;
        private readonly CancellationToken _token;
        private int _stopped;

        public EventLink(EventHub hub, PeerInfo peer)
        {
            _hub = hub;
            _peer = peer;
            _stop = CancellationTokenSource.CreateLinkedTokenSource(hub._stopping.Token);
            _token = _stop.Token; // read before the loop starts: Stop may dispose the source first
            _queue = Channel.CreateBounded<(string, byte[])>(new BoundedChannelOptions(hub._options.MaxQueuedEventsPerPeer)
            {
                SingleReader = true,
                FullMode = BoundedChannelFullMode.Wait,
            });
            _ = Task.Run(RunAsync);
        }

        public void Offer(string topic, byte[] message)
        {
            // Known not to listen: nothing is queued, nothing is sent (and it is no drop).
            if (Volatile.Read(ref _connection) is { IsClosed: false } connection && connection.PeerTopicsKnown
                && (!connection.PeerHello.AcceptsEvents || !connection.PeerSubscribes(topic)))
                return;
            if (!_queue.Writer.TryWrite((topic, message)))
                _hub.DroppedBySender();
        }

        /// <summary>Stops the loop and drops what is queued. Idempotent (the peer left and the node stopping may both call it).</summary>
        public void Stop()
        {
            if (Interlocked.Exchange(ref _stopped, 1) != 0)
                return;
            _queue.Writer.TryComplete();
            _stop.Cancel();
            _stop.Dispose();
        }

        private async Task RunAsync()
        {
            var token = _token;
            try
            {
                await foreach (var (topic, message) in _queue.Reader.ReadAllAsync(token).ConfigureAwait(false))
                {
                    try
                    {
                        await SendAsync(topic, message, token).ConfigureAwait(false);
                    }
                    catch (Exception e) when (e is P2PException or ObjectDisposedException or TimeoutException or InvalidOperationException && !token.IsCancellationRequested)
                    {
                        _hub.DroppedBySender();
                        _hub._logger.LogDebug(e, "An event of topic {Topic} was not sent to peer {Peer}.", topic, _peer.Name);
                    }
                }
            }
            catch (OperationCanceledException)
            {
                // The peer left or the node is shutting down: what is queued is dropped with the link.
            }
        }

        /// <summary>Sends one event if the peer subscribes to its topic (nothing is sent, and nothing dropped, when it does not).</summary>
        private async Task SendAsync(string topic, byte[] message, CancellationToken cancellationToken)
        {
            var connection = Volatile.Read(ref _connection);
            if (connection is null || connection.IsClosed)
            {
                connection = await _hub._node.GetEventConnectionAsync(_peer, cancellationToken).ConfigureAwait(false);
                Volatile.Write(ref _connection, connection);
            }

            if (!connection.PeerHello.AcceptsEvents)
                return; // an older node: it has no subscriptions, and kind 9 would close the connection
            if (!connection.PeerTopicsKnown)
                await connection.WaitForPeerTopicsAsync(_hub._node.Options.ConnectTimeout, cancellationToken).ConfigureAwait(false);
            if (!connection.PeerSubscribes(topic))
                return;
            var sent = await connection.SendEventAsync(message, _hub._countSent, cancellationToken).ConfigureAwait(false);
            if (sent != true)
            {
                if (sent == false)
                    Interlocked.Decrement(ref _hub._sent); // counted as it was handed over, then lost with the connection
                throw new PeerConnectionException($"The connection to peer '{_peer.Name}' closed before an event of topic '{topic}' was written.");
            }
        }
    }
}
