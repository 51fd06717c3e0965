namespace P2PLocal.Rpc;

/// <summary>
/// Bounds of events to every peer (<see cref="Node.PublishAsync{T}(string, T, CancellationToken)"/>, issue 14): what a
/// subscriber costs a publisher and what a publisher costs a subscriber. Set as <see cref="NodeOptions.Events"/>.
/// </summary>
/// <remarks>Immutable once built; safe to share between nodes.</remarks>
public sealed class EventOptions
{
    /// <summary>The longest topic, in UTF-8 bytes. Longer topics are refused by <c>Subscribe</c> and <c>PublishAsync</c>, and skipped when a peer sends them.</summary>
    public const int MaxTopicBytes = 256;

    /// <summary>
    /// The largest event, in bytes of its frame (topic and value). <c>PublishAsync</c> refuses a larger one, and a
    /// subscriber drops a larger one unread. Default 64 KiB; never above <see cref="NodeOptions.MaxFrameSize"/>.
    /// </summary>
    public int MaxEventSize { get; init; } = 64 * 1024;

    /// <summary>
    /// The most topics this node subscribes to, and keeps of each peer's subscriptions (a peer that announces more has
    /// the rest ignored, so a stranger cannot make this node keep an unbounded set). Default 256.
    /// </summary>
    public int MaxTopicsPerPeer { get; init; } = 256;

    /// <summary>
    /// The most events waiting, per peer, to be sent to it (publisher side) and, per publisher, to be handled here
    /// (subscriber side). When a queue is full the new event is dropped and counted (<see cref="EventStatistics"/>,
    /// metric <c>p2plocal.events.dropped</c>): a slow subscriber never blocks the publisher or the other subscribers.
    /// Default 1024.
    /// </summary>
    public int MaxQueuedEventsPerPeer { get; init; } = 1024;

    /// <summary>Checks the values; called by <see cref="NodeOptions.Validate"/> (which also checks <see cref="MaxEventSize"/> against the frame limit).</summary>
    /// <exception cref="ArgumentOutOfRangeException">A value is out of range; the parameter name says which.</exception>
    internal void Validate()
    {
        if (MaxEventSize < 64)
            throw new ArgumentOutOfRangeException(nameof(MaxEventSize), MaxEventSize, "Events.MaxEventSize must be at least 64 bytes.");
        if (MaxTopicsPerPeer < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxTopicsPerPeer), MaxTopicsPerPeer, "Events.MaxTopicsPerPeer must allow at least one topic.");
        if (MaxQueuedEventsPerPeer < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxQueuedEventsPerPeer), MaxQueuedEventsPerPeer, "Events.MaxQueuedEventsPerPeer must allow at least one event.");
    }
}
