using System.Buffers;
using System.Runtime.CompilerServices;
using MessagePack;
using MessagePack.Formatters;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Framing;
using P2PLocal.Rpc.Testing;
using static P2PLocal.Rpc.UnitTests.Bytes;

namespace P2PLocal.Rpc.UnitTests;

/// <summary>
/// Streamed results without a node: <see cref="GeneratedStreams"/> against a recording sink (credit before each item,
/// flushes before every wait, the end written once), <see cref="DynamicStreamFunction"/>, and the <c>types</c> of
/// <c>$methods</c> (<see cref="ObjectTypeDescriptor"/>).
/// </summary>
public class StreamDispatchTests
{
    private static readonly MessagePackSerializerOptions s_options = KwargsReadingTests.s_node;

    /// <summary>Records what the producer asks of it, in order; credit is given at once unless a test holds it.</summary>
    private sealed class RecordingSink : IStreamSink
    {
        public List<string> Events { get; } = [];

        public List<FrameBuffer> Begun { get; } = [];

        public TaskCompletionSource? HeldCredit { get; set; }

        public CancellationToken CreditToken { get; private set; }

        public ValueTask WaitForCreditAsync(CancellationToken cancellationToken)
        {
            CreditToken = cancellationToken;
            Events.Add("credit");
            var held = HeldCredit;
            HeldCredit = null;
            return held is null ? default : new ValueTask(held.Task);
        }

        public FrameBuffer BeginItem()
        {
            var frame = new FrameBuffer();
            Begun.Add(frame);
            return frame;
        }

        public void Send(FrameBuffer frame)
        {
            Events.Add("send " + Convert.ToHexString(frame.Frame.Span[FrameBuffer.PrefixLength..]));
            frame.Dispose();
        }

        /// <summary>Completed by the next flush (after its event is recorded).</summary>
        public TaskCompletionSource? NextFlush { get; set; }

        public void Flush()
        {
            Events.Add("flush");
            var next = NextFlush;
            NextFlush = null;
            next?.SetResult();
        }
    }

    private static (FunctionCall Call, ArrayBufferWriter<byte> Result, RecordingSink Sink) StreamCall(
        string function, byte[]? kwargs = null, MessagePackSerializerOptions? options = null, CancellationToken token = default)
    {
        var result = new ArrayBufferWriter<byte>();
        var sink = new RecordingSink();
        var call = new FunctionCall(function, kwargs ?? Pack((ref MessagePackWriter w) => w.WriteMapHeader(0)), result,
            options ?? s_options, new CallContext("alice", "i1", null), token, sink);
        return (call, result, sink);
    }

    private static FunctionCall PlainCall(string function) =>
        new(function, Pack((ref MessagePackWriter w) => w.WriteMapHeader(0)), new ArrayBufferWriter<byte>(), s_options,
            new CallContext("alice", "i1", null), default);

    private static string Hex<T>(T value) => Convert.ToHexString(MessagePackSerializer.Serialize(value, s_options));

    private static async IAsyncEnumerable<T> Items<T>(IEnumerable<T> items, Action<CancellationToken>? seeToken = null, [EnumeratorCancellation] CancellationToken token = default)
    {
        seeToken?.Invoke(token);
        foreach (var item in items)
            yield return item;
        await Task.CompletedTask;
    }

    [Fact]
    public void A_request_for_one_result_is_refused_with_the_function_named()
    {
        var call = PlainCall("count");
        Assert.False(call.IsStream);

        var error = Assert.ThrowsAny<MethodNotFoundException>(() => GeneratedStreams.EnsureStream(call));
        Assert.Equal("'count' returns a stream of items, not one result: call it with RequestStreamAsync or a typed proxy of this version.", error.Message);
        Assert.Equal("count", error.Function);
        Assert.Throws(error.GetType(), () => { _ = GeneratedStreams.WriteAsync(call, Items(new[] { 1 })).AsTask(); });

        var (streamCall, _, _) = StreamCall("count");
        Assert.True(streamCall.IsStream);
        GeneratedStreams.EnsureStream(streamCall);
        Assert.Throws<ArgumentNullException>(() => { _ = GeneratedStreams.WriteAsync<int>(streamCall, null!).AsTask(); });
    }

    [Fact]
    public async Task Items_ready_at_once_are_sent_after_credit_each_and_flushed_once_before_the_end()
    {
        using var cts = new CancellationTokenSource();
        CancellationToken seen = default;
        var (call, result, sink) = StreamCall("count", token: cts.Token);

        await GeneratedStreams.WriteAsync(call, Items(new[] { 1, 300, -2 }, t => seen = t));

        Assert.Equal(["credit", "send " + Hex(1), "credit", "send " + Hex(300), "credit", "send " + Hex(-2), "credit", "flush"], sink.Events);
        Assert.Equal(cts.Token, seen);
        Assert.Equal(cts.Token, sink.CreditToken);
        Assert.Equal(new byte[] { 0xC0 }, result.WrittenSpan.ToArray());
    }

    [Fact]
    public async Task An_empty_stream_writes_only_the_end()
    {
        var (call, result, sink) = StreamCall("none");
        await GeneratedStreams.WriteAsync(call, Items(Array.Empty<string>()));
        Assert.Equal(["credit", "flush"], sink.Events);
        Assert.Equal(new byte[] { 0xC0 }, result.WrittenSpan.ToArray());
    }

    [Fact]
    public async Task Items_made_are_flushed_before_waiting_for_credit_and_before_waiting_for_the_next_item()
    {
        var (call, result, sink) = StreamCall("slow");
        var next = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var credit = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        async IAsyncEnumerable<string> Slow()
        {
            yield return "a";
            await next.Task;
            yield return "b";
        }

        var writing = GeneratedStreams.WriteAsync(call, Slow()).AsTask();
        // "a" is sent, then the producer waits for "b": what it made goes out first.
        Assert.Equal(["credit", "send " + Hex("a"), "credit", "flush"], sink.Events);
        sink.HeldCredit = credit;
        var flushed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        sink.NextFlush = flushed;
        next.SetResult();
        await flushed.Task.Within();
        // "b" is sent, then no credit: flushed before the wait.
        Assert.Equal(["credit", "send " + Hex("a"), "credit", "flush", "send " + Hex("b"), "credit", "flush"], sink.Events);
        Assert.Equal(0, result.WrittenCount);
        credit.SetResult();
        await writing.Within();
        Assert.Equal(["credit", "send " + Hex("a"), "credit", "flush", "send " + Hex("b"), "credit", "flush", "flush"], sink.Events);
        Assert.Equal(new byte[] { 0xC0 }, result.WrittenSpan.ToArray());
    }

    public sealed class Unserializable
    {
        public int X { get; set; }
    }

    private sealed class ThrowingResolver(Exception error) : IFormatterResolver
    {
        public IMessagePackFormatter<T>? GetFormatter<T>() => throw error;
    }

    private sealed class FailingFormatter(int failAt, Exception error) : IMessagePackFormatter<int>
    {
        public void Serialize(ref MessagePackWriter writer, int value, MessagePackSerializerOptions options)
        {
            writer.Write(value);
            if (value == failAt)
                throw error;
        }

        public int Deserialize(ref MessagePackReader reader, MessagePackSerializerOptions options) => reader.ReadInt32();
    }

    private sealed class Disposal<T>(IEnumerable<T> items) : IAsyncEnumerable<T>
    {
        public bool Disposed { get; private set; }

        public async IAsyncEnumerator<T> GetAsyncEnumerator(CancellationToken cancellationToken = default)
        {
            try
            {
                foreach (var item in items)
                    yield return item;
            }
            finally
            {
                Disposed = true;
            }

            await Task.CompletedTask;
        }
    }

    [Fact]
    public async Task An_item_type_without_a_formatter_is_named_before_anything_is_sent()
    {
        var (call, result, sink) = StreamCall("make");
        var error = await Assert.ThrowsAsync<SerializationFailedException>(async () => await GeneratedStreams.WriteAsync(call, Items(new[] { new Unserializable() })));
        Assert.StartsWith("The items of 'make' has type P2PLocal.Rpc.UnitTests.StreamDispatchTests+Unserializable, which cannot be serialized here: ", error.Message, StringComparison.Ordinal);
        Assert.Equal("items of 'make'", error.Member);
        Assert.Empty(sink.Events);
        Assert.Equal(0, result.WrittenCount);

        var (cancelled, _, _) = StreamCall("make", options: MessagePackSerializerOptions.Standard.WithResolver(new ThrowingResolver(new OperationCanceledException())));
        await Assert.ThrowsAsync<OperationCanceledException>(async () => await GeneratedStreams.WriteAsync(cancelled, Items(new[] { 1 })));
    }

    [Fact]
    public async Task An_item_that_fails_to_serialize_is_named_its_frame_given_back_and_the_items_before_it_flushed()
    {
        var options = s_options.WithResolver(MessagePack.Resolvers.CompositeResolver.Create([new FailingFormatter(2, new InvalidOperationException("bad"))], [s_options.Resolver]));
        var (call, result, sink) = StreamCall("nums", options: options);
        var items = new Disposal<int>([1, 2, 3]);

        var error = await Assert.ThrowsAsync<SerializationFailedException>(async () => await GeneratedStreams.WriteAsync(call, items));
        Assert.Equal("item of 'nums'", error.Member);
        Assert.IsType<InvalidOperationException>(error.InnerException);
        Assert.Equal(["credit", "send " + Hex(1), "credit", "flush"], sink.Events);
        Assert.Equal(2, sink.Begun.Count);
        Assert.ThrowsAny<ArgumentException>(() => sink.Begun[1].GetSpan(1)); // the failed frame's buffer went back to the pool
        Assert.True(items.Disposed);
        Assert.Equal(0, result.WrittenCount);

        var (cancelled, cancelledResult, cancelledSink) = StreamCall("nums",
            options: s_options.WithResolver(MessagePack.Resolvers.CompositeResolver.Create([new FailingFormatter(1, new OperationCanceledException())], [s_options.Resolver])));
        await Assert.ThrowsAsync<OperationCanceledException>(async () => await GeneratedStreams.WriteAsync(cancelled, Items(new[] { 1 })));
        Assert.Equal(["credit", "flush"], cancelledSink.Events);
        Assert.Equal(0, cancelledResult.WrittenCount);
    }

    [Fact]
    public async Task A_dynamic_stream_function_is_described_as_a_stream_and_gets_kwargs_context_and_token()
    {
        IReadOnlyDictionary<string, object?>? seen = null;
        CallContext? context = null;
        CancellationToken token = default;
        var function = new DynamicStreamFunction("ticks", (kwargs, ctx, ct) =>
        {
            seen = kwargs;
            context = ctx;
            token = ct;
            return Items(new object?[] { "x", 2L, null }, null, ct);
        });

        var descriptor = Assert.Single(function.Functions);
        Assert.Equal(("ticks", "stream<object>", true), (descriptor.Name, descriptor.ReturnType, descriptor.IsStream));
        Assert.Empty(descriptor.Parameters);

        var kwargs = Pack((ref MessagePackWriter w) => { w.WriteMapHeader(1); w.Write("n"); w.Write(3); });
        Assert.ThrowsAny<MethodNotFoundException>(() => { _ = function.InvokeAsync(new FunctionCall("ticks", kwargs, new ArrayBufferWriter<byte>(), s_options, new CallContext("bob", "i2", null), default)).AsTask(); });
        Assert.Null(seen);

        using var cts = new CancellationTokenSource();
        var (call, result, sink) = StreamCall("ticks", kwargs, token: cts.Token);
        await function.InvokeAsync(call);

        Assert.Equal(new Dictionary<string, object?> { ["n"] = 3L }, seen);
        Assert.Equal("alice", context!.PeerName);
        Assert.Equal(cts.Token, token);
        Assert.Equal(["credit", "send " + Hex<object?>("x"), "credit", "send " + Hex<object?>(2L), "credit", "send C0", "credit", "flush"], sink.Events);
        Assert.Equal(new byte[] { 0xC0 }, result.WrittenSpan.ToArray());
    }

    [Theory]
    [InlineData("stream<int>", true)]
    [InlineData("stream<object>", true)]
    [InlineData("stream<int", false)]
    [InlineData("int>", false)]
    [InlineData("Stream<int>", false)]
    [InlineData("int", false)]
    public void A_descriptor_is_a_stream_when_its_result_is_spelled_stream_of_T(string returns, bool isStream) =>
        Assert.Equal(isStream, new FunctionDescriptor("f", [], returns).IsStream);

    [Fact]
    public void Methods_tells_the_object_types_and_reads_them_back()
    {
        var order = new ObjectTypeDescriptor("Shop.Order", false,
        [
            new ObjectMemberDescriptor("Id", "int", false) { IntKey = 0 },
            new ObjectMemberDescriptor("Lines", "Shop.Line[]", true) { IntKey = 1 },
        ]);
        var line = new ObjectTypeDescriptor("Shop.Line", true, [new ObjectMemberDescriptor("Sku", "string", true) { StringKey = "sku" }]);
        var odd = new ObjectTypeDescriptor("Odd", false, [new ObjectMemberDescriptor("K", "int", false)]);
        var function = new FunctionDescriptor("place", [], "Shop.Order", "fp") { ObjectTypes = [line, order, odd] };

        var bytes = Pack((ref MessagePackWriter w) => BuiltInFunctions.WriteDescriptors(ref w, [function]));
        var expected = Pack((ref MessagePackWriter w) =>
        {
            w.WriteArrayHeader(1);
            w.WriteMapHeader(5);
            w.Write("name"); w.Write("place");
            w.Write("params"); w.WriteArrayHeader(0);
            w.Write("returns"); w.Write("Shop.Order");
            w.Write("fingerprint"); w.Write("fp");
            w.Write("types"); w.WriteMapHeader(3);
            w.Write("Shop.Line"); w.WriteMapHeader(2); w.Write("layout"); w.Write("map"); w.Write("members"); w.WriteArrayHeader(1);
            w.WriteMapHeader(4); w.Write("name"); w.Write("Sku"); w.Write("key"); w.Write("sku"); w.Write("type"); w.Write("string"); w.Write("required"); w.Write(true);
            w.Write("Shop.Order"); w.WriteMapHeader(2); w.Write("layout"); w.Write("array"); w.Write("members"); w.WriteArrayHeader(2);
            w.WriteMapHeader(4); w.Write("name"); w.Write("Id"); w.Write("key"); w.Write(0); w.Write("type"); w.Write("int"); w.Write("required"); w.Write(false);
            w.WriteMapHeader(4); w.Write("name"); w.Write("Lines"); w.Write("key"); w.Write(1); w.Write("type"); w.Write("Shop.Line[]"); w.Write("required"); w.Write(true);
            w.Write("Odd"); w.WriteMapHeader(2); w.Write("layout"); w.Write("array"); w.Write("members"); w.WriteArrayHeader(1);
            w.WriteMapHeader(4); w.Write("name"); w.Write("K"); w.Write("key"); w.Write(0); w.Write("type"); w.Write("int"); w.Write("required"); w.Write(false);
        });
        Assert.Equal(expected, bytes);

        var reader = new MessagePackReader(bytes);
        var read = Assert.Single(BuiltInFunctions.ReadDescriptors(ref reader));
        Assert.True(reader.End);
        Assert.Equal(3, read.ObjectTypes.Count);
        Assert.Equal(("Shop.Line", true), (read.ObjectTypes[0].Name, read.ObjectTypes[0].IsMap));
        Assert.Equal(line.Members[0], read.ObjectTypes[0].Members.Single());
        Assert.Equal(("Shop.Order", false), (read.ObjectTypes[1].Name, read.ObjectTypes[1].IsMap));
        Assert.Equal(order.Members, read.ObjectTypes[1].Members);
        Assert.Equal(new ObjectMemberDescriptor("K", "int", false) { IntKey = 0 }, read.ObjectTypes[2].Members.Single());
    }

    [Fact]
    public void Reading_object_types_skips_unknown_keys_and_members_without_a_usable_key()
    {
        var bytes = Pack((ref MessagePackWriter w) =>
        {
            w.WriteArrayHeader(2);
            w.WriteMapHeader(2);
            w.Write("name"); w.Write("f");
            w.Write("types"); w.WriteMapHeader(1);
            w.Write("T"); w.WriteMapHeader(3);
            w.Write("future"); w.WriteArrayHeader(1); w.Write(1);
            w.Write("layout"); w.Write("tree");
            w.Write("members"); w.WriteArrayHeader(4);
            w.WriteMapHeader(2); w.Write("name"); w.Write("NoKey"); w.Write("type"); w.Write("int");
            w.WriteMapHeader(2); w.Write("name"); w.Write("NilKey"); w.Write("key"); w.WriteNil();
            w.WriteMapHeader(4); w.Write("name"); w.WriteNil(); w.Write("type"); w.WriteNil(); w.Write("key"); w.Write(7); w.Write("extra"); w.WriteMapHeader(0);
            w.WriteMapHeader(2); w.Write("required"); w.Write(true); w.Write("key"); w.Write("k");
            w.WriteMapHeader(2);
            w.Write("types"); w.WriteArrayHeader(1); w.Write("not a map");
            w.Write("name"); w.Write("g");
        });
        var reader = new MessagePackReader(bytes);
        var read = BuiltInFunctions.ReadDescriptors(ref reader);
        Assert.True(reader.End);

        var type = Assert.Single(read[0].ObjectTypes);
        Assert.Equal(("T", false), (type.Name, type.IsMap));
        Assert.Equal(
            [new ObjectMemberDescriptor("", "object", false) { IntKey = 7 }, new ObjectMemberDescriptor("", "object", true) { StringKey = "k" }],
            type.Members);
        Assert.Equal("g", read[1].Name);
        Assert.Empty(read[1].ObjectTypes);
    }
}
