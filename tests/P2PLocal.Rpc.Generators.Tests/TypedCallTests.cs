using MessagePack;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Generators.Tests.Services;

namespace P2PLocal.Rpc.Generators.Tests;

/// <summary>"bob" serves the generated Calculator and IWeather dispatchers; "alice" calls them on loopback.</summary>
public sealed class ServedPair : IAsyncLifetime
{
    public Calculator Calculator { get; } = new();

    public Node Alice { get; private set; } = null!;

    public Node Bob { get; private set; } = null!;

    public ICalculator Proxy => Alice.Peers.Get<ICalculator>("bob");

    public async Task InitializeAsync()
    {
        var port = TestNetwork.FreeUdpPort();
        Bob = await TestNetwork.StartAsync("bob", port);
        Bob.Register(Calculator).Register<IWeather>(new Weather());
        Alice = await TestNetwork.StartAsync("alice", port);
        await Alice.Peers.WaitForAsync("bob").Within();
    }

    public async Task DisposeAsync()
    {
        await Alice.DisposeAsync();
        await Bob.DisposeAsync();
    }
}

/// <summary>Compile-and-run: the real generated dispatcher and proxy, two real nodes, real sockets.</summary>
public sealed class TypedCallTests(ServedPair pair) : IClassFixture<ServedPair>
{
    private static Dictionary<string, object?> Kwargs(params (string Key, object? Value)[] pairs) => pairs.ToDictionary(p => p.Key, p => p.Value);

    [Fact]
    public void Sync_call_through_the_proxy_applies_the_default_for_a_left_out_argument()
    {
        Assert.Equal(3, pair.Proxy.Add(2));
        Assert.Equal(7, pair.Proxy.Add(2, 5));
    }

    [Fact]
    public async Task Dynamic_call_with_a_missing_optional_kwarg_takes_the_default_like_python()
    {
        Assert.Equal(3L, await pair.Alice.RequestAsync("bob", "Add", Kwargs(("a", 2))).Within());
        Assert.Equal(
            "Hi Hi, Ann (East, none)",
            await pair.Alice.RequestAsync("bob", "Greet", Kwargs(("name", "Ann"), ("greeting", "Hi"), ("times", 2))).Within());
        Assert.Equal(
            "Hello, Bo (West, 0.5)",
            await pair.Alice.RequestAsync("bob", "Greet", Kwargs(("name", "Bo"), ("direction", (int)Direction.West), ("scale", 0.5))).Within());
    }

    [Fact]
    public async Task Every_async_shape_completes_through_the_proxy()
    {
        var proxy = pair.Proxy;
        Assert.Equal(5, await proxy.AddAsync(2, 3).Within());
        Assert.Equal("echo", await proxy.EchoAsync("echo").AsTask().Within());
        await proxy.PingAsync().Within();
        await proxy.NoopAsync().AsTask().Within();
        var before = pair.Calculator.Resets;
        proxy.Reset();
        Assert.Equal(before + 1, pair.Calculator.Resets);
    }

    [Fact]
    public async Task Every_async_shape_completes_through_dynamic_requests()
    {
        Assert.Equal(5L, await pair.Alice.RequestAsync("bob", "AddAsync", Kwargs(("a", 2), ("b", 3))).Within());
        Assert.Equal("echo", await pair.Alice.RequestAsync("bob", "EchoAsync", Kwargs(("text", "echo"))).Within());
        Assert.Null(await pair.Alice.RequestAsync("bob", "PingAsync").Within());
        Assert.Null(await pair.Alice.RequestAsync("bob", "NoopAsync").Within());
        Assert.Null(await pair.Alice.RequestAsync("bob", "Reset").Within());
        Assert.Equal(6L, await pair.Alice.RequestAsync("bob", "add_three", Kwargs(("a", 1), ("b", 2), ("c", 3))).Within());
    }

    [Fact]
    public async Task MessagePack_objects_collections_nullables_and_enums_round_trip_through_the_proxy()
    {
        var proxy = pair.Proxy;
        await Task.Run(() =>
        {
            Assert.Equal(new Point(1, 3), proxy.Move(new Point(1, 2), Direction.North));
            Assert.Equal([2, 4, 6], proxy.Twice([1, 2, 3]));
            Assert.Equal(["A", "B"], proxy.Upper(["a", "b"]));
            Assert.Equal(new Dictionary<string, int> { ["x"] = 2, ["y"] = 1 }, proxy.Count(["x", "y", "x"]));
            Assert.Equal(2, proxy.Half(4));
            Assert.Null(proxy.Half(null));
            Assert.Null(proxy.Nothing(null));
            Assert.Equal("s", proxy.Nothing("s"));
            Assert.Equal(Direction.North, proxy.Turn(Direction.West));
            Assert.Equal(6, proxy.Sum(1, 2, 3));
            Assert.Equal(6, proxy.AddThree(1, 2, 3));
            Assert.Equal("Hello, Ann (South, 1.5)", proxy.Greet("Ann", direction: Direction.South, scale: 1.5));
            Assert.Equal("36!", proxy.Nine(1, 2, 3, 4, 5, 6, 7, 8));
            Assert.Equal("abc1de", proxy.Clash("a", "b", "c", 1, "d", "e"));
        }).Within();
    }

    [Fact]
    public async Task MessagePack_objects_and_collections_arrive_through_dynamic_requests()
    {
        var moved = (object?[])(await pair.Alice.RequestAsync("bob", "Move", Kwargs(("point", new Point(1, 2)), ("direction", 1))).Within())!;
        Assert.Equal([2L, 2L], moved);
        Assert.Equal([2L, 4L], (object?[])(await pair.Alice.RequestAsync("bob", "Twice", Kwargs(("values", new[] { 1, 2 }))).Within())!);
        Assert.Equal(new Point(0, 2), await pair.Alice.RequestAsync<Point>("bob", "Move", Kwargs(("point", new Point(1, 2)), ("direction", 3))).Within());
        Assert.Null(await pair.Alice.RequestAsync("bob", "Half", Kwargs(("value", null))).Within());
        Assert.Equal(2L, await pair.Alice.RequestAsync("bob", "Turn", Kwargs(("direction", 1))).Within());
        Assert.Equal("9?", await pair.Alice.RequestAsync("bob", "Nine",
            Kwargs(("i", "?"), ("h", 2), ("g", 1), ("f", 1), ("e", 1), ("d", 1), ("c", 1), ("b", 1), ("a", 1))).Within());
    }

    [Fact]
    public async Task Cancelling_the_proxy_call_cancels_the_remote_handlers_token()
    {
        using var cts = new CancellationTokenSource();
        var call = pair.Proxy.WaitForCancelAsync(cts.Token);
        await pair.Calculator.HandlerStarted.Within();
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call.Within());
        await pair.Calculator.HandlerCancelled.Within();
    }

    [Fact]
    public async Task A_remote_exception_reaches_the_proxy_caller_with_its_type_and_message()
    {
        var error = await Assert.ThrowsAsync<RemoteException>(() => Task.Run(() => pair.Proxy.Fail("boom")).Within());
        Assert.Equal(typeof(InvalidOperationException).FullName, error.RemoteType);
        Assert.Equal("boom", error.RemoteMessage);

        var dynamicError = await Assert.ThrowsAsync<RemoteException>(() => pair.Alice.RequestAsync("bob", "Fail", Kwargs(("message", "bang"))).Within());
        Assert.Equal("bang", dynamicError.RemoteMessage);
    }

    [Fact]
    public async Task Unknown_missing_and_mistyped_kwargs_are_rejected_with_a_clear_message()
    {
        var unknown = await Assert.ThrowsAsync<InvalidKwargsException>(() => pair.Alice.RequestAsync("bob", "Add", Kwargs(("a", 1), ("c", 2))).Within());
        Assert.Contains("unexpected kwarg 'c'", unknown.Message, StringComparison.Ordinal);
        Assert.Contains("(a: int, b: int = 1)", unknown.Message, StringComparison.Ordinal);

        var missing = await Assert.ThrowsAsync<InvalidKwargsException>(() => pair.Alice.RequestAsync("bob", "Add", Kwargs(("b", 1))).Within());
        Assert.Contains("missing the required kwarg 'a'", missing.Message, StringComparison.Ordinal);

        var mistyped = await Assert.ThrowsAsync<InvalidKwargsException>(() => pair.Alice.RequestAsync("bob", "Add", Kwargs(("a", "two"))).Within());
        Assert.Contains("Kwarg 'a' of 'Add' is not a valid int", mistyped.Message, StringComparison.Ordinal);

        var none = await Assert.ThrowsAsync<InvalidKwargsException>(() => pair.Alice.RequestAsync("bob", "PingAsync", Kwargs(("x", 1))).Within());
        Assert.Contains("unexpected kwarg 'x'", none.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_kwarg_sent_twice_is_rejected()
    {
        KwargsWriter<int> twice = static (ref MessagePackWriter writer, int _, MessagePackSerializerOptions _) =>
        {
            writer.WriteMapHeader(2);
            writer.Write("a");
            writer.Write(1);
            writer.Write("a");
            writer.Write(2);
        };
        var client = pair.Alice.Peers.Client("bob");
        var error = await Assert.ThrowsAsync<InvalidKwargsException>(() =>
            client.InvokeAsync("Add", 0, twice, GeneratedResults.Reader<int>()).AsTask().Within());
        Assert.Contains("got kwarg 'a' twice", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Kwargs_that_are_not_a_map_are_rejected()
    {
        KwargsWriter<int> array = static (ref MessagePackWriter writer, int _, MessagePackSerializerOptions _) => writer.WriteArrayHeader(0);
        var error = await Assert.ThrowsAsync<InvalidKwargsException>(() =>
            pair.Alice.Peers.Client("bob").InvokeAsync("Add", 0, array, GeneratedResults.Reader<int>()).AsTask().Within());
        Assert.Contains("must be a map", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Contract_first_interface_is_served_by_a_plain_implementation_and_called_through_its_proxy()
    {
        var weather = pair.Alice.Peers.Get<IWeather>("bob");
        var forecast = await weather.ForecastAsync("Oslo").Within();
        Assert.Equal("Oslo", forecast.City);
        Assert.Equal([20.0, 21.0, 22.0], forecast.Temperatures);
        Assert.Equal("plain", await Task.Run(weather.Station).Within());
    }

    [Fact]
    public async Task A_method_that_takes_a_CallContext_learns_who_calls_and_the_context_is_not_a_kwarg()
    {
        var expected = $"hi alice {pair.Alice.InstanceId.Length} 127.0.0.1 unverified";
        Assert.Equal(expected, await Task.Run(() => pair.Proxy.WhoCalls("hi")).Within());
        Assert.Equal(expected, await pair.Alice.RequestAsync("bob", "WhoCalls", Kwargs(("greeting", "hi"))).Within());

        var functions = await pair.Alice.GetFunctionsAsync("bob").Within();
        Assert.Equal([new ParameterDescriptor("greeting", "string", false)], Assert.Single(functions, f => f.Name == "WhoCalls").Parameters);
        var error = await Assert.ThrowsAsync<InvalidKwargsException>(() =>
            pair.Alice.RequestAsync("bob", "WhoCalls", Kwargs(("greeting", "hi"), ("caller", "mallory"))).Within());
        Assert.Contains("unexpected kwarg 'caller'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_dynamic_handler_registered_with_a_CallContext_gets_the_callers_name_and_instance()
    {
        pair.Bob.Register("who", (kwargs, caller, _) => ValueTask.FromResult<object?>($"{caller.PeerName}/{caller.InstanceId}/{caller.PeerId}"));
        try
        {
            Assert.Equal($"alice/{pair.Alice.InstanceId}/", await pair.Alice.RequestAsync("bob", "who").Within());
        }
        finally
        {
            pair.Bob.Unregister("who");
        }
    }

    [Fact]
    public async Task Integral_floats_bind_to_integer_parameters_and_integers_to_doubles_as_other_languages_send_them()
    {
        Assert.Equal(3L, await pair.Alice.RequestAsync("bob", "Add", Kwargs(("a", 2.0))).Within());
        Assert.Equal(-5L, await pair.Alice.RequestAsync("bob", "Add", Kwargs(("a", -3.0f), ("b", -2.0))).Within());
        Assert.Equal(2L, await pair.Alice.RequestAsync("bob", "Half", Kwargs(("value", 4.0))).Within());
        Assert.Equal(12.0, await pair.Alice.RequestAsync("bob", "Mul", Kwargs(("x", 3), ("y", 2), ("z", 2.0))).Within());
        Assert.Equal("Hello, Ann (East, 2)", await pair.Alice.RequestAsync("bob", "Greet", Kwargs(("name", "Ann"), ("scale", 2))).Within());
        Assert.Equal(0.5, await pair.Alice.RequestAsync("bob", "Mul", Kwargs(("x", 0.5))).Within());
    }

    [Theory]
    [InlineData("Add", "a", 2.5, "not an integer")]
    [InlineData("Add", "b", 3e10, "out of range")]
    [InlineData("Add", "a", 1e300, "out of the range")]
    [InlineData("Add", "a", double.NaN, "not an integer")]
    [InlineData("Add", "a", 5_000_000_000L, "out of range")]
    [InlineData("Half", "value", 0.25, "not an integer")]
    [InlineData("Mul", "x", 9_007_199_254_740_993L, "cannot be held exactly by a double")]
    [InlineData("Mul", "y", 16_777_217, "cannot be held exactly by a float")]
    [InlineData("Mul", "y", 1e39, "beyond the range of a float")]
    [InlineData("Mul", "z", 1.5, "not an integer")]
    public async Task A_lossy_number_is_rejected_naming_the_parameter(string function, string kwarg, object value, string reason)
    {
        var kwargs = function == "Add" && kwarg == "b" ? Kwargs(("a", 1), (kwarg, value)) : function == "Mul" && kwarg != "x" ? Kwargs(("x", 1), (kwarg, value)) : Kwargs((kwarg, value));
        var error = await Assert.ThrowsAsync<InvalidKwargsException>(() => pair.Alice.RequestAsync("bob", function, kwargs).Within());
        Assert.Contains($"Kwarg '{kwarg}' of '{function}'", error.Message, StringComparison.Ordinal);
        Assert.Contains(reason, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Functions_are_listed_with_kwargs_result_types_and_the_contract_fingerprint()
    {
        var functions = await pair.Alice.GetFunctionsAsync("bob").Within();
        var add = Assert.Single(functions, f => f.Name == "Add");
        Assert.Equal([new ParameterDescriptor("a", "int", false), new ParameterDescriptor("b", "int", true) { DefaultValue = 1L }], add.Parameters);
        Assert.Equal("int", add.ReturnType);
        Assert.Equal("P2PLocal.Rpc.Generators.Tests.Services.ICalculator", add.Contract);
        Assert.Equal("Add(a:int,b:int=,)->int;", add.Signature);
        var greet = Assert.Single(functions, f => f.Name == "Greet");
        Assert.Equal(["Hello", 1L, 1L, null], greet.Parameters.Skip(1).Select(p => p.DefaultValue));
        Assert.NotNull(add.Fingerprint);
        Assert.All(functions.Where(f => f.Name is "Greet" or "Reset"), f => Assert.Equal(add.Fingerprint, f.Fingerprint));
        Assert.NotEqual(add.Fingerprint, Assert.Single(functions, f => f.Name == "Station").Fingerprint);
        Assert.DoesNotContain(functions, f => f.Name == "NotServed");
        Assert.Equal([], Assert.Single(functions, f => f.Name == "WaitForCancelAsync").Parameters);
    }

    [Fact]
    public async Task Object_types_a_function_reaches_are_described_with_their_keys_member_types_and_required_members()
    {
        var functions = await pair.Alice.GetFunctionsAsync("bob").Within();
        var family = Assert.Single(functions, f => f.Name == "Family");
        var person = Assert.Single(family.ObjectTypes); // through Person[] and List<Person>; the enum and dictionary are not objects
        Assert.Equal("P2PLocal.Rpc.Generators.Tests.Services.Person", person.Name);
        Assert.False(person.IsMap);
        Assert.Equal(
            [new ObjectMemberDescriptor("Name", "string", true) { IntKey = 0 }, new("Age", "int", false) { IntKey = 1 },
             new("City", "string", true) { IntKey = 2 }, new("Nickname", "string", false) { IntKey = 3 }],
            person.Members);
        var move = Assert.Single(functions, f => f.Name == "Move");
        Assert.Equal(["P2PLocal.Rpc.Generators.Tests.Services.Point"], move.ObjectTypes.Select(t => t.Name));
        var forecast = Assert.Single(Assert.Single(functions, f => f.Name == "ForecastAsync").ObjectTypes);
        Assert.Equal([new ObjectMemberDescriptor("City", "string", true) { IntKey = 0 }, new("Temperatures", "double[]", true) { IntKey = 1 }], forecast.Members);
        Assert.Empty(Assert.Single(functions, f => f.Name == "Add").ObjectTypes);
    }
}
