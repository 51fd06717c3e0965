using System.Collections.Concurrent;
using P2PLocal.Rpc.Protocol;
using P2PLocal.Rpc.Testing;

namespace P2PLocal.Rpc.Tests;

/// <summary>Events to every peer (issue 14): real nodes on loopback, two and three of them.</summary>
public sealed class EventTests
{
    /// <summary>A loopback node with the given event bounds and, when set, connection buffer limit.</summary>
    internal static Task<Node> StartAsync(string name, int port, EventOptions? events = null, long? maxBufferedBytes = null) => Node.StartAsync(new NodeOptions
    {
        Name = name,
        DiscoveryPort = port,
        Scope = DiscoveryScope.Loopback,
        ShutdownGracePeriod = TimeSpan.FromSeconds(2),
        Events = events ?? new EventOptions(),
        MaxBufferedBytesPerConnection = maxBufferedBytes ?? NodeOptions.DefaultMaxBufferedBytesPerConnection,
    });

    /// <summary>Waits for a condition fed by the nodes' own counters, with the harness's safety net.</summary>
    internal static async Task EventuallyAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + Patience.Limit;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
                throw new PatienceExceededException(Patience.Limit);
            await Task.Delay(10);
        }

        _ = what;
    }

    private sealed class Collector<T>(int expected)
    {
        private readonly ConcurrentQueue<T> _items = new();
        private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public IReadOnlyList<T> Items => [.. _items];

        public void Add(T item)
        {
            _items.Enqueue(item);
            if (_items.Count >= expected)
                _done.TrySetResult();
        }

        public Task Done => _done.Task;
    }

    [Fact]
    public async Task Events_of_one_publisher_arrive_in_order_at_every_subscriber_with_the_sender()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var first = await StartAsync("first", port);
        await using var second = await StartAsync("second", port);
        const int Count = 500;
        var atFirst = new Collector<(int, string)>(Count);
        var atSecond = new Collector<int>(Count);
        using var s1 = first.Subscribe<int>("ticks", (value, sender) => atFirst.Add((value, sender.Name)));
        using var s2 = second.Subscribe<int>("ticks", async (value, _, ct) =>
        {
            await Task.Yield();
            atSecond.Add(value);
        });
        await using var publisher = await StartAsync("publisher", port);
        await publisher.Peers.WaitForAsync("first").Within();
        await publisher.Peers.WaitForAsync("second").Within();

        for (var i = 0; i < Count; i++)
            await publisher.PublishAsync("ticks", i);

        await Task.WhenAll(atFirst.Done, atSecond.Done).Within();
        Assert.Equal(Enumerable.Range(0, Count), atFirst.Items.Select(i => i.Item1));
        Assert.All(atFirst.Items, i => Assert.Equal("publisher", i.Item2));
        Assert.Equal(Enumerable.Range(0, Count), atSecond.Items);
        Assert.Equal(new EventStatistics(2 * Count, 0, 0, 0, 0), publisher.GetEventStatistics());
        Assert.Equal(Count, first.GetEventStatistics().Received);
    }

    [Fact]
    public async Task A_subscriber_that_never_returns_costs_only_its_own_queue_and_its_drops_are_counted()
    {
        var port = TestNetwork.FreeUdpPort();
        const int Count = 1000;
        const int SlowQueue = 8;
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var slow = await StartAsync("slow", port, new EventOptions { MaxQueuedEventsPerPeer = SlowQueue });
        await using var fast = await StartAsync("fast", port, new EventOptions { MaxQueuedEventsPerPeer = 2 * Count });
        var slowCalls = 0;
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var stuck = slow.Subscribe<int>("load", async (_, _, ct) =>
        {
            Interlocked.Increment(ref slowCalls);
            entered.TrySetResult();
            await release.Task.WaitAsync(ct);
        });
        var atFast = new Collector<int>(Count);
        using var quick = fast.Subscribe<int>("load", atFast.Add);
        await using var publisher = await StartAsync("publisher", port, new EventOptions { MaxQueuedEventsPerPeer = 2 * Count });
        await publisher.Peers.WaitForAsync("slow").Within();
        await publisher.Peers.WaitForAsync("fast").Within();

        for (var i = 0; i < Count; i++)
            Assert.True(publisher.PublishAsync("load", i).IsCompletedSuccessfully, "PublishAsync never waits for a subscriber");

        await atFast.Done.Within();
        Assert.Equal(Enumerable.Range(0, Count), atFast.Items);
        await EventuallyAsync(() => slow.GetEventStatistics().Received == Count, "every event reached the slow node");
        var atSlow = slow.GetEventStatistics();
        // One event is in the stuck handler (or about to be), SlowQueue wait behind it, the rest were dropped there.
        Assert.InRange(atSlow.DroppedByReceiver, Count - SlowQueue - 1, Count - SlowQueue);
        await entered.Task.Within();
        Assert.Equal(1, Volatile.Read(ref slowCalls));
        Assert.Equal(0, fast.GetEventStatistics().DroppedByReceiver);
        Assert.Equal(0, publisher.GetEventStatistics().DroppedBySender);
        release.TrySetResult();
    }

    [Fact]
    public async Task A_stuck_subscriber_holds_no_more_event_bytes_than_its_connection_buffer_limit()
    {
        var port = TestNetwork.FreeUdpPort();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var stuck = await StartAsync("stuck", port, maxBufferedBytes: 64 * 1024);
        using var subscription = stuck.Subscribe<byte[]>("load", async (_, _, ct) => await release.Task.WaitAsync(ct));
        await using var publisher = await StartAsync("publisher", port, new EventOptions { MaxQueuedEventsPerPeer = 16 }, maxBufferedBytes: 64 * 1024);
        await publisher.Peers.WaitForAsync("stuck").Within();
        var payload = new byte[8 * 1024];

        // 16 MB: more than the socket buffers, both connections' 64 KiB and the publisher's queue of 16 can hold.
        for (var i = 0; i < 2000; i++)
            await publisher.PublishAsync("load", payload);
        await EventuallyAsync(() => publisher.GetEventStatistics().DroppedBySender > 0, "the publisher dropped for the stuck peer");
        await EventuallyAsync(() => stuck.GetEventStatistics().Received >= 8, "the stuck peer filled its buffer");

        // It stopped reading once its queued events held 64 KiB (8 of 8 KiB, plus the one that crossed the limit).
        Assert.InRange(stuck.GetEventStatistics().Received, 8, 10);
        Assert.Equal(0, stuck.GetEventStatistics().DroppedByReceiver);
        release.TrySetResult();
    }

    [Fact]
    public async Task Unsubscribing_stops_delivery_and_the_publisher_stops_sending()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var subscriber = await StartAsync("subscriber", port);
        subscriber.Register("ping", _ => "pong");
        var news = new ConcurrentQueue<string>();
        var firstNews = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var marker = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var subscription = subscriber.Subscribe<string>("news", n =>
        {
            news.Enqueue(n);
            firstNews.TrySetResult();
        });
        using var markers = subscriber.Subscribe<string>("marker", _ => marker.TrySetResult());
        await using var publisher = await StartAsync("publisher", port);
        await publisher.Peers.WaitForAsync("subscriber").Within();

        await publisher.PublishAsync("nobody-listens", "x");
        await publisher.PublishAsync("news", "one");
        await firstNews.Task.Within();
        subscription.Dispose();
        // The subscriber's new topic list goes out on the same connection before this reply, so it has arrived.
        Assert.Equal("pong", await publisher.RequestAsync("subscriber", "ping").Within());
        var sentBefore = publisher.GetEventStatistics().Sent;
        await publisher.PublishAsync("news", "two");
        await publisher.PublishAsync("marker", "end");
        await marker.Task.Within();

        Assert.Equal(["one"], news);
        Assert.Equal(sentBefore + 1, publisher.GetEventStatistics().Sent); // the marker only: "two" was never sent
        Assert.Equal(2, subscriber.GetEventStatistics().Received); // "one" and the marker; "nobody-listens" was never sent either
    }

    [Fact]
    public async Task Events_above_the_subscribers_size_limit_are_dropped_there_and_counted()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var subscriber = await StartAsync("subscriber", port, new EventOptions { MaxEventSize = 1024 });
        var got = new ConcurrentQueue<int>();
        var small = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var _ = subscriber.Subscribe<byte[]>("blobs", b =>
        {
            got.Enqueue(b.Length);
            if (b.Length < 100)
                small.TrySetResult();
        });
        await using var publisher = await StartAsync("publisher", port);
        await publisher.Peers.WaitForAsync("subscriber").Within();

        await publisher.PublishAsync("blobs", new byte[4096]);
        await publisher.PublishAsync("blobs", new byte[10]);
        await small.Task.Within();

        Assert.Equal([10], got);
        Assert.Equal(1, subscriber.GetEventStatistics().DroppedByReceiver);
    }

    [Fact]
    public async Task Topics_and_events_are_bounded_where_they_are_made()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var node = await StartAsync("bounded", port, new EventOptions { MaxTopicsPerPeer = 2, MaxEventSize = 256 });
        var tooLong = new string('t', EventOptions.MaxTopicBytes + 1);
        Assert.Throws<ArgumentException>(() => node.Subscribe<int>(tooLong, _ => { }));
        Assert.Throws<ArgumentException>(() => node.Subscribe<int>("", _ => { }));
        await Assert.ThrowsAsync<ArgumentException>(() => node.PublishAsync(tooLong, 1));
        await Assert.ThrowsAsync<FrameTooLargeException>(() => node.PublishAsync("big", new byte[300]));

        using var a = node.Subscribe<int>("a", _ => { });
        using var a2 = node.Subscribe<int>("a", _ => { }); // the same topic again costs no slot
        var b = node.Subscribe<int>("b", _ => { });
        var full = Assert.Throws<InvalidOperationException>(() => node.Subscribe<int>("c", _ => { }));
        Assert.Contains("MaxTopicsPerPeer", full.Message, StringComparison.Ordinal);
        b.Dispose();
        using var c = node.Subscribe<int>("c", _ => { });
    }

    [Fact]
    public void A_peers_topic_list_keeps_at_most_the_bound_and_skips_bad_topics()
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        var writer = new MessagePack.MessagePackWriter(buffer);
        writer.WriteArrayHeader(2);
        writer.Write(8);
        writer.WriteArrayHeader(6);
        writer.Write("one");
        writer.Write(42);
        writer.Write(new string('x', EventOptions.MaxTopicBytes + 1));
        writer.Write("");
        writer.Write("two");
        writer.Write("three");
        writer.Flush();
        var reader = new MessagePack.MessagePackReader(buffer.WrittenMemory);

        var kind = Protocol.Messages.ReadKind(ref reader, out var count);
        var topics = EventMessages.ReadSubscriptions(ref reader, count, maxTopics: 2);

        Assert.Equal(Protocol.MessageKind.Subscriptions, kind);
        Assert.Equal(["one", "two"], topics.Order());
        Assert.True(reader.End);
    }
}
