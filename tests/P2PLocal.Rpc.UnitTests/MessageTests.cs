using System.Diagnostics;
using System.Text;
using MessagePack;
using P2PLocal.Rpc.Protocol;
using static P2PLocal.Rpc.UnitTests.Bytes;

namespace P2PLocal.Rpc.UnitTests;

/// <summary>The message shapes of PROTOCOL.md: exact bytes written, and what a reader refuses and why.</summary>
public class MessageTests
{
    private static Hello ReadHello(byte[] bytes)
    {
        var reader = new MessagePackReader(bytes);
        Assert.Equal(MessageKind.Hello, Messages.ReadKind(ref reader, out var count));
        var hello = Messages.ReadHello(ref reader, count);
        Assert.True(reader.End, "the whole hello is read, extra elements included");
        return hello;
    }

    private static byte[] HelloBytes(int count, int version = 1, string? name = "bob", string? instance = "i1", int maxFrame = 4096, Write? rest = null) =>
        Pack((ref MessagePackWriter w) =>
        {
            w.WriteArrayHeader(count);
            w.Write(4);
            w.Write(version);
            w.Write(name);
            w.Write(instance);
            w.Write(maxFrame);
            rest?.Invoke(ref w);
        });

    [Fact]
    public void A_hello_is_written_as_seven_elements_ending_in_the_features()
    {
        var bytes = Pack((ref MessagePackWriter w) => Messages.WriteHello(ref w, new Hello(1, "ab", "i", 5000, 1234)));

        var expected = Pack((ref MessagePackWriter w) =>
        {
            w.WriteArrayHeader(7);
            w.Write(4);
            w.Write(1);
            w.Write("ab");
            w.Write("i");
            w.Write(5000);
            w.Write(1234L);
            w.WriteArrayHeader(3);
            w.Write("extras");
            w.Write("stream");
            w.Write("events");
        });
        Assert.Equal(expected, bytes);
        Assert.Equal(new Hello(1, "ab", "i", 5000, 1234) { AcceptsExtras = true, AcceptsStreams = true, AcceptsEvents = true }, ReadHello(bytes));
    }

    [Fact]
    public void A_five_element_hello_from_an_older_node_reads_with_no_idle_timeout_and_no_extras()
    {
        var hello = ReadHello(HelloBytes(5));
        Assert.Equal(new Hello(1, "bob", "i1", 4096, 0), hello);
        Assert.False(hello.AcceptsExtras);
    }

    [Fact]
    public void A_negative_idle_timeout_reads_as_zero_and_a_non_integer_sixth_element_is_skipped()
    {
        Assert.Equal(0, ReadHello(HelloBytes(6, rest: (ref MessagePackWriter w) => w.Write(-5L))).IdleTimeoutMs);
        Assert.Equal(7, ReadHello(HelloBytes(6, rest: (ref MessagePackWriter w) => w.Write(7L))).IdleTimeoutMs);

        var odd = ReadHello(HelloBytes(7, rest: (ref MessagePackWriter w) => { w.Write("not a number"); w.WriteArrayHeader(1); w.Write("extras"); }));
        Assert.Equal(0, odd.IdleTimeoutMs);
        Assert.False(odd.AcceptsExtras); // features only count in their own place, after the idle timeout
    }

    [Fact]
    public void Features_must_be_an_array_and_unknown_features_and_elements_are_skipped()
    {
        var notArray = ReadHello(HelloBytes(7, rest: (ref MessagePackWriter w) => { w.Write(1L); w.Write("extras"); }));
        Assert.False(notArray.AcceptsExtras);

        var mixed = ReadHello(HelloBytes(9, rest: (ref MessagePackWriter w) =>
        {
            w.Write(1L);
            w.WriteArrayHeader(4);
            w.Write("zstd");
            w.Write(5);
            w.WriteArrayHeader(1);
            w.Write("extras"); // nested: not a feature of this array
            w.Write("extras");
            w.WriteMapHeader(1);
            w.Write("k");
            w.WriteArrayHeader(0);
            w.WriteNil();
        }));
        Assert.True(mixed.AcceptsExtras);
        Assert.Equal(1, mixed.IdleTimeoutMs);

        var none = ReadHello(HelloBytes(7, rest: (ref MessagePackWriter w) => { w.Write(1L); w.WriteArrayHeader(3); w.Write("extra"); w.Write("extrass"); w.Write(new string('s', 65)); }));
        Assert.False(none.AcceptsExtras);
        Assert.False(none.AcceptsStreams);

        var streams = ReadHello(HelloBytes(7, rest: (ref MessagePackWriter w) => { w.Write(1L); w.WriteArrayHeader(1); w.Write("stream"); }));
        Assert.True(streams.AcceptsStreams);
        Assert.False(streams.AcceptsExtras);

        var twice = ReadHello(HelloBytes(7, rest: (ref MessagePackWriter w) => { w.Write(1L); w.WriteArrayHeader(2); w.Write("extras"); w.Write("extras"); }));
        Assert.True(twice.AcceptsExtras); // listed twice is still listed
    }

    [Fact]
    public void A_hello_of_four_elements_is_malformed()
    {
        var bytes = Pack((ref MessagePackWriter w) => { w.WriteArrayHeader(4); w.Write(4); w.Write(1); w.Write("a"); w.Write("b"); });
        var error = Assert.Throws<MessagePackSerializationException>(() => ReadHello(bytes));
        Assert.Equal("A hello needs 5 elements.", error.Message);
    }

    [Fact]
    public void Another_protocol_version_is_a_bad_hello_that_names_both_versions()
    {
        var error = Assert.Throws<BadHelloException>(() => ReadHello(HelloBytes(5, version: 2)));
        Assert.Equal("Protocol version 2 is not supported; this node speaks version 1.", error.Message);
        Assert.Throws<BadHelloException>(() => ReadHello(HelloBytes(5, version: 0)));
    }

    [Fact]
    public void Frame_limits_below_1024_are_bad_hellos_and_1024_is_accepted()
    {
        var error = Assert.Throws<BadHelloException>(() => ReadHello(HelloBytes(5, maxFrame: 1023)));
        Assert.Equal("A maxFrameSize of 1023 is below the minimum of 1024 bytes.", error.Message);
        Assert.Equal(1024, ReadHello(HelloBytes(5, maxFrame: 1024)).MaxFrameSize);
    }

    [Fact]
    public void Names_and_instance_ids_are_bounded_in_utf8_bytes_and_nil_reads_as_empty()
    {
        Assert.Equal(1024, ReadHello(HelloBytes(5, name: new string('n', 1024))).Name.Length);
        var name = Assert.Throws<BadHelloException>(() => ReadHello(HelloBytes(5, name: new string('n', 1025))));
        Assert.Equal("The hello's name is 1025 bytes; at most 1024 are allowed.", name.Message);
        Assert.Throws<BadHelloException>(() => ReadHello(HelloBytes(5, name: new string('\u00e9', 513)))); // 1026 bytes

        Assert.Equal(64, ReadHello(HelloBytes(5, instance: new string('i', 64))).InstanceId.Length);
        var instance = Assert.Throws<BadHelloException>(() => ReadHello(HelloBytes(5, instance: new string('i', 65))));
        Assert.Equal("The hello's instance id is 65 bytes; at most 64 are allowed.", instance.Message);

        var nil = ReadHello(HelloBytes(5, name: null, instance: null));
        Assert.Equal("", nil.Name);
        Assert.Equal("", nil.InstanceId);
        Assert.Equal("\u00e9t\u00e9", ReadHello(HelloBytes(5, name: "\u00e9t\u00e9")).Name);
    }

    [Theory]
    [InlineData(0, nameof(MessageKind.Request))]
    [InlineData(1, nameof(MessageKind.Result))]
    [InlineData(2, nameof(MessageKind.Error))]
    [InlineData(3, nameof(MessageKind.Cancel))]
    [InlineData(4, nameof(MessageKind.Hello))]
    [InlineData(7, nameof(MessageKind.StreamRequest))]
    [InlineData(99, "99")] // unknown kinds are read; the connection that reads one refuses it
    public void Kinds_are_read_as_sent(int kind, string expected)
    {
        var reader = new MessagePackReader(Pack((ref MessagePackWriter w) => { w.WriteArrayHeader(2); w.Write(kind); w.Write(9); }));
        Assert.Equal(expected, Messages.ReadKind(ref reader, out var count).ToString());
        Assert.Equal(2, count);
    }

    [Theory]
    [InlineData(-1, 2, "Unknown message kind -1.")]
    [InlineData(int.MinValue, 2, "Unknown message kind -2147483648.")]
    [InlineData(0, 1, "A message needs at least 2 elements; got 1.")]
    [InlineData(0, 0, "A message needs at least 2 elements; got 0.")]
    public void Other_kinds_and_short_arrays_are_malformed(int kind, int count, string message)
    {
        var bytes = Pack((ref MessagePackWriter w) => { w.WriteArrayHeader(count); w.Write(kind); w.Write(9); });
        var error = Assert.Throws<MessagePackSerializationException>(() =>
        {
            var reader = new MessagePackReader(bytes);
            Messages.ReadKind(ref reader, out _);
        });
        Assert.Equal(message, error.Message);
    }

    [Fact]
    public void Request_result_cancel_and_error_headers_have_their_exact_shapes()
    {
        Assert.Equal(Pack((ref MessagePackWriter w) => { w.WriteArrayHeader(4); w.Write(0); w.Write(7u); w.Write("f"); }),
            Pack((ref MessagePackWriter w) => Messages.WriteRequestHeader(ref w, 7, "f")));
        Assert.Equal(Pack((ref MessagePackWriter w) => { w.WriteArrayHeader(5); w.Write(0); w.Write(7u); w.Write("f"); }),
            Pack((ref MessagePackWriter w) => Messages.WriteRequestHeader(ref w, 7, "f", withExtras: true)));
        Assert.Equal(Pack((ref MessagePackWriter w) => { w.WriteArrayHeader(3); w.Write(1); w.Write(8u); }),
            Pack((ref MessagePackWriter w) => Messages.WriteResultHeader(ref w, 8)));
        Assert.Equal(Pack((ref MessagePackWriter w) => { w.WriteArrayHeader(2); w.Write(3); w.Write(9u); }),
            Pack((ref MessagePackWriter w) => Messages.WriteCancel(ref w, 9)));
        Assert.Equal(Pack((ref MessagePackWriter w) => { w.WriteArrayHeader(5); w.Write(2); w.Write(10u); w.Write(4); w.Write("T"); w.Write("M"); }),
            Pack((ref MessagePackWriter w) => Messages.WriteError(ref w, 10, ErrorCode.Busy, "T", "M")));
        Assert.Equal(Pack((ref MessagePackWriter w) => { w.WriteArrayHeader(5); w.Write(2); w.Write(0u); w.Write(8); w.Write("BadHello"); w.Write("why"); }),
            Pack((ref MessagePackWriter w) => Messages.WriteRefusal(ref w, ErrorCode.BadRequest, Messages.BadHelloType, "why")));
    }

    [Fact]
    public void An_error_reads_back_its_code_type_and_message_and_nil_strings_read_empty()
    {
        var bytes = Pack((ref MessagePackWriter w) => Messages.WriteError(ref w, 3, ErrorCode.InvalidKwargs, "Type", "Message"));
        var reader = new MessagePackReader(bytes);
        Assert.Equal(MessageKind.Error, Messages.ReadKind(ref reader, out var count));
        Assert.Equal(3u, reader.ReadUInt32());
        Assert.Equal((ErrorCode.InvalidKwargs, "Type", "Message"), Messages.ReadError(ref reader, count));

        var nils = new MessagePackReader(Pack((ref MessagePackWriter w) => { w.Write(1); w.WriteNil(); w.WriteNil(); }));
        Assert.Equal(((ErrorCode)1, "", ""), Messages.ReadError(ref nils, 5));

        var error = Assert.Throws<MessagePackSerializationException>(() =>
        {
            var shortError = new MessagePackReader(Pack((ref MessagePackWriter w) => w.Write(1)));
            Messages.ReadError(ref shortError, 4);
        });
        Assert.Equal("An error needs 5 elements.", error.Message);
    }

    [Theory]
    [InlineData(4)]
    [InlineData(5)]
    public void Requests_have_four_or_five_elements(int count)
    {
        var reader = new MessagePackReader(Pack((ref MessagePackWriter w) => w.Write(uint.MaxValue)));
        Assert.Equal(uint.MaxValue, Messages.ReadRequestId(ref reader, count));
    }

    [Theory]
    [InlineData(3)]
    [InlineData(6)]
    public void Requests_of_other_sizes_are_bad_requests(int count)
    {
        var error = Assert.Throws<InvalidDataException>(() =>
        {
            var reader = new MessagePackReader(Pack((ref MessagePackWriter w) => w.Write(1u)));
            Messages.ReadRequestId(ref reader, count);
        });
        Assert.Equal($"A request has 4 elements (5 with extras), not {count}.", error.Message);
    }

    [Fact]
    public void A_cancel_has_exactly_two_elements()
    {
        var reader = new MessagePackReader(Pack((ref MessagePackWriter w) => w.Write(42u)));
        Assert.Equal(42u, Messages.ReadCancelId(ref reader, 2));
        var error = Assert.Throws<InvalidDataException>(() =>
        {
            var r = new MessagePackReader(Pack((ref MessagePackWriter w) => w.Write(42u)));
            Messages.ReadCancelId(ref r, 3);
        });
        Assert.Equal("A cancel has 2 elements, not 3.", error.Message);
    }

    [Fact]
    public void Request_extras_must_be_a_map_and_are_skipped_whole()
    {
        var map = Pack((ref MessagePackWriter w) => { w.WriteMapHeader(1); w.Write("k"); w.WriteArrayHeader(2); w.Write(1); w.Write(2); w.Write(99); });
        var reader = new MessagePackReader(map);
        Messages.SkipRequestExtras(ref reader, 5);
        Assert.Equal(99, reader.ReadInt32());

        var four = new MessagePackReader(map);
        Messages.SkipRequestExtras(ref four, 4); // no extras: nothing is read
        Assert.Equal(MessagePackType.Map, four.NextMessagePackType);

        var error = Assert.Throws<InvalidDataException>(() =>
        {
            var r = new MessagePackReader(Pack((ref MessagePackWriter w) => w.WriteArrayHeader(0)));
            Messages.SkipRequestExtras(ref r, 5);
        });
        Assert.Equal("A request's fifth element (extras) must be a map, not Array.", error.Message);
    }

    [Fact]
    public void An_error_that_fits_its_frame_is_written_whole()
    {
        var whole = Pack((ref MessagePackWriter w) => Messages.WriteError(ref w, 1, ErrorCode.HandlerFailed, "Type", "Message", 1024));
        Assert.Equal(Pack((ref MessagePackWriter w) => Messages.WriteError(ref w, 1, ErrorCode.HandlerFailed, "Type", "Message")), whole);
    }

    [Fact]
    public void An_error_too_long_for_the_frame_is_cut_to_fit_with_an_ellipsis()
    {
        foreach (var limit in new[] { 1024, 1100, 4096 })
        {
            var bytes = Pack((ref MessagePackWriter w) => Messages.WriteError(ref w, uint.MaxValue, ErrorCode.HandlerFailed, new string('T', 5000), new string('m', 10_000), limit));
            Assert.InRange(bytes.Length, limit - 16, limit);
            var reader = new MessagePackReader(bytes);
            Messages.ReadKind(ref reader, out var count);
            reader.ReadUInt32();
            var (_, type, message) = Messages.ReadError(ref reader, count);
            Assert.EndsWith("\u2026", type, StringComparison.Ordinal);
            Assert.EndsWith("\u2026", message, StringComparison.Ordinal);
            var room = limit - Messages.ErrorFrameOverhead;
            Assert.Equal(Math.Min(1024, room / 2), Encoding.UTF8.GetByteCount(type));
            Assert.Equal(room - Encoding.UTF8.GetByteCount(type), Encoding.UTF8.GetByteCount(message));
        }
    }

    [Fact]
    public void A_short_type_keeps_its_length_and_the_message_takes_the_rest()
    {
        var bytes = Pack((ref MessagePackWriter w) => Messages.WriteError(ref w, 1, ErrorCode.HandlerFailed, "Short", new string('m', 3000), 1024));
        var reader = new MessagePackReader(bytes);
        Messages.ReadKind(ref reader, out var count);
        reader.ReadUInt32();
        var (code, type, message) = Messages.ReadError(ref reader, count);
        Assert.Equal(ErrorCode.HandlerFailed, code);
        Assert.Equal("Short", type);
        Assert.Equal(1000 - 5, Encoding.UTF8.GetByteCount(message));
    }

    [Fact]
    public void A_frame_limit_below_the_overhead_leaves_empty_strings()
    {
        var bytes = Pack((ref MessagePackWriter w) => Messages.WriteError(ref w, 1, ErrorCode.HandlerFailed, "Type", "Message", 10));
        Assert.Equal(Pack((ref MessagePackWriter w) => Messages.WriteError(ref w, 1, ErrorCode.HandlerFailed, "", "")), bytes);
    }

    [Theory]
    [InlineData("abc", 3, "abc")]
    [InlineData("abcd", 3, "\u2026")]
    [InlineData("abcd", 2, "")]
    [InlineData("abcdef", 5, "ab\u2026")]
    [InlineData("\u00e9\u00e9\u00e9", 6, "\u00e9\u00e9\u00e9")]
    [InlineData("\u00e9\u00e9\u00e9\u00e9", 6, "\u00e9\u2026")]
    [InlineData("\u00e9\u00e9\u00e9\u00e9", 7, "\u00e9\u00e9\u2026")]
    [InlineData("\u20ac\u20ac\u20ac", 8, "\u20ac\u2026")]
    [InlineData("\u20ac\u20ac\u20ac", 9, "\u20ac\u20ac\u20ac")]
    [InlineData("\U0001F600\U0001F600", 7, "\U0001F600\u2026")]
    [InlineData("\U0001F600\U0001F600", 6, "\u2026")]
    public void Cut_texts_keep_whole_characters_within_the_byte_budget(string text, int maxBytes, string expected)
    {
        var cut = Messages.CutToUtf8Bytes(text, maxBytes);
        Assert.Equal(expected, cut);
        Assert.True(Encoding.UTF8.GetByteCount(cut) <= maxBytes);
    }

    [Fact]
    public void A_lone_surrogate_counts_as_the_three_bytes_of_its_replacement()
    {
        Assert.Equal("a\ud800\u2026", Messages.CutToUtf8Bytes("a\ud800bcdef", 7));
        Assert.Equal("a\u2026", Messages.CutToUtf8Bytes("a\ud800bcdef", 6));
        // A lone low surrogate after a BMP character is not a pair with it.
        Assert.Equal("\u20ac\u2026", Messages.CutToUtf8Bytes("\u20ac\udc00\u20ac\u20ac", 8));
    }

    [Fact]
    public void The_first_two_and_three_byte_characters_count_as_such()
    {
        Assert.Equal("\u0080\u2026", Messages.CutToUtf8Bytes("\u0080\u0080\u0080", 5));
        Assert.Equal("\u007f\u007f\u2026", Messages.CutToUtf8Bytes("\u007f\u007f\u007f\u007f\u007f\u007f", 5));
        Assert.Equal("\u0800\u2026", Messages.CutToUtf8Bytes("\u0800\u0800\u0800", 7));
        Assert.Equal("\u07ff\u07ff\u2026", Messages.CutToUtf8Bytes("\u07ff\u07ff\u07ff\u07ff", 7));
    }

    [Fact]
    public void An_error_whose_worst_case_size_just_fits_is_not_cut()
    {
        // room = 54 - 24 = 30 bytes, and 9 characters take at most (9 + 1) x 3 = 30 bytes in UTF-8: nothing is cut,
        // although the type alone (18 bytes) is longer than the half of the room a cut type would keep.
        var type = new string('\u20ac', 6);
        var bytes = Pack((ref MessagePackWriter w) => Messages.WriteError(ref w, 1, ErrorCode.HandlerFailed, type, "abc", 54));
        Assert.Equal(Pack((ref MessagePackWriter w) => Messages.WriteError(ref w, 1, ErrorCode.HandlerFailed, type, "abc")), bytes);
    }

    [Fact]
    public void The_extras_carry_the_traceparent_and_a_tracestate_up_to_512_characters()
    {
        using var activity = new Activity("t").SetIdFormat(ActivityIdFormat.W3C).Start();
        activity.TraceStateString = "k=v";
        var bytes = Pack((ref MessagePackWriter w) => RequestExtras.Write(ref w, activity));
        Assert.Equal(Pack((ref MessagePackWriter w) => { w.WriteMapHeader(2); w.Write("traceparent"); w.Write(activity.Id); w.Write("tracestate"); w.Write("k=v"); }), bytes);
        Assert.True(RequestExtras.TryReadTraceContext(bytes, out var context));
        Assert.Equal(activity.TraceId, context.TraceId);
        Assert.Equal(activity.SpanId, context.SpanId);
        Assert.Equal("k=v", context.TraceState);
        Assert.True(context.IsRemote);

        activity.TraceStateString = new string('s', 512);
        var longest = Pack((ref MessagePackWriter w) => RequestExtras.Write(ref w, activity));
        Assert.True(RequestExtras.TryReadTraceContext(longest, out context));
        Assert.Equal(512, context.TraceState!.Length);

        activity.TraceStateString = new string('s', 513);
        var tooLong = Pack((ref MessagePackWriter w) => RequestExtras.Write(ref w, activity));
        Assert.Equal(Pack((ref MessagePackWriter w) => { w.WriteMapHeader(1); w.Write("traceparent"); w.Write(activity.Id); }), tooLong);

        activity.TraceStateString = "";
        Assert.Equal(tooLong, Pack((ref MessagePackWriter w) => RequestExtras.Write(ref w, activity)));
    }

    [Fact]
    public void A_tracestate_over_512_characters_read_from_a_peer_is_ignored_not_fatal()
    {
        var traceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        var bytes = Pack((ref MessagePackWriter w) => { w.WriteMapHeader(2); w.Write("tracestate"); w.Write(new string('s', 513)); w.Write("traceparent"); w.Write(traceParent); });
        Assert.True(RequestExtras.TryReadTraceContext(bytes, out var context));
        Assert.Null(context.TraceState);
        Assert.Equal("0af7651916cd43dd8448eb211c80319c", context.TraceId.ToHexString());
    }

    [Fact]
    public void Extras_without_a_valid_traceparent_give_no_context()
    {
        Assert.False(RequestExtras.TryReadTraceContext(ReadOnlyMemory<byte>.Empty, out _));
        Assert.False(RequestExtras.TryReadTraceContext(Pack((ref MessagePackWriter w) => w.WriteMapHeader(0)), out _));
        Assert.False(RequestExtras.TryReadTraceContext(Pack((ref MessagePackWriter w) => { w.WriteMapHeader(1); w.Write("traceparent"); w.Write("garbage"); }), out _));
        Assert.False(RequestExtras.TryReadTraceContext(Pack((ref MessagePackWriter w) => { w.WriteMapHeader(1); w.Write("traceparent"); w.Write(5); }), out var context));
        Assert.Equal(default, context);
        // Truncated: the map promises two entries.
        Assert.False(RequestExtras.TryReadTraceContext(Pack((ref MessagePackWriter w) => { w.WriteMapHeader(2); w.Write("x"); w.Write(1); }), out _));
        // Unknown keys (and a non-string tracestate) are skipped.
        var traceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        Assert.True(RequestExtras.TryReadTraceContext(
            Pack((ref MessagePackWriter w) => { w.WriteMapHeader(3); w.Write("baggage"); w.WriteArrayHeader(1); w.Write(1); w.Write("tracestate"); w.Write(3); w.Write("traceparent"); w.Write(traceParent); }),
            out context));
        Assert.Null(context.TraceState);
    }

    [Fact]
    public void The_trace_context_goes_only_to_a_peer_that_accepts_extras_and_only_for_W3C_activities()
    {
        var accepts = new Hello(1, "p", "i", 4096) { AcceptsExtras = true };
        var older = new Hello(1, "p", "i", 4096);
        var previous = Activity.Current;
        try
        {
            Activity.Current = null;
            Assert.Null(RequestExtras.TraceContextFor(accepts));
            using var w3c = new Activity("w3c").SetIdFormat(ActivityIdFormat.W3C).Start();
            Assert.Same(w3c, RequestExtras.TraceContextFor(accepts));
            Assert.Null(RequestExtras.TraceContextFor(older));
            w3c.Stop();
            using var hierarchical = new Activity("h").SetIdFormat(ActivityIdFormat.Hierarchical).Start();
            Assert.Null(RequestExtras.TraceContextFor(accepts));
        }
        finally
        {
            Activity.Current = previous;
        }
    }
}
