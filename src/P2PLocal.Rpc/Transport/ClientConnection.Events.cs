using MessagePack;
using P2PLocal.Rpc.Protocol;
using P2PLocal.Rpc.Framing;

namespace P2PLocal.Rpc.Transport;

/// <summary>The publishing side of events (issue 14): the peer's topics, and writing events to it.</summary>
internal sealed partial class ClientConnection
{
    private readonly TaskCompletionSource _peerTopicsKnown = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile HashSet<string>? _peerTopics;

    /// <summary>The most topics kept of the peer's subscriptions (<see cref="EventOptions.MaxTopicsPerPeer"/>).</summary>
    public int MaxPeerTopics { get; init; } = 256;

    /// <summary>Whether the peer's subscriptions arrived (a peer that offers <c>events</c> sends them after its hello).</summary>
    public bool PeerTopicsKnown => _peerTopics is not null;

    /// <summary>Whether the peer's latest subscriptions list <paramref name="topic"/>.</summary>
    public bool PeerSubscribes(string topic) => _peerTopics?.Contains(topic) == true;

    /// <summary>Waits for the peer's first subscriptions, up to <paramref name="timeout"/> (false: none came).</summary>
    public async Task<bool> WaitForPeerTopicsAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        try
        {
            await _peerTopicsKnown.Task.WaitAsync(Waitable(timeout), Clock, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    /// <summary>Read loop: the peer's topics changed. The whole list replaces the one before.</summary>
    private void OnSubscriptions(ref MessagePackReader reader, int count)
    {
        _peerTopics = EventMessages.ReadSubscriptions(ref reader, count, MaxPeerTopics);
        _peerTopicsKnown.TrySetResult();
    }

    /// <summary>
    /// Writes one event message (<c>[9, topic, value]</c>, without its length prefix). While the peer is not reading
    /// (the connection is over its buffer limit) it waits, so the publisher's queue for this peer fills instead of the
    /// connection's. Null when nothing was handed to the connection (it closed, or the event is above the peer's frame
    /// limit); false when the frame was handed over (after <paramref name="sending"/>) but the connection closed first.
    /// </summary>
    /// <param name="message">The event message.</param>
    /// <param name="sending">Called just before the frame is handed to the connection (counters count it before the peer can see it).</param>
    /// <param name="cancellationToken">Stops the wait for room.</param>
    public async ValueTask<bool?> SendEventAsync(byte[] message, Action sending, CancellationToken cancellationToken)
    {
        while (IsOverBufferLimit && !IsClosed)
            await WaitForRoomAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
        if (IsClosed)
            return null;
        var frame = new FrameBuffer(message.Length + 8);
        message.CopyTo(frame.GetSpan(message.Length));
        frame.Advance(message.Length);
        try
        {
            frame.Complete(_maxSendFrameSize);
        }
        catch (FrameTooLargeException)
        {
            frame.Dispose();
            return null;
        }

        LastUsedTicks = Clock.GetTimestamp(); // events in flight keep the connection from being closed as idle
        sending();
        return TrySend(frame);
    }
}
