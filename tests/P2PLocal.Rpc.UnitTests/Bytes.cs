using System.Buffers;
using MessagePack;

namespace P2PLocal.Rpc.UnitTests;

/// <summary>MessagePack bytes written by hand, and sequences split where a reader must cope with segments.</summary>
internal static class Bytes
{
    internal delegate void Write(ref MessagePackWriter writer);

    internal static byte[] Pack(Write write)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(buffer);
        write(ref writer);
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary><paramref name="bytes"/> as two segments, split after <paramref name="at"/> bytes.</summary>
    internal static ReadOnlySequence<byte> Split(byte[] bytes, int at)
    {
        var first = new Segment(bytes.AsMemory(0, at));
        var last = first.Append(bytes.AsMemory(at));
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory) => Memory = memory;

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory) { RunningIndex = RunningIndex + Memory.Length };
            Next = next;
            return next;
        }
    }
}
