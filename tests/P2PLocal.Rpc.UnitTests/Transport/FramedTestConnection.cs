using System.IO.Pipelines;
using System.Net.Sockets;
using System.Threading.Channels;
using MessagePack;
using P2PLocal.Rpc.Framing;
using P2PLocal.Rpc.Testing;
using P2PLocal.Rpc.Transport;

namespace P2PLocal.Rpc.UnitTests.Transport;

/// <summary>
/// A minimal <see cref="FramedConnection"/> for tests of the base class itself: it records the frames that arrive, sends
/// what the test gives it, and opens the protected members a subclass uses (holding received bytes, waiting for room).
/// </summary>
internal sealed class FramedTestConnection : FramedConnection
{
    private int _slotsFreed;
    private int _closes;

    public FramedTestConnection(InMemoryConnection wire, long maxBufferedBytes = 1 << 20, TimeProvider? clock = null)
        : this(wire.ClientSocket, wire.Client, maxBufferedBytes, clock)
    {
    }

    /// <summary>Frames over a stream of the test's making (which owns <paramref name="socket"/>).</summary>
    public FramedTestConnection(Socket socket, Stream stream, long maxBufferedBytes = 1 << 20, TimeProvider? clock = null)
        : base(socket, stream, 64 * 1024, maxBufferedBytes, clock)
    {
    }

    /// <summary>A peer that reads nothing: the pipe toward it takes 1 KiB before its writer waits.</summary>
    public static PipeOptions NotReading => new(pauseWriterThreshold: 1024, resumeWriterThreshold: 512, useSynchronizationContext: false);

    public Channel<byte[]> Received { get; } = Channel.CreateUnbounded<byte[]>();

    /// <summary>Received frames are held against the buffer limit until <see cref="Release"/>.</summary>
    public bool HoldFrames { get; init; }

    public bool Inline { get; set; } = true;

    /// <summary>Runs on the read loop for each frame, after it is recorded (to send from the read loop).</summary>
    public Action<byte[]>? OnEachFrame { get; init; }

    /// <summary>Runs on the read loop before its first read (null: the base class's, which does nothing).</summary>
    public Func<ValueTask>? BeforeReading { get; init; }

    public int SlotsFreed => Volatile.Read(ref _slotsFreed);

    public int Closes => Volatile.Read(ref _closes);

    public void Start(bool fullFrames = true)
    {
        if (fullFrames)
            AcceptFullFrames();
        StartLoops();
    }

    /// <summary>Counts received bytes still being served (as a handler would hold its request).</summary>
    public void Hold(int bytes) => HoldReceived(bytes);

    public void Release(int bytes) => ReleaseReceived(bytes);

    /// <summary>Completes when the buffered bytes are back under the limit, or the connection closed.</summary>
    public Task WaitForRoom() => WaitForRoomAsync();

    /// <summary>A control message whose writing throws.</summary>
    public bool SendFailing(bool holdsRequestSlot) =>
        TrySend(0, static (ref MessagePackWriter _, int _) => throw new InvalidOperationException("no"), int.MaxValue, holdsRequestSlot);

    /// <summary>A control message holding <paramref name="text"/>.</summary>
    public bool SendText(string text, int maxFrameSize, bool holdsRequestSlot) =>
        TrySend(text, static (ref MessagePackWriter writer, string s) => writer.Write(s), maxFrameSize, holdsRequestSlot);

    protected override bool SendInline => Inline;

    protected override ValueTask BeforeReadingAsync() => BeforeReading?.Invoke() ?? base.BeforeReadingAsync();

    protected override void OnFrame(ReceivedFrame frame)
    {
        byte[] payload;
        using (frame)
        {
            if (HoldFrames)
                HoldReceived(frame.Length);
            payload = frame.Payload.ToArray();
            Received.Writer.TryWrite(payload);
        }

        OnEachFrame?.Invoke(payload);
    }

    protected override void OnClosed(Exception? reason) => Interlocked.Increment(ref _closes);

    protected override void OnRequestSlotsFreed(int count) => Interlocked.Add(ref _slotsFreed, count);

    public async Task<byte[]> NextAsync() => await Received.Reader.ReadAsync().AsTask().Within();

    /// <summary>A frame of the message <c>[number, 'p' x padding]</c>.</summary>
    public static FrameBuffer Frame(int number, int padding = 0, bool holdsSlot = false)
    {
        var frame = new FrameBuffer { HoldsRequestSlot = holdsSlot };
        var writer = new MessagePackWriter(frame);
        writer.WriteArrayHeader(2);
        writer.Write(number);
        writer.Write(new string('p', padding));
        writer.Flush();
        frame.Complete(int.MaxValue);
        return frame;
    }

    /// <summary>The number of a message written by <see cref="Frame"/>.</summary>
    public static int NumberOf(ReadOnlyMemory<byte> payload)
    {
        var reader = new MessagePackReader(payload);
        reader.ReadArrayHeader();
        return reader.ReadInt32();
    }
}
