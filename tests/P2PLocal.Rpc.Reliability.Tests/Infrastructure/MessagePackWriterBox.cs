using System.Buffers;
using MessagePack;

namespace P2PLocal.Rpc.Reliability.Tests;

/// <summary>Writes MessagePack values one call at a time (a ref struct writer cannot be captured by lambdas).</summary>
public sealed class MessagePackWriterBox
{
    private readonly ArrayBufferWriter<byte> _buffer = new();

    public MessagePackWriterBox Do(WriteAction action)
    {
        var writer = new MessagePackWriter(_buffer);
        action(ref writer);
        writer.Flush();
        return this;
    }

    public MessagePackWriterBox Array(int count) => Do((ref MessagePackWriter w) => w.WriteArrayHeader(count));

    public MessagePackWriterBox Map(int count) => Do((ref MessagePackWriter w) => w.WriteMapHeader(count));

    public MessagePackWriterBox Number(long value) => Do((ref MessagePackWriter w) => w.Write(value));

    public MessagePackWriterBox Str(string value) => Do((ref MessagePackWriter w) => w.Write(value));

    public MessagePackWriterBox Raw(params byte[] bytes)
    {
        _buffer.Write(bytes);
        return this;
    }

    public byte[] ToArray() => _buffer.WrittenSpan.ToArray();

    public delegate void WriteAction(ref MessagePackWriter writer);
}
