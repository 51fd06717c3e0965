using System.Buffers;
using System.Buffers.Binary;
using MessagePack;

namespace P2PLocal.Rpc.Testing;

/// <summary>Writes one MessagePack message (for <see cref="WireFrames.Frame(WriteMessage)"/>).</summary>
public delegate void WriteMessage(ref MessagePackWriter writer);

/// <summary>Frames as they go on the wire (PROTOCOL.md: a 4-byte big-endian length, then the payload), for tests that speak raw TCP.</summary>
public static class WireFrames
{
    /// <summary>The frame of the message <paramref name="write"/> writes.</summary>
    public static byte[] Frame(WriteMessage write)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(buffer);
        write(ref writer);
        writer.Flush();
        return Frame(buffer.WrittenSpan);
    }

    /// <summary>The frame of a payload already written.</summary>
    public static byte[] Frame(ReadOnlySpan<byte> payload)
    {
        var frame = new byte[4 + payload.Length];
        BinaryPrimitives.WriteInt32BigEndian(frame, payload.Length);
        payload.CopyTo(frame.AsSpan(4));
        return frame;
    }

    /// <summary>Writes the frame of the message <paramref name="write"/> writes to <paramref name="stream"/>.</summary>
    public static async Task WriteFrameAsync(Stream stream, WriteMessage write, CancellationToken cancellationToken = default) =>
        await stream.WriteAsync(Frame(write), cancellationToken);

    /// <summary>Reads one frame from <paramref name="stream"/> and returns its payload.</summary>
    public static async Task<ReadOnlyMemory<byte>> ReadFrameAsync(Stream stream, CancellationToken cancellationToken = default)
    {
        var prefix = new byte[4];
        await stream.ReadExactlyAsync(prefix, cancellationToken);
        var payload = new byte[BinaryPrimitives.ReadInt32BigEndian(prefix)];
        await stream.ReadExactlyAsync(payload, cancellationToken);
        return payload;
    }
}
