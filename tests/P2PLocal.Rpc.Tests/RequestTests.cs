using MessagePack;

namespace P2PLocal.Rpc.Tests;

[MessagePackObject]
public sealed class Order
{
    [Key(0)] public int Id { get; set; }
    [Key(1)] public string Item { get; set; } = "";
    [Key(2)] public List<double> Prices { get; set; } = [];
}

public class RequestTests
{
    private static Dictionary<string, object?> Kwargs(params (string Key, object? Value)[] pairs) => pairs.ToDictionary(p => p.Key, p => p.Value);

    [Fact]
    public async Task Kwargs_of_every_supported_type_arrive_as_plain_values()
    {
        await using var pair = await NodePair.StartAsync();
        IReadOnlyDictionary<string, object?>? received = null;
        pair.Bob.Register("echo", kwargs => { received = kwargs; return kwargs; });
        var when = new DateTime(2026, 11, 25, 12, 0, 0, DateTimeKind.Utc);

        var result = (Dictionary<string, object?>)(await pair.Alice.RequestAsync("bob", "echo", Kwargs(
            ("int", 42), ("long", long.MaxValue), ("negative", -7), ("ulong", ulong.MaxValue), ("double", 2.5), ("float", 1.5f),
            ("string", "héllo"), ("bool", true), ("null", null), ("bytes", new byte[] { 1, 2, 3 }),
            ("array", new[] { 1, 2, 3 }), ("list", new List<string> { "a", "b" }),
            ("map", new Dictionary<string, int> { ["x"] = 1 }), ("when", when))).Within())!;

        Assert.NotNull(received);
        foreach (var values in new[] { received!, result })
        {
            Assert.Equal(42L, values["int"]);
            Assert.Equal(long.MaxValue, values["long"]);
            Assert.Equal(-7L, values["negative"]);
            Assert.Equal(ulong.MaxValue, values["ulong"]);
            Assert.Equal(2.5, values["double"]);
            Assert.Equal(1.5, values["float"]);
            Assert.Equal("héllo", values["string"]);
            Assert.Equal(true, values["bool"]);
            Assert.Null(values["null"]);
            Assert.Equal(new byte[] { 1, 2, 3 }, values["bytes"]);
            Assert.Equal(new object[] { 1L, 2L, 3L }, values["array"]);
            Assert.Equal(new object[] { "a", "b" }, values["list"]);
            Assert.Equal(new Dictionary<string, object?> { ["x"] = 1L }, values["map"]);
            Assert.Equal(when, values["when"]);
        }
    }

    [Fact]
    public async Task Typed_requests_convert_results_with_MessagePack()
    {
        await using var pair = await NodePair.StartAsync();
        pair.Bob.Register("int", _ => 7)
            .Register("long", _ => 1L << 40)
            .Register("double", _ => 0.25)
            .Register("string", _ => "s")
            .Register("bool", _ => true)
            .Register("array", _ => new[] { 1, 2 })
            .Register("list", _ => new List<string> { "x" })
            .Register("dict", _ => new Dictionary<string, int> { ["a"] = 1 })
            .Register("order", kwargs => new Order { Id = (int)(long)kwargs["id"]!, Item = "tea", Prices = [1.5, 2] });
        var alice = pair.Alice;

        Assert.Equal(7, await alice.RequestAsync<int>("bob", "int"));
        Assert.Equal(1L << 40, await alice.RequestAsync<long>("bob", "long"));
        Assert.Equal(0.25, await alice.RequestAsync<double>("bob", "double"));
        Assert.Equal("s", await alice.RequestAsync<string>("bob", "string"));
        Assert.True(await alice.RequestAsync<bool>("bob", "bool"));
        Assert.Equal(new[] { 1, 2 }, await alice.RequestAsync<int[]>("bob", "array"));
        Assert.Equal(["x"], await alice.RequestAsync<List<string>>("bob", "list"));
        Assert.Equal(new Dictionary<string, int> { ["a"] = 1 }, await alice.RequestAsync<Dictionary<string, int>>("bob", "dict"));
        var order = await alice.RequestAsync<Order>("bob", "order", Kwargs(("id", 9)));
        Assert.Equal((9, "tea"), (order.Id, order.Item));
        Assert.Equal([1.5, 2], order.Prices);
        // A [MessagePackObject] is also accepted as a kwarg value and arrives as its array form.
        pair.Bob.Register("first-price", kwargs => ((object?[])kwargs["order"]!)[2] is object?[] prices ? prices[0] : null);
        Assert.Equal(1.5, await alice.RequestAsync<double>("bob", "first-price", Kwargs(("order", order))));
    }

    [Fact]
    public async Task Large_payloads_pass_up_to_the_frame_limit_and_fail_clearly_above_it()
    {
        const int limit = 1024 * 1024;
        await using var pair = await NodePair.StartAsync(o => o.With(maxFrameSize: limit), o => o.With(maxFrameSize: limit));
        pair.Bob.Register("length", kwargs => ((byte[])kwargs["data"]!).Length);
        pair.Bob.Register("make", kwargs => new byte[(int)(long)kwargs["size"]!]);
        var nearLimit = new byte[limit - 100];
        Random.Shared.NextBytes(nearLimit);

        Assert.Equal(nearLimit.Length, await pair.Alice.RequestAsync<int>("bob", "length", Kwargs(("data", nearLimit))).Within());
        Assert.Equal(limit - 100, (await pair.Alice.RequestAsync<byte[]>("bob", "make", Kwargs(("size", limit - 100))).Within()).Length);

        await Assert.ThrowsAsync<FrameTooLargeException>(() => pair.Alice.RequestAsync("bob", "length", Kwargs(("data", new byte[limit + 1]))));
        var tooBig = await Assert.ThrowsAsync<FrameTooLargeException>(() => pair.Alice.RequestAsync("bob", "make", Kwargs(("size", limit + 1))));
        Assert.Contains("make", tooBig.Message);
        // The connection survives both.
        Assert.Equal(3, await pair.Alice.RequestAsync<int>("bob", "length", Kwargs(("data", new byte[3]))).Within());
    }

    [Fact]
    public async Task Concurrent_requests_complete_out_of_order_on_one_connection()
    {
        await using var pair = await NodePair.StartAsync();
        const int count = 50;
        var gates = Enumerable.Range(0, count).Select(_ => new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously)).ToArray();
        var started = new CountdownEvent(count);
        pair.Bob.Register("wait", async (kwargs, ct) =>
        {
            var index = (long)kwargs["i"]!;
            started.Signal();
            return await gates[index].Task.WaitAsync(ct);
        });

        var calls = Enumerable.Range(0, count).Select(i => pair.Alice.RequestAsync<long>("bob", "wait", Kwargs(("i", i)))).ToArray();
        Assert.True(started.Wait(TestNetwork.Patience));
        // Release the last first: each reply must reach its own caller.
        for (var i = count - 1; i >= 0; i--)
        {
            gates[i].SetResult(i * 10L);
            Assert.Equal(i * 10L, await calls[i].Within());
        }
    }

    [Fact]
    public async Task GetFunctions_lists_names_and_dynamic_signatures()
    {
        await using var pair = await NodePair.StartAsync();
        pair.Bob.Register("b", _ => null).Register("a", _ => null);

        Assert.Equal(["a", "b"], await pair.Alice.GetMethodsAsync("bob"));
        Assert.Equal(["a", "b"], pair.Alice.GetMethods("bob"));
        var functions = await pair.Alice.GetFunctionsAsync("bob");
        Assert.All(functions, f => Assert.Equal("object", f.ReturnType));
        Assert.True(pair.Bob.Unregister("a"));
        Assert.Equal(["b"], await pair.Alice.GetMethodsAsync("bob"));
    }

    [Fact]
    public async Task A_function_registered_again_after_unregistering_is_listed_and_served_once()
    {
        await using var pair = await NodePair.StartAsync();
        pair.Bob.Register(new TwoFunctions("first"));
        pair.Bob.Unregister("f");
        pair.Bob.Register("f", _ => "second");

        Assert.Equal(["f", "g"], await pair.Alice.GetMethodsAsync("bob"));
        Assert.Equal("second", await pair.Alice.RequestAsync("bob", "f"));
        Assert.Equal("first", await pair.Alice.RequestAsync("bob", "g"));
    }

    /// <summary>A hand-written dispatcher serving "f" and "g", both answering with one string.</summary>
    private sealed class TwoFunctions(string answer) : P2PLocal.Rpc.Dispatch.IServiceDispatcher
    {
        public IReadOnlyList<P2PLocal.Rpc.Dispatch.FunctionDescriptor> Functions { get; } =
            [new("f", [], "string"), new("g", [], "string")];

        public ValueTask InvokeAsync(P2PLocal.Rpc.Dispatch.FunctionCall request)
        {
            var writer = new MessagePackWriter(request.Result);
            writer.Write(answer);
            writer.Flush();
            return default;
        }
    }

    [Fact]
    public async Task Blocking_request_works_like_the_python_request()
    {
        await using var pair = await NodePair.StartAsync();
        pair.Bob.Register("add", kwargs => (long)kwargs["a"]! + (long)kwargs["b"]!);

        var sum = await Task.Run(() => pair.Alice.Request("bob", "add", Kwargs(("a", 2), ("b", 3))));

        Assert.Equal(5L, sum);
    }

    [Fact]
    public async Task Registering_a_reserved_or_duplicate_name_fails_clearly()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var bob = await TestNetwork.StartAsync("bob", port);
        bob.Register("f", _ => null);

        Assert.Throws<ArgumentException>(() => bob.Register("f", _ => null));
        Assert.Throws<ArgumentException>(() => bob.Register("$methods", _ => null));
        Assert.Throws<ArgumentException>(() => bob.Register("", _ => null));
    }
}
