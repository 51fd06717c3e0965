namespace P2PLocal.Rpc;

/// <summary>
/// Counts of one node's events since it started (see <see cref="Node.GetEventStatistics"/>). Drops are counted, never
/// silent: an event is delivered at most once, and one that a full queue or a lost connection cost is counted here and
/// in the metric <c>p2plocal.events.dropped</c> (tag <c>side</c>: <c>publisher</c> or <c>subscriber</c>).
/// </summary>
/// <param name="Sent">Events written to a subscribed peer's connection (one per peer per event).</param>
/// <param name="DroppedBySender">
/// Events this node published that did not go to a subscribed peer: that peer's queue was full (it reads too slowly),
/// or its connection could not be opened or was lost.
/// </param>
/// <param name="Received">Events that arrived from peers for a topic this node subscribes to.</param>
/// <param name="DroppedByReceiver">Events that arrived while this node's queue for their publisher was full (its handlers are too slow), or too large.</param>
/// <param name="HandlerFailures">Handler calls that threw, or whose value could not be read as the handler's type.</param>
/// <remarks>An immutable snapshot; the counters keep counting.</remarks>
public readonly record struct EventStatistics(long Sent, long DroppedBySender, long Received, long DroppedByReceiver, long HandlerFailures);
