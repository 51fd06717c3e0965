using MessagePack;
using P2PLocal.Rpc.Protocol;

namespace P2PLocal.Rpc.Server;

/// <summary>The subscribing side of events (issue 14): events that arrive from the caller.</summary>
internal sealed partial class ServerConnection
{
    /// <summary>The largest frame the caller takes, which bounds the topics it is told of.</summary>
    public int EventFrameLimit => MaxSendFrameSize;

    /// <summary>
    /// Counts queued events against <see cref="NodeOptions.MaxBufferedBytesPerConnection"/>, like running requests: above
    /// it the connection stops reading, so a publisher's large events cost this node a bounded number of bytes.
    /// </summary>
    public void HoldEventBytes(int bytes) => HoldReceived(bytes);

    /// <summary>A queued event was handled (see <see cref="HoldEventBytes"/>).</summary>
    public void ReleaseEventBytes(int bytes) => ReleaseReceived(bytes);

    /// <summary>Where the caller connected from.</summary>
    public System.Net.IPEndPoint? CallerEndPoint => _remoteEndPoint;

    /// <summary>Read loop: an event from the caller. Bad shapes close the connection; events this node does not want are dropped.</summary>
    private void OnEvent(ref MessagePackReader reader, int count, Framing.ReceivedFrame frame)
    {
        var topic = EventMessages.ReadEventTopic(ref reader, count);
        var start = (int)reader.Consumed;
        MessagePackValues.Skip(ref reader);
        var end = (int)reader.Consumed;
        for (var i = 3; i < count; i++)
            MessagePackValues.Skip(ref reader); // elements a newer sender may add
        if (reader.Consumed != frame.Length)
            throw new InvalidDataException("Bytes follow the event.");
        if (topic is null || _host.Events is not { } events)
            return;
        if (events.Receive(this, topic, frame.Payload[start..end], frame.Length))
            LastUsefulTicks = LastFrameTicks; // only wanted events count as use (issue 8: tiny frames must not keep a slot)
    }
}
