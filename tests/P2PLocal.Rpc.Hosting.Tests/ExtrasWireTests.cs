using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using MessagePack;
using OpenTelemetry;
using OpenTelemetry.Trace;
using P2PLocal.Rpc;
using P2PLocal.Rpc.Diagnostics;

namespace P2PLocal.Rpc.Hosting.Tests;

/// <summary>
/// The request's optional fifth element (extras, carrying the trace context) on the wire: sent only to a peer whose
/// hello lists the "extras" feature, since nodes of the previous version close the connection on it.
/// </summary>
public class ExtrasWireTests
{
    private static readonly ActivitySource s_test = new("P2PLocal.Rpc.Hosting.Tests.Wire");

    [Theory]
    [InlineData(false, 4)]
    [InlineData(true, 5)]
    public async Task A_traced_request_carries_extras_only_to_a_peer_whose_hello_offers_them(bool offersExtras, int expectedElements)
    {
        using var tracing = Sdk.CreateTracerProviderBuilder().AddSource(NodeTelemetry.ActivitySourceName, s_test.Name).Build();
        var port = LoopbackPorts.FreeUdpPort();
        using var peer = new ScriptedPeer(offersExtras);
        await using var caller = await TestNetwork.StartNodeAsync("caller", port);
        peer.Announce(port);
        await caller.Peers.WaitForAsync("scripted").Within();

        using var parent = s_test.StartActivity("work");
        Assert.NotNull(parent);
        Assert.Equal("ok", await caller.RequestAsync<string>("scripted", "f").Within());

        var request = await peer.Request.Within();
        Assert.Equal(expectedElements, request.Elements);
        if (offersExtras)
            Assert.StartsWith($"00-{parent.TraceId}-", request.TraceParent, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_node_hello_offers_extras_and_a_request_with_unknown_extras_is_served()
    {
        var port = LoopbackPorts.FreeUdpPort();
        await using var bob = await TestNetwork.StartNodeAsync("bob", port);
        bob.Register("f", _ => "served");
        using var client = new TcpClient();
        var (stream, hello) = await SayHelloAsync(client, bob);
        Assert.Contains("extras", ReadFeatures(hello));

        await WriteFrameAsync(stream, (ref MessagePackWriter w) =>
        {
            w.WriteArrayHeader(5);
            w.Write(0); w.Write(7u); w.Write("f");
            w.WriteMapHeader(0);
            w.WriteMapHeader(2);
            w.Write("future-key"); w.WriteArrayHeader(1); w.Write(42);
            w.Write("traceparent"); w.Write("not a traceparent");
        });
        var reply = new MessagePackReader(await ReadFrameAsync(stream).Within());
        Assert.Equal(3, reply.ReadArrayHeader());
        Assert.Equal(1, reply.ReadInt32());      // a result, not an error
        Assert.Equal(7u, reply.ReadUInt32());
        Assert.Equal("served", reply.ReadString());
    }

    [Fact]
    public async Task Extras_that_are_not_a_map_close_the_connection()
    {
        var port = LoopbackPorts.FreeUdpPort();
        await using var bob = await TestNetwork.StartNodeAsync("bob", port);
        bob.Register("f", _ => "served");
        using var client = new TcpClient();
        var (stream, _) = await SayHelloAsync(client, bob);

        await WriteFrameAsync(stream, (ref MessagePackWriter w) =>
        {
            w.WriteArrayHeader(5);
            w.Write(0); w.Write(8u); w.Write("f"); w.WriteMapHeader(0);
            w.Write(12345);
        });

        Assert.Equal(0, await stream.ReadAtLeastAsync(new byte[16], 1, throwOnEndOfStream: false).AsTask().Within()); // closed, no reply
    }

    /// <summary>Connects as a first-version caller would (a six-element hello) and returns the node's hello.</summary>
    private static async Task<(NetworkStream Stream, ReadOnlySequence<byte> Hello)> SayHelloAsync(TcpClient client, Node node)
    {
        await client.ConnectAsync(node.ServiceEndPoint).Within();
        var stream = client.GetStream();
        await WriteFrameAsync(stream, (ref MessagePackWriter w) =>
        {
            w.WriteArrayHeader(6);
            w.Write(4); w.Write(1); w.Write("raw"); w.Write("raw-instance"); w.Write(1 << 20); w.Write(0L);
        });
        return (stream, await ReadFrameAsync(stream).Within());
    }

    private static List<string> ReadFeatures(ReadOnlySequence<byte> hello)
    {
        var reader = new MessagePackReader(hello);
        var count = reader.ReadArrayHeader();
        Assert.True(count >= 7, $"The hello has {count} elements; features are element 6.");
        for (var i = 0; i < 6; i++)
            reader.Skip();
        var features = new List<string>();
        var n = reader.ReadArrayHeader();
        for (var i = 0; i < n; i++)
            features.Add(reader.ReadString()!);
        return features;
    }

    internal static async Task WriteFrameAsync(Stream stream, WriteMessage write) => await stream.WriteAsync(WireFrames.Frame(write));

    internal static async Task<ReadOnlySequence<byte>> ReadFrameAsync(Stream stream)
    {
        var prefix = new byte[4];
        await stream.ReadExactlyAsync(prefix);
        var payload = new byte[BinaryPrimitives.ReadInt32BigEndian(prefix)];
        await stream.ReadExactlyAsync(payload);
        return new ReadOnlySequence<byte>(payload);
    }

    /// <summary>A peer speaking the wire format by hand: answers the hello (with or without features) and one request.</summary>
    private sealed class ScriptedPeer : IDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly TaskCompletionSource<(int Elements, string? TraceParent)> _request = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly bool _offersExtras;
        private readonly Task _serving;

        public ScriptedPeer(bool offersExtras)
        {
            _offersExtras = offersExtras;
            _listener.Start();
            _serving = ServeAsync();
        }

        public Task<(int Elements, string? TraceParent)> Request => _request.Task;

        public void Announce(int discoveryPort)
        {
            using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp) { EnableBroadcast = true };
            var port = ((IPEndPoint)_listener.LocalEndpoint).Port;
            udp.SendTo(Encoding.UTF8.GetBytes($"itecnet|scripted|127.0.0.1:{port}|p2p1|scripted-1|hello|3000|1"),
                new IPEndPoint(IPAddress.Parse("127.255.255.255"), discoveryPort));
        }

        private async Task ServeAsync()
        {
            try
            {
                using var client = await _listener.AcceptTcpClientAsync();
                var stream = client.GetStream();
                await ReadFrameAsync(stream); // the caller's hello
                await WriteFrameAsync(stream, (ref MessagePackWriter w) =>
                {
                    w.WriteArrayHeader(_offersExtras ? 7 : 6);
                    w.Write(4); w.Write(1); w.Write("scripted"); w.Write("scripted-1"); w.Write(1 << 20); w.Write(0L);
                    if (_offersExtras)
                    {
                        w.WriteArrayHeader(1);
                        w.Write("extras");
                    }
                });
                var request = await ReadFrameAsync(stream);
                var reader = new MessagePackReader(request);
                var elements = reader.ReadArrayHeader();
                reader.ReadInt32();
                var id = reader.ReadUInt32();
                reader.Skip(); // function
                reader.Skip(); // kwargs
                string? traceParent = null;
                if (elements == 5)
                {
                    var count = reader.ReadMapHeader();
                    for (var i = 0; i < count; i++)
                    {
                        var key = reader.ReadString();
                        var value = reader.ReadString();
                        if (key == "traceparent")
                            traceParent = value;
                    }
                }

                await WriteFrameAsync(stream, (ref MessagePackWriter w) => { w.WriteArrayHeader(3); w.Write(1); w.Write(id); w.Write("ok"); });
                _request.TrySetResult((elements, traceParent));
                _ = await stream.ReadAsync(new byte[1]); // until the caller closes
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
            {
                _request.TrySetException(e);
            }
        }

        public void Dispose()
        {
            _listener.Stop();
            try
            {
                _serving.Wait(Patience.Limit);
            }
            catch (AggregateException)
            {
            }
        }
    }
}
