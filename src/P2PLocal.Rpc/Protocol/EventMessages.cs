using System.Text;
using MessagePack;

namespace P2PLocal.Rpc.Protocol;

/// <summary>
/// The event messages of PROTOCOL.md, "Events" (issue 14): <c>[8, [topic, ...]]</c> subscriptions, server to caller,
/// and <c>[9, topic, value]</c> event, caller to server. Sent only to a peer whose hello listed <see cref="Feature"/>.
/// </summary>
internal static class EventMessages
{
    /// <summary>The hello feature that offers kinds 8 and 9.</summary>
    public const string Feature = "events";

    /// <summary>Whether <paramref name="kind"/> is one of the event message kinds.</summary>
    public static bool IsEventKind(int kind) => kind is (int)MessageKind.Subscriptions or (int)MessageKind.Event;

    /// <summary>Whether a topic is one this node accepts: 1 to <see cref="EventOptions.MaxTopicBytes"/> UTF-8 bytes.</summary>
    public static string? TopicProblem(string? topic) =>
        string.IsNullOrEmpty(topic) ? "A topic must be a non-empty string."
        : Encoding.UTF8.GetByteCount(topic) > EventOptions.MaxTopicBytes ? $"A topic is at most {EventOptions.MaxTopicBytes} UTF-8 bytes; '{Messages.CutToUtf8Bytes(topic, 64)}' is longer."
        : null;

    public static void WriteSubscriptions(ref MessagePackWriter writer, IReadOnlyCollection<string> topics)
    {
        writer.WriteArrayHeader(2);
        writer.Write((int)MessageKind.Subscriptions);
        writer.WriteArrayHeader(topics.Count);
        foreach (var topic in topics)
            writer.Write(topic);
    }

    /// <summary>
    /// Reads a subscriptions message after <see cref="Messages.ReadKind"/>: keeps the first <paramref name="maxTopics"/>
    /// topics that are strings of 1 to <see cref="EventOptions.MaxTopicBytes"/> bytes and skips the rest, so a peer
    /// cannot make this node keep more (PROTOCOL.md, "Events").
    /// </summary>
    /// <exception cref="InvalidDataException">The message has no topics array: a bad frame, which closes the connection.</exception>
    public static HashSet<string> ReadSubscriptions(ref MessagePackReader reader, int count, int maxTopics)
    {
        if (reader.NextMessagePackType != MessagePackType.Array)
            throw new InvalidDataException("A subscriptions message's second element must be an array of topics.");
        var topics = new HashSet<string>(StringComparer.Ordinal);
        var listed = reader.ReadArrayHeader();
        for (var i = 0; i < listed; i++)
        {
            if (reader.NextMessagePackType != MessagePackType.String)
            {
                MessagePackValues.Skip(ref reader);
                continue;
            }

            var utf8 = reader.ReadStringSequence() ?? default;
            if (topics.Count < maxTopics && utf8.Length is > 0 and <= EventOptions.MaxTopicBytes)
                topics.Add(Encoding.UTF8.GetString(utf8));
        }

        for (var i = 2; i < count; i++)
            MessagePackValues.Skip(ref reader);
        return topics;
    }

    /// <summary>Writes a whole event message: kind, topic, then the value already serialized in <paramref name="value"/>.</summary>
    public static void WriteEvent(ref MessagePackWriter writer, string topic, ReadOnlySpan<byte> value)
    {
        writer.WriteArrayHeader(3);
        writer.Write((int)MessageKind.Event);
        writer.Write(topic);
        writer.WriteRaw(value);
    }

    /// <summary>
    /// Reads an event's topic after <see cref="Messages.ReadKind"/>; the reader is left at the value. Null when the
    /// topic is not a string of 1 to <see cref="EventOptions.MaxTopicBytes"/> bytes (the event is dropped).
    /// </summary>
    /// <exception cref="InvalidDataException">The event has fewer than 3 elements: a bad frame, which closes the connection.</exception>
    public static string? ReadEventTopic(ref MessagePackReader reader, int count)
    {
        if (count < 3)
            throw new InvalidDataException($"An event has 3 elements (kind, topic, value), not {count}.");
        if (reader.NextMessagePackType != MessagePackType.String)
            return null;
        var utf8 = reader.ReadStringSequence() ?? default;
        return utf8.Length is > 0 and <= EventOptions.MaxTopicBytes ? Encoding.UTF8.GetString(utf8) : null;
    }
}
