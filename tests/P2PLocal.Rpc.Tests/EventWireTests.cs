using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using MessagePack;
using P2PLocal.Rpc.Testing;

namespace P2PLocal.Rpc.Tests;

/// <summary>Events on the wire (issue 14) against a peer written by hand: an older node, and one that never reads.</summary>
public sealed class EventWireTests
{
    [Fact]
    public async Task A_peer_without_the_events_feature_is_sent_no_event_and_keeps_its_connection()
    {
        var port = TestNetwork.FreeUdpPort();
        using var old = new ScriptedPeer(offersEvents: false, neverReads: false);
        await using var publisher = await TestNetwork.StartAsync("publisher", port);
        old.Announce(port);
        await publisher.Peers.WaitForAsync("scripted").Within();

        await publisher.PublishAsync("news", "one");
        Assert.Equal("ok", await publisher.RequestAsync<string>("scripted", "f").Within());
        await publisher.PublishAsync("news", "two");
        Assert.Equal("ok", await publisher.RequestAsync<string>("scripted", "f").Within());

        Assert.Equal([0, 0], old.Kinds); // two requests, no event (kind 9 would close an older node's connection)
        Assert.Equal(1, old.Connections);
        Assert.Equal(default, publisher.GetEventStatistics());
    }

    [Fact]
    public async Task A_subscriber_that_never_reads_fills_only_its_own_queue_and_the_publisher_counts_the_drops()
    {
        var port = TestNetwork.FreeUdpPort();
        using var stuck = new ScriptedPeer(offersEvents: true, neverReads: true);
        await using var fast = await TestNetwork.StartAsync("fast", port);
        var received = new ConcurrentQueue<int>();
        var progress = new SemaphoreSlim(0);
        using var subscription = fast.Subscribe<(int, byte[])>("load", e =>
        {
            received.Enqueue(e.Item1);
            progress.Release();
        });
        await using var publisher = await EventTests.StartAsync("publisher", port, new EventOptions { MaxQueuedEventsPerPeer = 64 }, maxBufferedBytes: 64 * 1024);
        stuck.Announce(port);
        await publisher.Peers.WaitForAsync("scripted").Within();
        await publisher.Peers.WaitForAsync("fast").Within();

        // Batches, each awaited at the fast subscriber, until the publisher drops for the stuck one: its socket
        // buffers, the connection's 64 KiB and its queue of 64 fill, and then nothing more is kept for it.
        const int Batch = 32, MaxEvents = 40_000; // a batch fits in the queue of 64, so the fast peer's link never drops
        var payload = new byte[2000];
        var published = 0;
        var dropsBeforeStuck = -1L; // drops counted once the stuck peer's topics are known are drops of its full queue
        while (published < MaxEvents)
        {
            var drops = publisher.GetEventStatistics().DroppedBySender;
            if (dropsBeforeStuck < 0 && stuck.Topics.Task.IsCompleted)
                dropsBeforeStuck = drops;
            if (dropsBeforeStuck >= 0 && drops > dropsBeforeStuck)
                break;
            for (var i = 0; i < Batch; i++, published++)
                Assert.True(publisher.PublishAsync("load", (published, payload)).IsCompletedSuccessfully, "PublishAsync never waits for a subscriber");
            for (var i = 0; i < Batch; i++)
                Assert.True(await progress.WaitAsync(Patience.Limit), "the fast subscriber got every event of the batch");
        }

        Assert.True(dropsBeforeStuck >= 0 && publisher.GetEventStatistics().DroppedBySender > dropsBeforeStuck,
            $"no drop after {published} events of {payload.Length} bytes to a peer that never reads");
        Assert.Equal(Enumerable.Range(0, published), received);
        Assert.Equal(0, fast.GetEventStatistics().DroppedByReceiver);
    }

    /// <summary>A peer speaking the wire format by hand: answers hellos, then records requests or reads nothing at all.</summary>
    private sealed class ScriptedPeer : IDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly bool _offersEvents;
        private readonly bool _neverReads;
        private readonly ConcurrentQueue<int> _kinds = new();
        private readonly CancellationTokenSource _stop = new();
        private readonly List<TcpClient> _clients = [];
        private readonly Task _serving;
        private int _connections;

        public ScriptedPeer(bool offersEvents, bool neverReads)
        {
            _offersEvents = offersEvents;
            _neverReads = neverReads;
            _listener.Start();
            _serving = AcceptAsync();
        }

        public IReadOnlyList<int> Kinds => [.. _kinds];

        public int Connections => Volatile.Read(ref _connections);

        public TaskCompletionSource Topics { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Announce(int discoveryPort)
        {
            using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp) { EnableBroadcast = true };
            var port = ((IPEndPoint)_listener.LocalEndpoint).Port;
            udp.SendTo(Encoding.UTF8.GetBytes($"itecnet|scripted|127.0.0.1:{port}|p2p1|scripted-1|hello|3000|1"),
                new IPEndPoint(IPAddress.Parse("127.255.255.255"), discoveryPort));
        }

        private async Task AcceptAsync()
        {
            try
            {
                while (true)
                {
                    var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                    Interlocked.Increment(ref _connections);
                    lock (_clients)
                        _clients.Add(client);
                    _ = ServeAsync(client.GetStream());
                }
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
            }
        }

        private async Task ServeAsync(NetworkStream stream)
        {
            try
            {
                await WireFrames.ReadFrameAsync(stream, _stop.Token); // the caller's hello
                await WireFrames.WriteFrameAsync(stream, (ref MessagePackWriter w) =>
                {
                    w.WriteArrayHeader(_offersEvents ? 7 : 6);
                    w.Write(4); w.Write(1); w.Write("scripted"); w.Write("scripted-1"); w.Write(1 << 20); w.Write(0L);
                    if (_offersEvents)
                    {
                        w.WriteArrayHeader(1);
                        w.Write("events");
                    }
                });
                if (_offersEvents)
                {
                    await WireFrames.WriteFrameAsync(stream, (ref MessagePackWriter w) => { w.WriteArrayHeader(2); w.Write(8); w.WriteArrayHeader(1); w.Write("load"); });
                    Topics.TrySetResult();
                }

                if (_neverReads)
                {
                    await Task.Delay(Timeout.Infinite, _stop.Token);
                    return;
                }

                while (true)
                {
                    var frame = await WireFrames.ReadFrameAsync(stream, _stop.Token);
                    var reader = new MessagePackReader(frame);
                    reader.ReadArrayHeader();
                    var kind = reader.ReadInt32();
                    _kinds.Enqueue(kind);
                    if (kind != 0)
                        continue;
                    var id = reader.ReadUInt32();
                    await WireFrames.WriteFrameAsync(stream, (ref MessagePackWriter w) => { w.WriteArrayHeader(3); w.Write(1); w.Write(id); w.Write("ok"); });
                }
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException or EndOfStreamException)
            {
            }
        }

        public void Dispose()
        {
            _stop.Cancel();
            _listener.Stop();
            lock (_clients)
            {
                foreach (var client in _clients)
                    client.Dispose();
            }

            try
            {
                _serving.Wait(Patience.Limit);
            }
            catch (AggregateException)
            {
            }

            _stop.Dispose();
        }
    }
}
