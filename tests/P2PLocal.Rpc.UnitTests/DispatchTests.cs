using System.Buffers;
using MessagePack;
using MessagePack.Formatters;
using P2PLocal.Rpc.Dispatch;
using static P2PLocal.Rpc.UnitTests.Bytes;

namespace P2PLocal.Rpc.UnitTests;

/// <summary>
/// Dispatch without a node: dynamic functions, results written and read, the <c>$methods</c> shape, contract verdicts,
/// the in-flight budget, the registry and the generated-formatter helpers.
/// </summary>
public class DispatchTests
{
    private static readonly MessagePackSerializerOptions s_options = KwargsReadingTests.s_node;

    private static (FunctionCall Call, ArrayBufferWriter<byte> Result) Call(string function, byte[] kwargs, MessagePackSerializerOptions? options = null, CancellationToken token = default)
    {
        var result = new ArrayBufferWriter<byte>();
        return (new FunctionCall(function, kwargs, result, options ?? s_options, new CallContext("alice", "i1", null), token), result);
    }

    /// <summary>The exception <paramref name="start"/> throws before it returns a task (argument checks, a failing write).</summary>
    private static T ThrownAtOnce<T>(Func<ValueTask> start)
        where T : Exception
    {
        try
        {
            _ = start().AsTask();
        }
        catch (T e)
        {
            return e;
        }

        throw new Xunit.Sdk.XunitException($"Expected {typeof(T).Name} to be thrown before a task was returned.");
    }

    private static byte[] Serialized<T>(T value) => MessagePackSerializer.Serialize(value, MessagePackSerializerOptions.Standard);

    [Fact]
    public async Task A_dynamic_function_gets_the_kwargs_and_context_and_its_result_is_written()
    {
        IReadOnlyDictionary<string, object?>? seen = null;
        CallContext? context = null;
        using var cts = new CancellationTokenSource();
        CancellationToken token = default;
        var function = new DynamicFunction("greet", (kwargs, ctx, ct) =>
        {
            seen = kwargs;
            context = ctx;
            token = ct;
            return ValueTask.FromResult<object?>("Hello, " + kwargs["name"]);
        });

        Assert.Equal("greet", Assert.Single(function.Functions).Name);
        Assert.Empty(function.Functions[0].Parameters);
        var (call, result) = Call("greet", Pack((ref MessagePackWriter w) => { w.WriteMapHeader(1); w.Write("name"); w.Write("Ann"); }), token: cts.Token);
        await function.InvokeAsync(call);

        Assert.Equal(new Dictionary<string, object?> { ["name"] = "Ann" }, seen);
        Assert.Equal("alice", context!.PeerName);
        Assert.Equal("alice", call.CallerName);
        Assert.Equal(cts.Token, token);
        Assert.Equal(Serialized("Hello, Ann"), result.WrittenSpan.ToArray());
    }

    [Fact]
    public async Task A_dynamic_function_trusts_the_servers_scan_and_does_not_scan_the_kwargs_again()
    {
        // The server scans every request's kwargs against the budget before it makes a FunctionCall; reading them
        // again here would double the cost of every call. Kwargs over the budget reach the handler to prove it.
        var function = new DynamicFunction("count", (kwargs, _, _) => ValueTask.FromResult<object?>(kwargs.Count));
        var (call, result) = Call("count", Pack((ref MessagePackWriter w) =>
        {
            w.WriteMapHeader(8);
            for (var i = 0; i < 8; i++)
            {
                w.Write("k" + i);
                w.Write(i);
            }
        }));
        await function.InvokeAsync(call);
        Assert.Equal(Serialized<object?>(8), result.WrittenSpan.ToArray());
    }

    [Fact]
    public async Task A_dynamic_function_that_completes_later_has_its_result_written_when_it_does()
    {
        var gate = new TaskCompletionSource<object?>(TaskCreationOptions.RunContinuationsAsynchronously);
        var function = new DynamicFunction("later", (_, _, _) => new ValueTask<object?>(gate.Task));
        var (call, result) = Call("later", Pack((ref MessagePackWriter w) => w.WriteMapHeader(0)));

        var pending = function.InvokeAsync(call).AsTask();
        Assert.False(pending.IsCompleted);
        Assert.Equal(0, result.WrittenCount);
        gate.SetResult(42);
        await pending;

        Assert.Equal(Serialized<object?>(42), result.WrittenSpan.ToArray());
    }

    [Fact]
    public async Task Methods_lists_the_functions_and_reads_back_the_same_descriptions()
    {
        var typed = new FunctionDescriptor("add",
            [
                new ParameterDescriptor("a", "int", false),
                new ParameterDescriptor("b", "int", true) { DefaultValue = 5 },
                new ParameterDescriptor("c", "string?", true),
            ],
            "int", "fp1") { Contract = "Calc.ICalc", Signature = "add(a:int,b:int=,c:string?=,)->int;" };
        var dynamic = FunctionDescriptor.Dynamic("echo");
        var builtIns = new BuiltInFunctions(() => [typed, dynamic]);
        Assert.Equal("$methods", Assert.Single(builtIns.Functions).Name);

        var (call, result) = Call("$methods", Pack((ref MessagePackWriter w) => w.WriteMapHeader(0)));
        await builtIns.InvokeAsync(call);

        var expected = Pack((ref MessagePackWriter w) =>
        {
            w.WriteArrayHeader(2);
            w.WriteMapHeader(6);
            w.Write("name"); w.Write("add");
            w.Write("params"); w.WriteArrayHeader(3);
            w.WriteMapHeader(3); w.Write("name"); w.Write("a"); w.Write("type"); w.Write("int"); w.Write("optional"); w.Write(false);
            w.WriteMapHeader(4); w.Write("name"); w.Write("b"); w.Write("type"); w.Write("int"); w.Write("optional"); w.Write(true); w.Write("default"); w.Write(5L);
            w.WriteMapHeader(3); w.Write("name"); w.Write("c"); w.Write("type"); w.Write("string?"); w.Write("optional"); w.Write(true);
            w.Write("returns"); w.Write("int");
            w.Write("fingerprint"); w.Write("fp1");
            w.Write("contract"); w.Write("Calc.ICalc");
            w.Write("signature"); w.Write("add(a:int,b:int=,c:string?=,)->int;");
            w.WriteMapHeader(4);
            w.Write("name"); w.Write("echo");
            w.Write("params"); w.WriteArrayHeader(0);
            w.Write("returns"); w.Write("object");
            w.Write("fingerprint"); w.WriteNil();
        });
        Assert.Equal(expected, result.WrittenSpan.ToArray());

        var reader = new MessagePackReader(result.WrittenMemory);
        var read = BuiltInFunctions.ReadDescriptors(ref reader);
        Assert.Equal(2, read.Count);
        Assert.Equal(("add", "int", "fp1", "Calc.ICalc", "add(a:int,b:int=,c:string?=,)->int;"), (read[0].Name, read[0].ReturnType, read[0].Fingerprint, read[0].Contract, read[0].Signature));
        Assert.Equal(
            [("a", "int", false, null), ("b", "int", true, (object?)5L), ("c", "string?", true, null)],
            read[0].Parameters.Select(p => (p.Name, p.Type, p.IsOptional, p.DefaultValue)));
        Assert.Equal(("echo", "object", (string?)null, (string?)null), (read[1].Name, read[1].ReturnType, read[1].Fingerprint, read[1].Contract));
        Assert.Empty(read[1].Parameters);
    }

    private enum Color
    {
        Red = 3,
    }

    [Fact]
    public void Default_values_are_told_as_plain_values_and_unknown_ones_as_nil()
    {
        var defaults = new object?[] { "s", true, 'c', 1.5, 2.5f, 3.5m, ulong.MaxValue, Color.Red, (sbyte)-1, (byte)2, (short)-3, (ushort)4, -5, 6u, -7L, DateTime.UnixEpoch, new object() };
        var expected = new object?[] { "s", true, "c", 1.5, 2.5, 3.5, ulong.MaxValue, 3L, -1L, 2L, -3L, 4L, -5L, 6L, -7L, null, null };
        var function = new FunctionDescriptor("f", [.. defaults.Select((d, i) => new ParameterDescriptor("p" + i, "t", true) { DefaultValue = d })], "void", "fp");

        var bytes = Pack((ref MessagePackWriter w) => BuiltInFunctions.WriteDescriptors(ref w, [function]));
        var reader = new MessagePackReader(bytes);
        var read = Assert.Single(BuiltInFunctions.ReadDescriptors(ref reader));

        Assert.Equal(expected, read.Parameters.Select(p => p.DefaultValue));
        Assert.All(read.Parameters, p => Assert.True(p.IsOptional));
    }

    [Fact]
    public void Reading_methods_skips_unknown_keys_and_defaults_that_are_containers()
    {
        var bytes = Pack((ref MessagePackWriter w) =>
        {
            w.WriteArrayHeader(1);
            w.WriteMapHeader(4);
            w.Write("future"); w.WriteArrayHeader(2); w.Write(1); w.Write(2);
            w.Write("name"); w.WriteNil();
            w.Write("returns"); w.WriteNil();
            w.Write("params"); w.WriteArrayHeader(2);
            w.WriteMapHeader(4); w.Write("type"); w.WriteNil(); w.Write("name"); w.WriteNil(); w.Write("default"); w.WriteArrayHeader(1); w.Write(1); w.Write("extra"); w.WriteMapHeader(0);
            w.WriteMapHeader(2); w.Write("default"); w.WriteMapHeader(1); w.Write("k"); w.Write(1); w.Write("optional"); w.Write(true);
        });
        var reader = new MessagePackReader(bytes);
        var function = Assert.Single(BuiltInFunctions.ReadDescriptors(ref reader));
        Assert.True(reader.End);

        Assert.Equal(("", "object", (string?)null), (function.Name, function.ReturnType, function.Fingerprint));
        Assert.Equal([("", "object", false, null), ("", "object", true, (object?)null)], function.Parameters.Select(p => (p.Name, p.Type, p.IsOptional, p.DefaultValue)));
    }

    [Fact]
    public async Task Results_are_written_with_the_resolved_formatter_awaiting_tasks_first()
    {
        var (call, result) = Call("f", []);
        await GeneratedResults.Write(call, 7);
        Assert.Equal(Serialized(7), result.WrittenSpan.ToArray());

        (call, result) = Call("f", []);
        await GeneratedResults.WriteNil(call);
        Assert.Equal(new byte[] { 0xC0 }, result.WrittenSpan.ToArray());

        (call, result) = Call("f", []);
        await GeneratedResults.WriteAsync(call, Task.FromResult("done"));
        Assert.Equal(Serialized("done"), result.WrittenSpan.ToArray());

        (call, result) = Call("f", []);
        await GeneratedResults.WriteAsync(call, new ValueTask<int>(8));
        Assert.Equal(Serialized(8), result.WrittenSpan.ToArray());

        (call, result) = Call("f", []);
        await GeneratedResults.WriteNilAsync(call, Task.CompletedTask);
        Assert.Equal(new byte[] { 0xC0 }, result.WrittenSpan.ToArray());

        (call, result) = Call("f", []);
        await GeneratedResults.WriteNilAsync(call, ValueTask.CompletedTask);
        Assert.Equal(new byte[] { 0xC0 }, result.WrittenSpan.ToArray());

        ThrownAtOnce<ArgumentNullException>(() => GeneratedResults.WriteAsync<int>(call, (Task<int>)null!));
        ThrownAtOnce<ArgumentNullException>(() => GeneratedResults.WriteNilAsync(call, (Task)null!));
    }

    [Fact]
    public async Task Results_of_pending_tasks_are_written_only_once_they_complete()
    {
        var text = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var (call, result) = Call("f", []);
        var pending = GeneratedResults.WriteAsync(call, text.Task).AsTask();
        Assert.Equal(0, result.WrittenCount);
        text.SetResult("late");
        await pending;
        Assert.Equal(Serialized("late"), result.WrittenSpan.ToArray());

        var number = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        (call, result) = Call("f", []);
        pending = GeneratedResults.WriteAsync(call, new ValueTask<int>(number.Task)).AsTask();
        Assert.Equal(0, result.WrittenCount);
        number.SetResult(9);
        await pending;
        Assert.Equal(Serialized(9), result.WrittenSpan.ToArray());

        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        (call, result) = Call("f", []);
        pending = GeneratedResults.WriteNilAsync(call, done.Task).AsTask();
        Assert.Equal(0, result.WrittenCount);
        done.SetResult();
        await pending;
        Assert.Equal(new byte[] { 0xC0 }, result.WrittenSpan.ToArray());

        done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        (call, result) = Call("f", []);
        pending = GeneratedResults.WriteNilAsync(call, new ValueTask(done.Task)).AsTask();
        Assert.Equal(0, result.WrittenCount);
        done.SetResult();
        await pending;
        Assert.Equal(new byte[] { 0xC0 }, result.WrittenSpan.ToArray());
    }

    public sealed class Unserializable
    {
        public int X { get; set; }
    }

    [Fact]
    public void A_result_that_cannot_be_serialized_names_the_function_and_type()
    {
        var (call, _) = Call("make", []);
        var error = ThrownAtOnce<SerializationFailedException>(() => GeneratedResults.Write(call, new Unserializable()));
        Assert.StartsWith("The result of 'make' has type P2PLocal.Rpc.UnitTests.DispatchTests+Unserializable, which cannot be serialized here: ", error.Message, StringComparison.Ordinal);
        Assert.Equal("result of 'make'", error.Member);

        var (cancelled, _) = Call("make", [], MessagePackSerializerOptions.Standard.WithResolver(new ThrowingResolver(new OperationCanceledException())));
        ThrownAtOnce<OperationCanceledException>(() => GeneratedResults.Write(cancelled, 1));
    }

    [Fact]
    public void Results_are_read_within_the_budget_and_a_missing_formatter_is_named()
    {
        var read = GeneratedResults.Reader<int[]>();
        Assert.Same(read, GeneratedResults.Reader<int[]>());
        var reader = new MessagePackReader(Serialized(new[] { 1, 2, 3 }));
        Assert.Equal(new[] { 1, 2, 3 }, read(ref reader, s_options));

        var tooMany = Serialized(Enumerable.Range(0, 20).ToArray());
        var refused = Assert.Throws<MessagePackSerializationException>(() =>
        {
            var r = new MessagePackReader(tooMany);
            return read(ref r, s_options);
        });
        Assert.StartsWith("The value is refused: it holds more than 10 MessagePack values", refused.Message, StringComparison.Ordinal);

        var error = Assert.Throws<SerializationFailedException>(() =>
        {
            var r = new MessagePackReader(Serialized(1));
            return GeneratedResults.Reader<int>()(ref r, MessagePackSerializerOptions.Standard.WithResolver(new ThrowingResolver(new NotSupportedException("no dynamic code"))));
        });
        Assert.StartsWith("The result has type System.Int32, which cannot be serialized here: no dynamic code ", error.Message, StringComparison.Ordinal);

        // Data that does not fit is not a formatter problem: it stays a serialization error for the caller to word.
        Assert.Throws<MessagePackSerializationException>(() =>
        {
            var r = new MessagePackReader(Serialized("text"));
            return GeneratedResults.Reader<int>()(ref r, s_options);
        });
    }

    private sealed class ThrowingResolver(Exception error) : IFormatterResolver
    {
        public IMessagePackFormatter<T>? GetFormatter<T>() => throw error;
    }

    [Theory]
    [InlineData(typeof(int), "System.Int32")]
    [InlineData(typeof(int[]), "System.Int32[]")]
    [InlineData(typeof(List<string>), "System.Collections.Generic.List<System.String>")]
    [InlineData(typeof(Dictionary<string, int[]>), "System.Collections.Generic.Dictionary<System.String, System.Int32[]>")]
    [InlineData(typeof(List<>), "System.Collections.Generic.List<T>")]
    public void Type_names_are_written_as_in_CSharp(Type type, string name) => Assert.Equal(name, TypeNames.Of(type));

    private static FunctionDescriptor Fn(string name, string returns, string? fingerprint, params (string Name, string Type, bool Optional)[] parameters) =>
        new(name, [.. parameters.Select(p => new ParameterDescriptor(p.Name, p.Type, p.Optional))], returns, fingerprint);

    [Fact]
    public void A_peer_with_the_same_fingerprint_or_a_dynamic_function_serves_alike()
    {
        var mine = new[] { Fn("f", "int", "fp", ("a", "int", false)), Fn("g", "int", "fp") };
        var verdict = ContractVerdict.Judge(mine, "fp", [Fn("f", "string", "fp"), Fn("g", "string", null)]);
        Assert.True(verdict.AllServed);
        Assert.Same(FunctionVerdict.Served, verdict.For("f"));
        Assert.Same(FunctionVerdict.Served, verdict.For("g"));
        Assert.Same(FunctionVerdict.Served, verdict.For("not in the contract"));
    }

    [Fact]
    public void Another_fingerprint_is_judged_per_function_by_result_and_kwargs()
    {
        FunctionDescriptor[] mine =
        [
            Fn("same", "int", "new", ("a", "int", false)),
            Fn("void", "void", "new", ("a", "int", false)),
            Fn("result", "int", "new", ("a", "int", false)),
            Fn("type", "int", "new", ("a", "int", false)),
            Fn("required", "int", "new", ("a", "int", false), ("b", "int", false)),
            Fn("optional", "int", "new", ("a", "int", false), ("b", "int", true), ("c", "int", true)),
            Fn("theirs", "int", "new", ("a", "int", false)),
            Fn("theirsOptional", "int", "new", ("a", "int", false)),
            Fn("missing", "int", "new"),
        ];
        FunctionDescriptor[] served =
        [
            Fn("same", "int", "old", ("a", "int", false)),
            Fn("void", "string", "old", ("a", "int", false)),
            Fn("result", "long", "old", ("a", "int", false)),
            Fn("type", "int", "old", ("a", "long", false)),
            Fn("required", "int", "old", ("a", "int", false)),
            Fn("optional", "int", "old", ("a", "int", false)),
            Fn("theirs", "int", "old", ("a", "int", false), ("z", "int", false)),
            Fn("theirsOptional", "int", "old", ("a", "int", false), ("z", "int", true)),
            Fn("same", "string", "old"), // a second entry of one name: the first counts
        ];

        var verdict = ContractVerdict.Judge(mine, "new", served);

        Assert.False(verdict.AllServed);
        Assert.Same(FunctionVerdict.Served, verdict.For("same"));
        Assert.Same(FunctionVerdict.Served, verdict.For("void"));
        Assert.Same(FunctionVerdict.Served, verdict.For("theirsOptional"));
        Assert.Equal("'result' is (a: int) -> int here but (a: int) -> long there", verdict.For("result").Problem);
        Assert.Equal("'type' is (a: int) -> int here but (a: long) -> int there", verdict.For("type").Problem);
        Assert.Equal("'required' is (a: int, b: int) -> int here but (a: int) -> int there", verdict.For("required").Problem);
        Assert.Equal("'theirs' is (a: int) -> int here but (a: int, z: int) -> int there", verdict.For("theirs").Problem);
        Assert.Equal("it has no function 'missing'", verdict.For("missing").Problem);
        var optional = verdict.For("optional");
        Assert.Null(optional.Problem);
        Assert.Equal(["b", "c"], optional.LackingKwargs);
        Assert.Empty(verdict.For("result").LackingKwargs);

        var described = ContractVerdict.Judge([Fn("o", "int", "new", ("b", "int", true))], "new", [Fn("o", "long", "old", ("b", "int", true))]);
        Assert.Equal("'o' is (b: int = ...) -> int here but (b: int = ...) -> long there", described.For("o").Problem);
    }

    [Fact]
    public void Work_in_flight_is_taken_up_to_each_cap_and_given_back()
    {
        var work = new WorkInFlight(maxElements: 10, maxBytes: 100);
        Assert.Equal((10L, 100L), (work.MaxElements, work.MaxBytes));
        Assert.True(work.TryTake(4, 60));
        Assert.True(work.TryTake(6, 40)); // exactly at both caps
        Assert.Equal((10L, 100L), work.Held);
        Assert.False(work.TryTake(1, 0));
        Assert.False(work.TryTake(0, 1));
        Assert.Equal((10L, 100L), work.Held); // a refusal takes nothing

        work.Give(4, 60);
        Assert.Equal((6L, 40L), work.Held);
        Assert.False(work.TryTake(5, 10));
        Assert.False(work.TryTake(1, 61));
        Assert.True(work.TryTake(4, 60));
        Assert.Equal((10L, 100L), work.Held);
    }

    public interface IRegistered;

    public interface IUnregistered;

    public sealed class RegisteredByClass : IUnregistered;

    public sealed class Service : IRegistered;

    private sealed class NoFunctions(string tag) : IServiceDispatcher
    {
        public string Tag => tag;

        public IReadOnlyList<FunctionDescriptor> Functions => [];

        public ValueTask InvokeAsync(FunctionCall request) => default;
    }

    public interface IProxied;

    private sealed class Proxy(PeerClient client) : IProxied
    {
        public PeerClient Client => client;
    }

    [Fact]
    public void The_registry_finds_a_dispatcher_by_contract_then_by_class_and_a_proxy_by_contract()
    {
        Service? served = null;
        ServiceRegistry.AddDispatcher<IRegistered>(s => { served = (Service)s; return new NoFunctions("by contract"); });
        ServiceRegistry.AddDispatcher<RegisteredByClass>(_ => new NoFunctions("by class"));
        var service = new Service();

        Assert.True(ServiceRegistry.TryCreateDispatcher<IRegistered>(service, out var dispatcher));
        Assert.Equal("by contract", ((NoFunctions)dispatcher).Tag);
        Assert.Same(service, served);
        Assert.True(ServiceRegistry.TryCreateDispatcher<IUnregistered>(new RegisteredByClass(), out dispatcher));
        Assert.Equal("by class", ((NoFunctions)dispatcher).Tag);
        Assert.False(ServiceRegistry.TryCreateDispatcher<object>(new object(), out dispatcher));
        Assert.Null(dispatcher);

        var client = new PeerClient(null!, "bob");
        Assert.Equal("bob", client.PeerName);
        Assert.False(ServiceRegistry.TryCreateProxy<IProxied>(client, out var none));
        Assert.Null(none);
        ServiceRegistry.AddProxy<IProxied>(c => new Proxy(c));
        Assert.True(ServiceRegistry.TryCreateProxy<IProxied>(client, out var proxy));
        Assert.Same(client, ((Proxy)proxy).Client);

        Assert.Throws<ArgumentNullException>(() => ServiceRegistry.AddDispatcher<IRegistered>(null!));
        Assert.Throws<ArgumentNullException>(() => ServiceRegistry.AddProxy<IProxied>(null!));
        Assert.Throws<ArgumentNullException>(() => ServiceRegistry.AddResolver(null!));
        Assert.Throws<ArgumentNullException>(() => ServiceRegistry.TryCreateDispatcher<IRegistered>(null!, out _));
        Assert.Throws<ArgumentNullException>(() => ServiceRegistry.TryCreateProxy<IProxied>(null!, out _));
    }

    public sealed class Marked
    {
        public int Value { get; init; }
    }

    private sealed class MarkedFormatter : IMessagePackFormatter<Marked>
    {
        public void Serialize(ref MessagePackWriter writer, Marked value, MessagePackSerializerOptions options) => writer.Write(value.Value);

        public Marked Deserialize(ref MessagePackReader reader, MessagePackSerializerOptions options) => new() { Value = reader.ReadInt32() };
    }

    private sealed class MarkedResolver : IFormatterResolver
    {
        public IMessagePackFormatter<T>? GetFormatter<T>() => typeof(T) == typeof(Marked) ? (IMessagePackFormatter<T>)(object)new MarkedFormatter() : null;
    }

    private sealed class NothingResolver : IFormatterResolver
    {
        public IMessagePackFormatter<T>? GetFormatter<T>() => null;
    }

    [Fact]
    public void Generated_resolvers_are_asked_in_order_until_one_has_the_formatter()
    {
        Assert.Same(GeneratedFormatterResolver.Instance, ServiceRegistry.GeneratedResolver);
        ServiceRegistry.AddResolver(new NothingResolver());
        ServiceRegistry.AddResolver(new MarkedResolver());
        Assert.IsType<MarkedFormatter>(ServiceRegistry.GeneratedResolver.GetFormatter<Marked>());
        Assert.Null(ServiceRegistry.GeneratedResolver.GetFormatter<Guid>());
    }

    [Fact]
    public void Generated_formatters_check_shapes_and_word_errors_with_the_type_and_member()
    {
        var reader = new MessagePackReader(Pack((ref MessagePackWriter w) => { w.WriteArrayHeader(2); w.WriteMapHeader(1); w.Write("m\u00e9"); w.Write(1); w.Write(2); }));
        Assert.Equal(2, GeneratedFormatters.ReadArrayHeader(ref reader, "Point"));
        Assert.Equal(1, GeneratedFormatters.ReadMapHeader(ref reader, "Point"));
        Assert.Equal("m\u00e9"u8.ToArray(), GeneratedFormatters.ReadKey(ref reader, "Point").ToArray());

        Assert.Equal("A Point is sent as an array of its members, not Map.", Assert.Throws<MessagePackSerializationException>(() =>
        {
            var r = new MessagePackReader(Pack((ref MessagePackWriter w) => w.WriteMapHeader(0)));
            GeneratedFormatters.ReadArrayHeader(ref r, "Point");
        }).Message);
        Assert.Equal("A Point is sent as a map of its members, not Array.", Assert.Throws<MessagePackSerializationException>(() =>
        {
            var r = new MessagePackReader(Pack((ref MessagePackWriter w) => w.WriteArrayHeader(0)));
            GeneratedFormatters.ReadMapHeader(ref r, "Point");
        }).Message);
        Assert.Equal("The member keys of a Point are strings, not Integer.", Assert.Throws<MessagePackSerializationException>(() =>
        {
            var r = new MessagePackReader(Pack((ref MessagePackWriter w) => w.Write(0)));
            GeneratedFormatters.ReadKey(ref r, "Point");
        }).Message);

        Assert.Equal("Member 'X' of Point appears twice.", GeneratedFormatters.Duplicate("Point", "X").Message);
        Assert.Equal("Member 'X' of Point is missing; it cannot be null.", GeneratedFormatters.Missing("Point", "X", -1).Message);
        Assert.Equal("Member 'X' of Point (key 0) is missing: the array is too short; it cannot be null.", GeneratedFormatters.Missing("Point", "X", 0).Message);
        Assert.Equal("Member 'X' of Point is nil; it cannot be null.", GeneratedFormatters.NilMember("Point", "X").Message);
        Assert.Equal("nil is not a valid Point.", GeneratedFormatters.Nil("Point").Message);
        var cause = new OverflowException("too big");
        var bad = GeneratedFormatters.BadMember("Point", "X", cause);
        Assert.Equal("Member 'X' of Point: too big", bad.Message);
        Assert.Same(cause, bad.InnerException);
        Assert.Throws<ArgumentNullException>(() => GeneratedFormatters.BadMember("Point", "X", null!));
    }
}

public class CallContextTests
{
    [Fact]
    public void A_call_context_names_the_caller_and_its_address()
    {
        var context = new CallContext("alice", "i1", new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 5000), "peer-id");
        Assert.Equal(("alice", "i1", "peer-id"), (context.PeerName, context.InstanceId, context.PeerId));
        Assert.Equal("alice (i1) at 127.0.0.1:5000", context.ToString());
        Assert.Equal("bob (i2) at ?", new CallContext("bob", "i2", null).ToString());
        Assert.Null(new CallContext("bob", "i2", null).PeerId);
        Assert.Throws<ArgumentNullException>(() => new CallContext(null!, "i", null));
        Assert.Throws<ArgumentNullException>(() => new CallContext("n", null!, null));
        Assert.Equal("", default(FunctionCall).CallerName);
    }
}
