using System.Collections.Concurrent;
using MessagePack;
using P2PLocal.Rpc.Testing;
using P2PLocal.Rpc.Transport;
using static P2PLocal.Rpc.UnitTests.Transport.FramedTestConnection;

namespace P2PLocal.Rpc.UnitTests.Transport;

/// <summary>
/// The start and the pauses of <see cref="FramedConnection"/>'s read loop (issue 17, run T's survivors): nothing is
/// read before <c>BeforeReadingAsync</c> (a TLS handshake) completes and its failure closes the connection; what the
/// loop's frames send is gathered into one write; a loop paused by the buffer limit resumes with the next frame.
/// </summary>
public class FramedConnectionReadStartAndPauseTests
{
    /// <summary>The wire frame of the message <c>[number, 'p' x padding]</c> (as <see cref="FramedTestConnection.Frame"/>).</summary>
    private static byte[] WireFrame(int number, int padding = 0) => WireFrames.Frame((ref MessagePackWriter writer) =>
    {
        writer.WriteArrayHeader(2);
        writer.Write(number);
        writer.Write(new string('p', padding));
    });

    [Fact]
    public async Task Frames_are_read_only_once_BeforeReadingAsync_completed()
    {
        var wire = new InMemoryConnection();
        var order = new ConcurrentQueue<string>();
        var handshake = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var connection = new FramedTestConnection(wire)
        {
            BeforeReading = () =>
            {
                order.Enqueue("before reading");
                return new ValueTask(handshake.Task);
            },
            OnEachFrame = payload => order.Enqueue($"frame {NumberOf(payload)}"),
        };
        connection.Start();
        await wire.Peer.WriteAsync(WireFrame(7));
        await Patience.Until(() => !order.IsEmpty);
        Assert.False(connection.Received.Reader.TryRead(out _));

        handshake.SetResult();
        Assert.Equal(7, NumberOf(await connection.NextAsync()));
        await Patience.Until(() => order.Count == 2);
        Assert.Equal(["before reading", "frame 7"], order);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_BeforeReadingAsync_that_fails_closes_the_connection_with_its_error_and_nothing_is_read()
    {
        var wire = new InMemoryConnection();
        var failed = new IOException("The TLS handshake failed.");
        var connection = new FramedTestConnection(wire) { BeforeReading = () => ValueTask.FromException(failed) };
        await wire.Peer.WriteAsync(WireFrame(7));
        connection.Start();

        Assert.Same(failed, await connection.Closed.Within());
        await connection.DisposeAsync();
        Assert.False(connection.Received.Reader.TryRead(out _));
    }

    [Fact]
    public async Task Frames_sent_while_the_read_loop_handles_one_read_go_out_in_one_write()
    {
        var wire = new InMemoryConnection();
        FramedTestConnection? connection = null;
        connection = new FramedTestConnection(wire) { OnEachFrame = payload => connection!.TrySend(Frame(NumberOf(payload) * 10)) };
        connection.Start(); // inline writes allowed: only the gathering keeps the three replies together
        await wire.Peer.WriteAsync((byte[])[.. WireFrame(1), .. WireFrame(2), .. WireFrame(3)]); // one read

        for (var i = 1; i <= 3; i++)
            Assert.Equal(i * 10, NumberOf(await WireFrames.ReadFrameAsync(wire.Peer).Within()));
        Assert.Equal(1, wire.Client.Writes);
        await connection.DisposeAsync();
    }

    [Fact]
    public async Task A_read_loop_paused_by_the_limit_resumes_with_the_frame_after_the_last_one_it_handed_over()
    {
        var wire = new InMemoryConnection();
        var length = WireFrame(1, padding: 1000).Length - 4;
        var connection = new FramedTestConnection(wire, maxBufferedBytes: (2 * length) - 1) { HoldFrames = true };
        connection.Start();
        await wire.Peer.WriteAsync((byte[])[.. Enumerable.Range(1, 5).SelectMany(i => WireFrame(i, padding: 1000))]); // one read

        for (var i = 1; i <= 5; i += 2)
        {
            Assert.Equal(i, NumberOf(await connection.NextAsync()));
            if (i < 5)
                Assert.Equal(i + 1, NumberOf(await connection.NextAsync())); // over the limit: the loop pauses after it
            await Patience.Until(() => connection.BufferedBytes == (i < 5 ? 2 : 1) * length);
            connection.Release((int)connection.BufferedBytes); // reading resumes
        }

        await wire.Peer.WriteAsync(WireFrame(6));
        Assert.Equal(6, NumberOf(await connection.NextAsync())); // nothing handed over twice
        Assert.Equal(WireFrame(6).Length - 4, connection.BufferedBytes);
        connection.Release((int)connection.BufferedBytes);
        await connection.DisposeAsync();
    }
}
