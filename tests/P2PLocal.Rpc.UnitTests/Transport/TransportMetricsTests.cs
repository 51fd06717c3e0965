using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using MessagePack;
using P2PLocal.Rpc.Diagnostics;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Protocol;
using P2PLocal.Rpc.Testing;

namespace P2PLocal.Rpc.UnitTests.Transport;

/// <summary>Runs alone (after the parallel tests): the meters are process-wide, so no other connection may count meanwhile.</summary>
[CollectionDefinition(nameof(TransportMetricsTests), DisableParallelization = true)]
public sealed class TransportMetricsRunsAlone;

/// <summary>The connection metrics a <c>FramedConnection</c> reports: open connections by direction, and frame bytes both ways.</summary>
[Collection(nameof(TransportMetricsTests))]
public class TransportMetricsTests
{
    [Fact]
    public async Task An_outbound_connection_and_the_bytes_of_its_frames_are_counted()
    {
        var active = new ConcurrentQueue<(long Change, string Direction)>();
        long transmitted = 0, received = 0;
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == NodeTelemetry.MeterName && instrument.Name is "p2plocal.active_connections" or "p2plocal.network.io")
                    l.EnableMeasurementEvents(instrument);
            },
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            var tag = (string)tags[0].Value!;
            if (instrument.Name == "p2plocal.active_connections")
                active.Enqueue((value, tag));
            else if (tag == "transmit")
                Interlocked.Add(ref transmitted, value);
            else
                Interlocked.Add(ref received, value);
        });
        listener.Start();

        var (connection, peer) = await ScriptedPeer.ConnectAsync();
        var call = connection.InvokeAsync("f", 3, ScriptedPeer.WriteX, ScriptedPeer.ReadInt, ScriptedPeer.Forever, CancellationToken.None).AsTask();
        var request = await peer.ReadAsync(MessageKind.Request);
        await peer.ReplyAsync(request.Id, 30);
        Assert.Equal(30, await call.Within());
        await connection.DisposeAsync();
        listener.Dispose();

        Assert.Equal(new[] { (1L, "outbound"), (-1L, "outbound") }, active);
        var callerHello = WireFrames.Frame((ref MessagePackWriter writer) => Messages.WriteHello(ref writer, ScriptedPeer.CallerHello)).Length;
        Assert.Equal(callerHello + 4 + request.Payload.Length, Interlocked.Read(ref transmitted));
        var peerHello = WireFrames.Frame(ScriptedPeer.HelloOf("bob-1")).Length;
        var reply = WireFrames.Frame((ref MessagePackWriter writer) =>
        {
            Messages.WriteResultHeader(ref writer, request.Id);
            writer.Write(30);
        }).Length;
        Assert.Equal(peerHello + reply, Interlocked.Read(ref received));
    }
}
