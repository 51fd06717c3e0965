using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics.Metrics;
using System.IO.Pipelines;
using P2PLocal.Rpc.Framing;

namespace P2PLocal.Rpc.UnitTests;

/// <summary>Frames written into a <see cref="FrameBuffer"/> and cut back out by <see cref="FrameDecoder"/>, byte for byte.</summary>
public class FrameTests
{
    private static byte[] Frame(int length, params byte[] payload)
    {
        var bytes = new byte[4 + payload.Length];
        BinaryPrimitives.WriteInt32BigEndian(bytes, length);
        payload.CopyTo(bytes, 4);
        return bytes;
    }

    [Fact]
    public async Task Frames_split_across_reads_are_reassembled_in_order()
    {
        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 0)); // all written before any read
        var payloads = new[] { "one"u8.ToArray(), new byte[70_000], "three"u8.ToArray() };
        foreach (var payload in payloads)
        {
            var prefix = new byte[4];
            BinaryPrimitives.WriteInt32BigEndian(prefix, payload.Length);
            var bytes = prefix.Concat(payload).ToArray();
            // Dribble the bytes in 7-byte writes.
            for (var i = 0; i < bytes.Length; i += 7)
                await pipe.Writer.WriteAsync(bytes.AsMemory(i, Math.Min(7, bytes.Length - i)));
        }

        await pipe.Writer.CompleteAsync();

        var received = new List<byte[]>();
        while (true)
        {
            var result = await pipe.Reader.ReadAsync();
            var buffer = result.Buffer;
            while (FrameDecoder.TryReadFrame(ref buffer, 1 << 20, out var frame))
            {
                using (frame)
                    received.Add(frame.Payload.ToArray());
            }

            pipe.Reader.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted)
                break;
        }

        Assert.Equal(payloads, received);
    }

    [Fact]
    public void A_frame_is_a_big_endian_length_then_the_payload()
    {
        using var frame = new FrameBuffer();
        Assert.Equal(0, frame.PayloadLength);
        Assert.Equal(4, frame.Length);
        "abc"u8.CopyTo(frame.GetSpan(3));
        frame.Advance(3);
        Assert.Equal(3, frame.PayloadLength);
        Assert.Equal(7, frame.Length);

        frame.Complete(3);

        Assert.Equal(new byte[] { 0, 0, 0, 3, (byte)'a', (byte)'b', (byte)'c' }, frame.Frame.ToArray());
    }

    [Fact]
    public void GetMemory_and_GetSpan_start_after_what_was_written()
    {
        using var frame = new FrameBuffer();
        frame.GetMemory(2).Span[0] = 1;
        frame.Advance(1);
        frame.GetMemory(1).Span[0] = 2;
        frame.Advance(1);
        frame.GetSpan()[0] = 3;
        frame.Advance(1);
        frame.Complete(1024);

        Assert.Equal(new byte[] { 0, 0, 0, 3, 1, 2, 3 }, frame.Frame.ToArray());
    }

    [Fact]
    public void Reset_drops_the_payload_and_keeps_room_for_the_prefix()
    {
        using var frame = new FrameBuffer();
        frame.GetSpan(10).Fill(9);
        frame.Advance(10);
        frame.Reset();
        Assert.Equal(0, frame.PayloadLength);
        frame.GetSpan(1)[0] = 7;
        frame.Advance(1);
        frame.Complete(1024);

        Assert.Equal(new byte[] { 0, 0, 0, 1, 7 }, frame.Frame.ToArray());
    }

    [Fact]
    public void Growing_keeps_what_was_written_and_gives_the_room_asked_for()
    {
        using var frame = new FrameBuffer(initialCapacity: 0); // at least 64 bytes even when asked for none
        Assert.True(frame.GetSpan().Length >= 60);
        for (var i = 0; i < 50; i++)
        {
            frame.GetSpan(1)[0] = (byte)i;
            frame.Advance(1);
        }

        var big = frame.GetSpan(5000);
        Assert.True(big.Length >= 5000, $"asked for 5000 bytes, got {big.Length}");
        big[..5000].Fill(0xEE);
        frame.Advance(5000);
        frame.Complete(10_000);

        var bytes = frame.Frame.ToArray();
        Assert.Equal(5054, bytes.Length);
        Assert.Equal(5050, BinaryPrimitives.ReadInt32BigEndian(bytes));
        Assert.Equal(Enumerable.Range(0, 50).Select(i => (byte)i), bytes[4..54]);
        Assert.All(bytes[54..], b => Assert.Equal(0xEE, b));
    }

    [Fact]
    public void A_span_that_fits_exactly_is_not_grown()
    {
        using var frame = new FrameBuffer(64); // the pool hands out exactly 64 bytes: 60 after the prefix
        Assert.Equal(60, frame.GetSpan(60).Length);
        Assert.Equal(60, frame.GetMemory(60).Length);
        Assert.Equal(124, frame.GetSpan(61).Length); // one more byte doubles it
    }

    [Fact]
    public void Advance_refuses_negative_counts_and_counts_past_the_buffer()
    {
        using var frame = new FrameBuffer(64);
        var room = frame.GetSpan().Length;
        Assert.Throws<ArgumentOutOfRangeException>(() => frame.Advance(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => frame.Advance(room + 1));
        Assert.Equal(0, frame.PayloadLength);
        frame.Advance(room);
        Assert.Equal(room, frame.PayloadLength);
    }

    [Fact]
    public void Complete_refuses_a_payload_one_byte_over_the_limit_naming_both_sizes()
    {
        using var frame = new FrameBuffer();
        frame.GetSpan(2000);
        frame.Advance(2000);

        var error = Assert.Throws<FrameTooLargeException>(() => frame.Complete(1999));

        Assert.Equal("The message is 2000 bytes; the frame limit is 1999 bytes.", error.Message);
        frame.Complete(2000);
        Assert.Equal(2004, frame.Frame.Length);
        Assert.Equal(2000, BinaryPrimitives.ReadInt32BigEndian(frame.Frame.Span));
    }

    [Fact]
    public void Dispose_twice_is_harmless_and_a_default_received_frame_disposes()
    {
        var frame = new FrameBuffer();
        frame.Dispose();
        frame.Dispose();
        default(ReceivedFrame).Dispose();
        new ReceivedFrame([], 0).Dispose();
    }

    // The shared pool hands the array returned last on this thread to the next rent of its size: a buffer that was not
    // given back shows up as a different array.
    private static byte[] ArrayOf(ReadOnlyMemory<byte> memory)
    {
        Assert.True(System.Runtime.InteropServices.MemoryMarshal.TryGetArray(memory, out var segment));
        return segment.Array!;
    }

    [Fact]
    public void Dispose_gives_the_buffer_back_to_the_pool()
    {
        var frame = new FrameBuffer(1000);
        var array = ArrayOf(frame.Frame);
        frame.Dispose();
        var next = ArrayPool<byte>.Shared.Rent(1000);
        Assert.Same(array, next);
        ArrayPool<byte>.Shared.Return(next);
    }

    [Fact]
    public void Growing_gives_the_smaller_buffer_back_to_the_pool()
    {
        using var frame = new FrameBuffer(1000);
        var small = ArrayOf(frame.Frame);
        frame.GetSpan(5000);
        var next = ArrayPool<byte>.Shared.Rent(1000);
        Assert.Same(small, next);
        ArrayPool<byte>.Shared.Return(next);
    }

    [Fact]
    public void Disposing_a_received_frame_gives_its_array_back_to_the_pool()
    {
        var array = ArrayPool<byte>.Shared.Rent(3000);
        new ReceivedFrame(array, 10).Dispose();
        var next = ArrayPool<byte>.Shared.Rent(3000);
        Assert.Same(array, next);
        ArrayPool<byte>.Shared.Return(next);
    }

    [Fact]
    public void GetMemory_grows_to_the_room_asked_for()
    {
        using var frame = new FrameBuffer(64);
        frame.GetMemory(1).Span[0] = 42;
        frame.Advance(1);
        var memory = frame.GetMemory(5000);
        Assert.True(memory.Length >= 5000, $"asked for 5000 bytes, got {memory.Length}");
        frame.Advance(5000);
        frame.Complete(5001);
        Assert.Equal(42, frame.Frame.Span[4]);
    }

    [Fact]
    public void Advancing_by_zero_is_allowed()
    {
        using var frame = new FrameBuffer();
        frame.Advance(0);
        Assert.Equal(0, frame.PayloadLength);
    }

    [Fact]
    public void HoldsRequestSlot_is_off_until_set()
    {
        using var frame = new FrameBuffer();
        Assert.False(frame.HoldsRequestSlot);
        frame.HoldsRequestSlot = true;
        Assert.True(frame.HoldsRequestSlot);
    }

    [Fact]
    public void Fewer_than_four_bytes_are_not_a_frame_yet_and_are_left_in_place()
    {
        var sequence = new ReadOnlySequence<byte>(new byte[] { 0, 0, 0 });
        Assert.False(FrameDecoder.TryReadFrame(ref sequence, 1024, out var frame));
        Assert.Equal(3, sequence.Length);
        Assert.Equal(0, frame.Length);
    }

    [Fact]
    public void A_frame_missing_its_last_byte_waits_and_a_whole_one_is_taken_off_the_front()
    {
        var partial = new ReadOnlySequence<byte>(Frame(3, 1, 2));
        Assert.False(FrameDecoder.TryReadFrame(ref partial, 1024, out _));
        Assert.Equal(6, partial.Length);

        var two = new ReadOnlySequence<byte>([.. Frame(3, 1, 2, 3), .. Frame(1, 9), 0xAA]);
        Assert.True(FrameDecoder.TryReadFrame(ref two, 1024, out var first));
        using (first)
        {
            Assert.Equal(3, first.Length);
            Assert.Equal(new byte[] { 1, 2, 3 }, first.Payload.ToArray());
        }

        Assert.Equal(6, two.Length);
        Assert.True(FrameDecoder.TryReadFrame(ref two, 1024, out var second));
        using (second)
            Assert.Equal(new byte[] { 9 }, second.Payload.ToArray());
        Assert.Equal(new byte[] { 0xAA }, two.ToArray());
    }

    [Fact]
    public void A_prefix_and_payload_split_across_segments_are_read_whole()
    {
        var split = Bytes.Split([.. Frame(3, 1, 2, 3), .. Frame(2, 4, 5)], 2);
        Assert.True(FrameDecoder.TryReadFrame(ref split, 1024, out var first));
        using (first)
            Assert.Equal(new byte[] { 1, 2, 3 }, first.Payload.ToArray());
        Assert.True(FrameDecoder.TryReadFrame(ref split, 1024, out var second));
        using (second)
            Assert.Equal(new byte[] { 4, 5 }, second.Payload.ToArray());
        Assert.True(split.IsEmpty);
    }

    [Fact]
    public void Lengths_of_one_and_of_the_limit_are_accepted()
    {
        var one = new ReadOnlySequence<byte>(Frame(1, 5));
        Assert.True(FrameDecoder.TryReadFrame(ref one, 1, out var frame));
        frame.Dispose();
        Assert.True(one.IsEmpty);

        var atLimit = new ReadOnlySequence<byte>(Frame(1024, new byte[1024]));
        Assert.True(FrameDecoder.TryReadFrame(ref atLimit, 1024, out var big));
        Assert.Equal(1024, big.Length);
        big.Dispose();
    }

    [Theory]
    [InlineData(0, "Frame length 0 is not positive.")]
    [InlineData(-1, "Frame length -1 is not positive.")]
    [InlineData(int.MinValue, "Frame length -2147483648 is not positive.")]
    [InlineData(1025, "Frame length 1025 is above the limit of 1024 bytes.")]
    [InlineData(int.MaxValue, "Frame length 2147483647 is above the limit of 1024 bytes.")]
    public void Bad_lengths_are_refused_from_the_prefix_alone(int length, string message)
    {
        // Only the prefix has arrived: a lying length is refused before its body, not after waiting for it.
        var sequence = new ReadOnlySequence<byte>(Frame(length));
        var error = Assert.Throws<InvalidDataException>(() => FrameDecoder.TryReadFrame(ref sequence, 1024, out _));
        Assert.Equal(message, error.Message);
    }

    [Fact]
    public void A_frame_over_the_limit_is_counted_as_refused_too_large()
    {
        var refused = new List<string?>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == P2PLocal.Rpc.Diagnostics.NodeTelemetry.MeterName && instrument.Name.Contains("refused", StringComparison.Ordinal))
                l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((_, _, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Value is "too_large")
                    lock (refused)
                        refused.Add(tag.Value as string);
            }
        });
        listener.Start();

        var sequence = new ReadOnlySequence<byte>(Frame(2000));
        Assert.Throws<InvalidDataException>(() => FrameDecoder.TryReadFrame(ref sequence, 1024, out _));

        listener.Dispose();
        lock (refused)
            Assert.NotEmpty(refused);
    }
}
