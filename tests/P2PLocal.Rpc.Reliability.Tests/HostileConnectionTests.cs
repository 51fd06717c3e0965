using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using MessagePack;

namespace P2PLocal.Rpc.Reliability.Tests;

/// <summary>
/// Issue 8, items 7-9 and the hello/half-close/pool items: callers that never read, strings kept per connection,
/// squatted slots. Each bound is checked against the option that sets it, generously, so a regression fails and a
/// loaded machine does not.
/// </summary>
public class HostileConnectionTests(ITestOutputHelper output)
{
    private const int ReplyBytes = 16 * 1024;

    /// <summary>A node serving <c>echo</c> and <c>blob</c> (16 KiB back), which counts the calls it ran.</summary>
    private sealed class Victim : IAsyncDisposable
    {
        private int _blobCalls;

        private Victim(Node node) => Node = node;

        public Node Node { get; }

        public int BlobCalls => Volatile.Read(ref _blobCalls);

        public static async Task<Victim> StartAsync(NodeOptions options)
        {
            var victim = new Victim(await Net.StartAsync(options));
            var blob = new byte[ReplyBytes];
            victim.Node.Register("echo", kwargs => kwargs.GetValueOrDefault("value"));
            victim.Node.Register("blob", _ =>
            {
                Interlocked.Increment(ref victim._blobCalls);
                return blob;
            });
            return victim;
        }

        public ValueTask DisposeAsync() => Node.DisposeAsync();
    }

    private static NodeOptions Options(string name, int port, long? maxBuffered = null, TimeSpan? stall = null, int? maxIncoming = null,
        int? maxConcurrent = null, TimeSpan? idle = null) =>
        new()
        {
            Name = name,
            DiscoveryPort = port,
            Scope = DiscoveryScope.Loopback,
            AdvertiseInterval = TimeSpan.FromSeconds(1),
            ShutdownGracePeriod = TimeSpan.FromSeconds(1),
            MaxBufferedBytesPerConnection = maxBuffered ?? NodeOptions.DefaultMaxBufferedBytesPerConnection,
            StalledConnectionTimeout = stall ?? TimeSpan.FromSeconds(30),
            MaxIncomingConnections = maxIncoming ?? 1024,
            MaxConcurrentRequestsPerConnection = maxConcurrent ?? 1024,
            IdleConnectionTimeout = idle ?? TimeSpan.FromMinutes(2),
        };

    private static async Task<RawPeer> ConnectNotReadingAsync(IPEndPoint endPoint)
    {
        // A tiny receive window, so replies back up into the node instead of into this socket.
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, ReceiveBufferSize = 4096 };
        await socket.ConnectAsync(endPoint).WaitAsync(Net.Patience);
        var peer = RawPeer.Accepted(socket);
        await peer.SendFrameAsync(RawPeer.Hello("hog"));
        Assert.NotNull(await peer.ReadFrameAsync());
        return peer;
    }

    private static IReadOnlyCollection<Transport.ServerConnection> Incoming(Node node)
    {
        var listener = (Transport.ConnectionListener)typeof(Node)
            .GetField("_listener", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!.GetValue(node)!;
        return [.. listener.Connections];
    }

    private static List<Transport.ClientConnection> Outgoing(Node node)
    {
        var clients = (System.Collections.Concurrent.ConcurrentDictionary<string, Task<Transport.ClientConnection>>)typeof(Node)
            .GetField("_clients", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!.GetValue(node)!;
        return [.. clients.Values.Where(t => t.IsCompletedSuccessfully).Select(t => t.Result)];
    }

    [Fact]
    public async Task C7_a_caller_that_never_reads_is_throttled_then_closed_and_the_node_keeps_serving()
    {
        const int requests = 4000; // 62.5 MiB of replies
        const long bound = 1024 * 1024;
        const int maxConcurrent = 64;
        var stall = TimeSpan.FromSeconds(2);
        var port = Net.FreeUdpPort();
        await using var victim = await Victim.StartAsync(Options("victim", port, maxBuffered: bound, stall: stall, maxConcurrent: maxConcurrent));
        await using var caller = await Net.StartAsync(Net.Options("caller", port));
        await caller.Peers.WaitForAsync("victim").Within();

        using var hog = await ConnectNotReadingAsync(victim.Node.ServiceEndPoint);
        var clock = Stopwatch.StartNew();
        // Paced, as a steady client would send: a burst would mostly be refused as Busy, which proves nothing here.
        var sender = Task.Run(async () =>
        {
            for (var i = 1; i <= requests; i += 16)
            {
                var batch = Enumerable.Range(i, 16).SelectMany(id => RawPeer.Frame(RawPeer.Request((uint)id, "blob", Net.Pack(b => b.Map(0))))).ToArray();
                try
                {
                    await hog.Socket.SendAsync(batch, SocketFlags.None);
                }
                catch (SocketException)
                {
                    return;
                }

                await Task.Delay(1);
            }
        });

        // Watched from the node's side: reading on the hog's socket would make it an honest reader.
        long peakBuffered = 0;
        while (clock.Elapsed < Net.Patience)
        {
            var hogs = Incoming(victim.Node).Where(c => c.Peer?.Name == "hog" && !c.IsClosed).ToList();
            if (hogs.Count == 0)
                break;
            foreach (var connection in hogs)
            {
                peakBuffered = Math.Max(peakBuffered, connection.BufferedBytes);
            }

            await Net.AssertServesAsync(caller, "victim");
            await Task.Delay(50);
        }

        var closedAfter = clock.Elapsed;
        await sender.Within();
        var ran = victim.BlobCalls;
        output.WriteLine($"C7 never-reading caller: {requests} requests for 16 KiB replies sent; the node ran {ran} of them, " +
            $"peak buffered {peakBuffered / 1024} KiB (limit {bound / 1024} KiB), closed after {closedAfter.TotalMilliseconds:0} ms (stall timeout {stall.TotalMilliseconds} ms); honest caller served throughout");

        // Kernel socket buffers take a few MiB more of replies; the rest was never run. Requests admitted before the
        // limit was crossed each add one reply: at most MaxConcurrentRequestsPerConnection of them, as their slots are
        // held until written.
        Assert.True(ran < requests / 2, $"the node ran {ran} of {requests} requests whose replies nobody read");
        Assert.True(peakBuffered <= 2 * (bound + maxConcurrent * ReplyBytes), $"peak buffered {peakBuffered} bytes, limit {bound}");
        Assert.True(closedAfter < 3 * stall + TimeSpan.FromSeconds(2), $"closed after {closedAfter}");
        await Net.AssertServesAsync(caller, "victim");
    }

    [Fact]
    public async Task C7_a_caller_that_never_reads_small_replies_is_throttled_too()
    {
        const int requests = 200_000;
        const long bound = 256 * 1024;
        var logs = new CapturingLogs(Microsoft.Extensions.Logging.LogLevel.Debug);
        var port = Net.FreeUdpPort();
        var options = Options("victim", port, maxBuffered: bound, stall: TimeSpan.FromSeconds(2));
        await using var victim = await Victim.StartAsync(new NodeOptions
        {
            Name = options.Name, DiscoveryPort = port, Scope = DiscoveryScope.Loopback, MaxBufferedBytesPerConnection = bound,
            StalledConnectionTimeout = options.StalledConnectionTimeout, LoggerFactory = logs,
        });

        using var hog = await ConnectNotReadingAsync(victim.Node.ServiceEndPoint);
        var one = RawPeer.Frame(RawPeer.Request(0x1000_0000, "$methods", Net.Pack(b => b.Map(0)))); // a uint32 id, patched below
        var sender = Task.Run(async () =>
        {
            var batch = new byte[one.Length * 1000];
            for (var sent = 0; sent < requests; sent += 1000)
            {
                for (var i = 0; i < 1000; i++)
                {
                    one.CopyTo(batch, i * one.Length);
                    System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(batch.AsSpan((i * one.Length) + 7), (uint)(0x1000_0000 + sent + i));
                }

                try
                {
                    await hog.Socket.SendAsync(batch, SocketFlags.None);
                }
                catch (SocketException)
                {
                    return sent;
                }
            }

            return requests;
        });

        var clock = Stopwatch.StartNew();
        long peakBuffered = 0;
        while (clock.Elapsed < Net.Patience && !sender.IsCompleted)
        {
            foreach (var connection in Incoming(victim.Node))
                peakBuffered = Math.Max(peakBuffered, connection.BufferedBytes);
            await Task.Delay(20);
        }

        var sentBeforeClose = await sender.Within();
        output.WriteLine($"C7 small: {sentBeforeClose} $methods requests sent before the node closed the hog after {clock.ElapsedMilliseconds} ms; peak buffered {peakBuffered / 1024} KiB (limit {bound / 1024} KiB)");
        output.WriteLine(string.Join("\n", logs.Lines.TakeLast(10)));
        Assert.True(peakBuffered <= 2 * bound + 1024 * 1024, $"peak buffered {peakBuffered}");
    }
}
