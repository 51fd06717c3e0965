using MessagePack;
using P2PLocal.Rpc.Protocol;

namespace P2PLocal.Rpc.UnitTests;

/// <summary>
/// The event messages read as a peer may send them (PROTOCOL.md, "Events"): which kinds are events, the subscriptions
/// list cut to the node's bound, topics outside 1 to <see cref="EventOptions.MaxTopicBytes"/> bytes dropped, extra
/// elements skipped, and the refusals that close the connection, each by its message.
/// </summary>
public class EventMessageTests
{
    private static readonly string s_longestTopic = new('t', EventOptions.MaxTopicBytes);
    private static readonly string s_tooLongTopic = new('t', EventOptions.MaxTopicBytes + 1);

    [Fact]
    public void Only_subscriptions_and_events_are_event_kinds()
    {
        var kinds = Enumerable.Range(0, 12).Where(EventMessages.IsEventKind).ToArray();

        Assert.Equal(new[] { (int)MessageKind.Subscriptions, (int)MessageKind.Event }, kinds);
        Assert.Equal(new[] { 8, 9 }, kinds);
    }

    [Fact]
    public void Subscriptions_keep_topics_of_one_to_the_longest_length_and_skip_the_rest()
    {
        var bytes = Bytes.Pack((ref MessagePackWriter writer) =>
        {
            writer.WriteArrayHeader(2);
            writer.Write(8);
            writer.WriteArrayHeader(6);
            writer.Write(7); // not a string: skipped
            writer.WriteMapHeader(1); // nor this, with what it holds
            writer.Write("inner");
            writer.Write("value");
            writer.Write("");
            writer.Write(s_tooLongTopic);
            writer.Write(s_longestTopic);
            writer.Write("temp");
        });

        var (topics, atEnd) = ReadSubscriptions(bytes, maxTopics: 10);

        Assert.Equal(new[] { "temp", s_longestTopic }.Order(), topics.Order());
        Assert.True(atEnd);
    }

    [Fact]
    public void Subscriptions_keep_only_the_first_topics_up_to_the_bound()
    {
        var bytes = Subscriptions(["a", "b", "c", "d"]);

        var (topics, atEnd) = ReadSubscriptions(bytes, maxTopics: 2);

        Assert.Equal(new[] { "a", "b" }, topics.Order());
        Assert.True(atEnd);
    }

    [Fact]
    public void Elements_after_the_topics_are_skipped_to_the_end_of_the_message()
    {
        var bytes = Bytes.Pack((ref MessagePackWriter writer) =>
        {
            writer.WriteArrayHeader(4);
            writer.Write(8);
            writer.WriteArrayHeader(1);
            writer.Write("temp");
            writer.WriteArrayHeader(2); // a later version's extra elements
            writer.Write(1);
            writer.Write(2);
            writer.Write("extra");
        });

        var (topics, atEnd) = ReadSubscriptions(bytes, maxTopics: 10);

        Assert.Equal(new[] { "temp" }, topics);
        Assert.True(atEnd, "The reader stopped before the end of the message.");
    }

    [Fact]
    public void Subscriptions_without_a_topics_array_are_refused_by_name()
    {
        var bytes = Bytes.Pack((ref MessagePackWriter writer) =>
        {
            writer.WriteArrayHeader(2);
            writer.Write(8);
            writer.Write("temp");
        });

        var error = Assert.Throws<InvalidDataException>(() => ReadSubscriptions(bytes, maxTopics: 10));

        Assert.Equal("A subscriptions message's second element must be an array of topics.", error.Message);
    }

    [Fact]
    public void An_events_topic_is_read_and_the_reader_left_at_its_value()
    {
        foreach (var topic in new[] { "t", s_longestTopic })
        {
            var reader = new MessagePackReader(Event(topic, 3));
            var count = reader.ReadArrayHeader();
            reader.ReadInt32();

            Assert.Equal(topic, EventMessages.ReadEventTopic(ref reader, count));
            Assert.Equal(21, reader.ReadInt32());
            Assert.True(reader.End);
        }
    }

    [Fact]
    public void An_event_whose_topic_is_empty_too_long_or_not_a_string_has_none()
    {
        foreach (var bytes in new[]
        {
            Event("", 3),
            Event(s_tooLongTopic, 3),
            Bytes.Pack((ref MessagePackWriter writer) =>
            {
                writer.WriteArrayHeader(3);
                writer.Write(9);
                writer.Write(5);
                writer.Write(21);
            }),
        })
            Assert.Null(ReadEventTopic(bytes));
    }

    [Fact]
    public void An_event_of_fewer_than_three_elements_is_refused_by_name()
    {
        var error = Assert.Throws<InvalidDataException>(() => ReadEventTopic(Event("temp", 2)));

        Assert.Equal("An event has 3 elements (kind, topic, value), not 2.", error.Message);
    }

    private static byte[] Subscriptions(string[] topics) =>
        Bytes.Pack((ref MessagePackWriter writer) => EventMessages.WriteSubscriptions(ref writer, topics));

    /// <summary>An event of <paramref name="count"/> elements: kind, topic, then the value 21 when there is room.</summary>
    private static byte[] Event(string topic, int count) =>
        Bytes.Pack((ref MessagePackWriter writer) =>
        {
            writer.WriteArrayHeader(count);
            writer.Write(9);
            writer.Write(topic);
            if (count > 2)
                writer.Write(21);
        });

    private static string? ReadEventTopic(byte[] bytes)
    {
        var reader = new MessagePackReader(bytes);
        var count = reader.ReadArrayHeader();
        Assert.Equal(9, reader.ReadInt32());
        return EventMessages.ReadEventTopic(ref reader, count);
    }

    private static (HashSet<string> Topics, bool AtEnd) ReadSubscriptions(byte[] bytes, int maxTopics)
    {
        var reader = new MessagePackReader(bytes);
        var count = reader.ReadArrayHeader();
        Assert.Equal(8, reader.ReadInt32());
        var topics = EventMessages.ReadSubscriptions(ref reader, count, maxTopics);
        return (topics, reader.End);
    }
}
