using System.Buffers;
using System.Buffers.Binary;
using MessagePack;

namespace P2PLocal.Rpc.Testing;

/// <summary>Frames of the wire format (PROTOCOL.md, "Frames") written and read by hand, for tests that play a peer.</summary>
public static class WireFrames
{
    /// <summary>Writes one MessagePack message.</summary>
    public delegate void WriteMessage(ref MessagePackWriter writer);

    /// <summary>A whole frame: the 4-byte big-endian length, then the message.</summary>
    public static byte[] Frame(WriteMessage write)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(buffer);
        write(ref writer);
        writer.Flush();
        var frame = new byte[4 + buffer.WrittenCount];
        BinaryPrimitives.WriteInt32BigEndian(frame, buffer.WrittenCount);
        buffer.WrittenSpan.CopyTo(frame.AsSpan(4));
        return frame;
    }

    /// <summary>Writes one frame to <paramref name="stream"/>.</summary>
    public static async Task WriteFrameAsync(Stream stream, WriteMessage write, CancellationToken cancellationToken = default) =>
        await stream.WriteAsync(Frame(write), cancellationToken);

    /// <summary>Reads one frame's message from <paramref name="stream"/>.</summary>
    public static async Task<ReadOnlyMemory<byte>> ReadFrameAsync(Stream stream, CancellationToken cancellationToken = default)
    {
        var prefix = new byte[4];
        await stream.ReadExactlyAsync(prefix, cancellationToken);
        var payload = new byte[BinaryPrimitives.ReadInt32BigEndian(prefix)];
        await stream.ReadExactlyAsync(payload, cancellationToken);
        return payload;
    }
}
