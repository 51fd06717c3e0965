namespace P2PLocal.Rpc.Server;

/// <summary>
/// Where a server connection hands the events side of the protocol (issue 14, PROTOCOL.md "Events"): callers that
/// offered the <c>events</c> feature, and the events they send. <c>Node</c>'s event hub implements it.
/// </summary>
internal interface IEventSink
{
    /// <summary>A caller that offered <c>events</c> said hello: send it this node's topics (after the hello), and on every change.</summary>
    void Attach(ServerConnection connection);

    /// <summary>The caller's connection closed.</summary>
    void Detach(ServerConnection connection);

    /// <summary>
    /// Read loop: an event arrived from the caller (<paramref name="value"/> is only valid during the call). Returns
    /// whether this node subscribes to the topic.
    /// </summary>
    bool Receive(ServerConnection connection, string topic, ReadOnlyMemory<byte> value, int frameLength);
}
