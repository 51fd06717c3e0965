using MessagePack;
using P2PLocal.Rpc.Events;
using P2PLocal.Rpc.Protocol;
using P2PLocal.Rpc.Server;
using P2PLocal.Rpc.Transport;

namespace P2PLocal.Rpc;

// Events to every peer (issue 14, PROTOCOL.md "Events").
public sealed partial class Node
{
    private EventHub? _eventHub;

    private EventHub EventHub => LazyInitializer.EnsureInitialized(ref _eventHub, () => new EventHub(this, _options.Events, _logger));

    IEventSink? IRequestHost.Events => EventHub;

    /// <summary>
    /// Publishes <paramref name="value"/> on <paramref name="topic"/> to every live peer that subscribes to it. Peers
    /// announce their topics on the connection, so nothing is sent to a peer that does not listen; this node does not
    /// deliver to its own subscriptions. Events of one publisher arrive in the order published; each arrives at most
    /// once: one that a slow peer's full queue or a lost connection costs is dropped and counted
    /// (<see cref="GetEventStatistics"/>), never retried.
    /// </summary>
    /// <remarks>
    /// Never waits for a peer: the task completes once the event is queued for every subscribed peer (each has its own
    /// bounded queue, <see cref="EventOptions.MaxQueuedEventsPerPeer"/>), not when it is delivered. A peer that just
    /// subscribed is served once its announcement arrived (a round trip). Thread-safe.
    /// </remarks>
    /// <typeparam name="T">The value's type; subscribers read it as their handler's type.</typeparam>
    /// <param name="topic">1 to <see cref="EventOptions.MaxTopicBytes"/> UTF-8 bytes.</param>
    /// <param name="value">The value, serialized with <see cref="SerializerOptions"/>.</param>
    /// <param name="cancellationToken">Checked before the event is queued.</param>
    /// <exception cref="ArgumentException">The topic is empty or too long.</exception>
    /// <exception cref="FrameTooLargeException">The event is above <see cref="EventOptions.MaxEventSize"/>.</exception>
    /// <exception cref="SerializationFailedException">The value cannot be serialized.</exception>
    /// <exception cref="InvalidOperationException">The node has not started.</exception>
    /// <exception cref="ObjectDisposedException">The node was shut down.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired.</exception>
    public Task PublishAsync<T>(string topic, T value, CancellationToken cancellationToken = default)
    {
        if (EventMessages.TopicProblem(topic) is { } problem)
            throw new ArgumentException(problem, nameof(topic));
        cancellationToken.ThrowIfCancellationRequested();
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        if (Volatile.Read(ref _started) == 0)
            throw new InvalidOperationException($"Node '{Name}' has not started: call StartAsync before publishing.");
        var message = SerializeEvent(topic, value);
        if (message.Length + 4 > _options.Events.MaxEventSize)
            throw new FrameTooLargeException($"The event on topic '{topic}' is {message.Length + 4} bytes, above Events.MaxEventSize ({_options.Events.MaxEventSize}); send a smaller value, or raise the option on every node.");
        EventHub.Publish(topic, message);
        return Task.CompletedTask;
    }

    private byte[] SerializeEvent<T>(string topic, T value)
    {
        byte[] serialized;
        try
        {
            serialized = MessagePackSerializer.Serialize(value, SerializerOptions);
        }
        catch (MessagePackSerializationException e)
        {
            throw new SerializationFailedException($"The value published on topic '{topic}' ({typeof(T)}) cannot be serialized: {e.Message}", e);
        }

        var buffer = new System.Buffers.ArrayBufferWriter<byte>(serialized.Length + topic.Length + 16);
        var writer = new MessagePackWriter(buffer);
        EventMessages.WriteEvent(ref writer, topic, serialized);
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// Calls <paramref name="handler"/> with each event that peers publish on <paramref name="topic"/>, until the
    /// returned subscription is disposed. Peers are told of the topic at once (and of its end on dispose).
    /// </summary>
    /// <remarks>
    /// The events of one publisher reach the handler one at a time, in the order published; events of different
    /// publishers may run at the same time. A handler that throws, or a value that cannot be read as
    /// <typeparamref name="T"/>, is logged and counted (<see cref="EventStatistics.HandlerFailures"/>) and the next
    /// event goes on. A slow handler only fills its publisher's queue here (<see cref="EventOptions.MaxQueuedEventsPerPeer"/>);
    /// events beyond it are dropped and counted. Thread-safe.
    /// </remarks>
    /// <typeparam name="T">The type the event's value is read as.</typeparam>
    /// <param name="topic">1 to <see cref="EventOptions.MaxTopicBytes"/> UTF-8 bytes.</param>
    /// <param name="handler">Called with each value.</param>
    /// <returns>The subscription; dispose it to stop.</returns>
    /// <exception cref="ArgumentException">The topic is empty or too long.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="handler"/> is null.</exception>
    /// <exception cref="InvalidOperationException">This node already subscribes to <see cref="EventOptions.MaxTopicsPerPeer"/> topics.</exception>
    public IDisposable Subscribe<T>(string topic, Action<T> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        return Subscribe<T>(topic, (value, _, _) =>
        {
            handler(value);
            return Task.CompletedTask;
        });
    }

    /// <summary>Like <see cref="Subscribe{T}(string, Action{T})"/>, with the peer that published each event.</summary>
    /// <inheritdoc cref="Subscribe{T}(string, Action{T})"/>
    public IDisposable Subscribe<T>(string topic, Action<T, PeerInfo> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        return Subscribe<T>(topic, (value, sender, _) =>
        {
            handler(value, sender);
            return Task.CompletedTask;
        });
    }

    /// <summary>
    /// Like <see cref="Subscribe{T}(string, Action{T})"/>, with an async handler: the next event of the same publisher
    /// waits for its task. The token fires when the subscription is disposed or the node shuts down.
    /// </summary>
    /// <inheritdoc cref="Subscribe{T}(string, Action{T})"/>
    public IDisposable Subscribe<T>(string topic, Func<T, PeerInfo, CancellationToken, Task> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        var options = SerializerOptions;
        return EventHub.Subscribe(topic, (bytes, sender, cancellationToken) =>
            handler(MessagePackSerializer.Deserialize<T>(bytes, options, cancellationToken), sender, cancellationToken));
    }

    /// <summary>This node's event counts since it started: sent, received, dropped on either side, failed handlers.</summary>
    /// <remarks>Thread-safe; a snapshot.</remarks>
    public EventStatistics GetEventStatistics() => _eventHub?.Statistics ?? default;

    /// <summary>The connection to a peer instance, for its event link (the same pooled connection calls use).</summary>
    internal Task<ClientConnection> GetEventConnectionAsync(PeerInfo peer, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        return _pool.GetAsync(AddressOf(peer), cancellationToken);
    }
}
