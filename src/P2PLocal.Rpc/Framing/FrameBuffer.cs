using System.Buffers;
using System.Buffers.Binary;

namespace P2PLocal.Rpc.Framing;

/// <summary>
/// A pooled, growable buffer that holds one outgoing frame: a 4-byte big-endian length prefix followed by the
/// MessagePack payload. The prefix is reserved up front and patched by <see cref="Complete"/>, so a message is
/// serialized straight into the bytes that go on the wire.
/// </summary>
/// <remarks>Not thread-safe. Owned by one writer until <see cref="Dispose"/> returns the array to the pool.</remarks>
internal sealed class FrameBuffer : IBufferWriter<byte>, IDisposable
{
    internal const int PrefixLength = 4;
    private byte[] _buffer;
    private int _written;

    public FrameBuffer(int initialCapacity = 256)
    {
        _buffer = ArrayPool<byte>.Shared.Rent(Math.Max(initialCapacity, 64));
        _written = PrefixLength;
    }

    /// <summary>The payload length so far (without the prefix).</summary>
    public int PayloadLength => _written - PrefixLength;

    /// <summary>The whole frame's length, prefix included.</summary>
    public int Length => _written;

    /// <summary>
    /// Set by a server on a reply: the request keeps its concurrency slot until this frame is written (or dropped),
    /// so replies a caller does not read count against its limit.
    /// </summary>
    public bool HoldsRequestSlot { get; set; }

    /// <summary>The whole frame, prefix included; valid after <see cref="Complete"/>.</summary>
    public ReadOnlyMemory<byte> Frame => _buffer.AsMemory(0, _written);

    /// <summary>Drops the payload written so far, keeping the buffer.</summary>
    public void Reset() => _written = PrefixLength;

    /// <summary>Writes the length prefix; throws when the payload is larger than <paramref name="maxFrameSize"/>.</summary>
    public void Complete(int maxFrameSize)
    {
        if (PayloadLength > maxFrameSize)
            throw new FrameTooLargeException($"The message is {PayloadLength} bytes; the frame limit is {maxFrameSize} bytes.");
        BinaryPrimitives.WriteInt32BigEndian(_buffer, PayloadLength);
    }

    public void Advance(int count)
    {
        if (count < 0 || _written + count > _buffer.Length)
            throw new ArgumentOutOfRangeException(nameof(count));
        _written += count;
    }

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _buffer.AsMemory(_written);
    }

    public Span<byte> GetSpan(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _buffer.AsSpan(_written);
    }

    private void Ensure(int sizeHint)
    {
        sizeHint = Math.Max(sizeHint, 1);
        if (_buffer.Length - _written >= sizeHint)
            return;
        var grown = ArrayPool<byte>.Shared.Rent(Math.Max(_buffer.Length * 2, _written + sizeHint));
        _buffer.AsSpan(0, _written).CopyTo(grown);
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = grown;
    }

    public void Dispose()
    {
        var buffer = Interlocked.Exchange(ref _buffer, []);
        if (buffer.Length > 0)
            ArrayPool<byte>.Shared.Return(buffer);
    }
}

/// <summary>One received frame's payload in a pooled array. Dispose once it has been read.</summary>
internal readonly struct ReceivedFrame : IDisposable
{
    private readonly byte[] _array;

    public ReceivedFrame(byte[] array, int length)
    {
        _array = array;
        Length = length;
    }

    public int Length { get; }

    public ReadOnlyMemory<byte> Payload => _array.AsMemory(0, Length);

    public void Dispose()
    {
        if (_array is { Length: > 0 })
            ArrayPool<byte>.Shared.Return(_array);
    }
}

/// <summary>Splits a byte stream into length-prefixed frames.</summary>
internal static class FrameDecoder
{
    /// <summary>
    /// Takes one whole frame off the front of <paramref name="buffer"/>, copying its payload into a pooled array.
    /// Returns false when more bytes are needed. Throws <see cref="InvalidDataException"/> for a length that is
    /// negative, zero or above <paramref name="maxFrameSize"/>: the connection cannot be trusted after that.
    /// </summary>
    public static bool TryReadFrame(ref ReadOnlySequence<byte> buffer, int maxFrameSize, out ReceivedFrame frame)
    {
        frame = default;
        if (buffer.Length < FrameBuffer.PrefixLength)
            return false;

        Span<byte> prefix = stackalloc byte[FrameBuffer.PrefixLength];
        buffer.Slice(0, FrameBuffer.PrefixLength).CopyTo(prefix);
        var length = BinaryPrimitives.ReadInt32BigEndian(prefix);
        if (length <= 0)
            throw new InvalidDataException($"Frame length {length} is not positive.");
        if (length > maxFrameSize)
        {
            Diagnostics.RpcMetrics.RequestRefused("too_large");
            throw new InvalidDataException($"Frame length {length} is above the limit of {maxFrameSize} bytes.");
        }
        if (buffer.Length - FrameBuffer.PrefixLength < length)
            return false;

        var array = ArrayPool<byte>.Shared.Rent(length);
        buffer.Slice(FrameBuffer.PrefixLength, length).CopyTo(array);
        buffer = buffer.Slice(FrameBuffer.PrefixLength + length);
        frame = new ReceivedFrame(array, length);
        return true;
    }
}
