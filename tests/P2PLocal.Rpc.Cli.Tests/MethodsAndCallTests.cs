using System.Text.Json;

namespace P2PLocal.Rpc.Cli.Tests;

public class MethodsAndCallTests
{
    [Fact]
    public async Task Methods_json_lists_kwargs_result_types_and_the_contract_fingerprint()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var bob = await TestNetwork.StartAsync("bob", port);
        bob.Register(new Calculator());
        bob.Register("echo", kwargs => kwargs);

        var result = await Cli.RunAsync(port, "methods", "bob", "--json");

        Assert.True(result.ExitCode == 0, result.ToString());
        var json = result.Json();
        Assert.Equal(bob.InstanceId, json.GetProperty("instance").GetString());
        var functions = json.GetProperty("functions").EnumerateArray().ToDictionary(f => f.GetProperty("name").GetString()!);
        Assert.Equal(["Add", "Describe", "echo"], functions.Keys.Order(StringComparer.Ordinal));

        var add = functions["Add"];
        Assert.Equal("int", add.GetProperty("returns").GetString());
        Assert.False(add.GetProperty("dynamic").GetBoolean());
        Assert.Matches("^[0-9a-f]{16}$", add.GetProperty("fingerprint").GetString());
        var kwargs = add.GetProperty("kwargs").EnumerateArray()
            .Select(k => (k.GetProperty("name").GetString(), k.GetProperty("type").GetString(), k.GetProperty("optional").GetBoolean())).ToList();
        Assert.Equal([("a", "int", false), ("b", "int", true)], kwargs);
        Assert.Equal(add.GetProperty("fingerprint").GetString(), functions["Describe"].GetProperty("fingerprint").GetString());
        Assert.Contains("Calculator", add.GetProperty("contract").GetString(), StringComparison.Ordinal);
        Assert.Equal(add.GetProperty("contract").GetString(), functions["Describe"].GetProperty("contract").GetString());

        var echo = functions["echo"];
        Assert.True(echo.GetProperty("dynamic").GetBoolean());
        Assert.Equal(JsonValueKind.Null, echo.GetProperty("fingerprint").ValueKind);
        Assert.Equal(JsonValueKind.Null, echo.GetProperty("contract").ValueKind);
        Assert.Empty(echo.GetProperty("kwargs").EnumerateArray());
    }

    [Fact]
    public async Task Methods_table_shows_each_function_and_its_kwargs()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var bob = await TestNetwork.StartAsync("bob", port);
        bob.Register(new Calculator());

        var result = await Cli.RunAsync(port, "methods", "bob");

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("a: int, b: int = 1", result.Out);
        Assert.Contains("name: string, values:", result.Out);
    }

    [Fact]
    public async Task Methods_shows_defaults_and_how_object_kwargs_travel_in_the_table_and_the_json()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var bob = await TestNetwork.StartAsync("bob", port);
        bob.Register(new Plotter());

        var table = await Cli.RunAsync(port, "methods", "bob");
        var json = await Cli.RunAsync(port, "methods", "bob", "--json");

        Assert.True(table.ExitCode == 0, table.ToString());
        Assert.Contains("spot: P2PLocal.Rpc.Cli.Tests.Spot, color: string = \"red\"", table.Out);
        Assert.Contains("P2PLocal.Rpc.Cli.Tests.Spot is an array: 0 X: int, 1 Name: string (required)", table.Out);
        Assert.True(json.ExitCode == 0, json.ToString());
        var plot = Assert.Single(json.Json().GetProperty("functions").EnumerateArray());
        Assert.Equal("red", plot.GetProperty("kwargs")[1].GetProperty("default").GetString());
        var spot = Assert.Single(plot.GetProperty("types").EnumerateArray());
        Assert.Equal(("P2PLocal.Rpc.Cli.Tests.Spot", "array"), (spot.GetProperty("name").GetString(), spot.GetProperty("layout").GetString()));
        Assert.Equal(
            [(0, "X", "int", false), (1, "Name", "string", true)],
            spot.GetProperty("members").EnumerateArray().Select(m => (m.GetProperty("key").GetInt32(), m.GetProperty("name").GetString(), m.GetProperty("type").GetString(), m.GetProperty("required").GetBoolean())));
    }

    [Fact]
    public async Task A_peer_not_seen_within_the_wait_exits_3_and_says_what_to_run()
    {
        var port = TestNetwork.FreeUdpPort();

        var methods = await Cli.RunAsync(port, "methods", "ghost", "--wait", "0.3");
        var call = await Cli.RunAsync(port, "call", "ghost", "f", "--wait", "0.3");

        Assert.Equal(3, methods.ExitCode);
        Assert.Equal(3, call.ExitCode);
        Assert.Contains("peer 'ghost' was not seen in 0.3 s", methods.Error);
        Assert.Contains("p2plocal doctor ghost", call.Error);
    }

    [Fact]
    public async Task A_peer_of_another_protocol_is_named_with_the_option_that_fixes_it()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var bob = await TestNetwork.StartAsync("bob", port);
        await using var other = await Cli.StartOtherProtocolAsync("zed", "other", port);

        var result = await Cli.RunAsync(port, "call", "zed", "f", "--wait", "1");

        Assert.Equal(3, result.ExitCode);
        Assert.Contains("--protocol other", result.Error);
    }

    [Fact]
    public async Task Call_reads_key_value_pairs_as_json_where_they_parse_and_prints_the_result_as_json()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var bob = await TestNetwork.StartAsync("bob", port);
        bob.Register("echo", kwargs => kwargs);

        var result = await Cli.RunAsync(port, "call", "bob", "echo",
            "n=5", "f=2.5", "t=true", "z=null", "s=hello world", "q=\"5\"", "list=[1,\"a\"]", "map={\"k\":{\"deep\":[true]}}", "big=18446744073709551615",
            "--json");

        Assert.True(result.ExitCode == 0, result.ToString());
        var json = result.Json();
        Assert.True(json.GetProperty("ok").GetBoolean());
        Assert.Equal(JsonValueKind.Null, json.GetProperty("error").ValueKind);
        var echoed = json.GetProperty("result");
        Assert.Equal(5, echoed.GetProperty("n").GetInt64());
        Assert.Equal(2.5, echoed.GetProperty("f").GetDouble());
        Assert.True(echoed.GetProperty("t").GetBoolean());
        Assert.Equal(JsonValueKind.Null, echoed.GetProperty("z").ValueKind);
        Assert.Equal("hello world", echoed.GetProperty("s").GetString());
        Assert.Equal("5", echoed.GetProperty("q").GetString());
        Assert.Equal(1, echoed.GetProperty("list")[0].GetInt64());
        Assert.Equal("a", echoed.GetProperty("list")[1].GetString());
        Assert.True(echoed.GetProperty("map").GetProperty("k").GetProperty("deep")[0].GetBoolean());
        Assert.Equal(ulong.MaxValue, echoed.GetProperty("big").GetUInt64());
    }

    [Fact]
    public async Task Call_takes_kwargs_as_one_json_object_and_calls_typed_functions()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var bob = await TestNetwork.StartAsync("bob", port);
        bob.Register(new Calculator());

        var add = await Cli.RunAsync(port, "call", "bob", "Add", "--kwargs", "{\"a\": 2}");
        var describe = await Cli.RunAsync(port, "call", "bob", "Describe", "name=xs", "--kwargs", "{\"values\": [1, 2, 3]}");

        Assert.True(add.ExitCode == 0, add.ToString());
        Assert.Equal("3", add.Out.Trim());
        Assert.Equal("\"xs: 1,2,3\"", describe.Out.Trim());
    }

    [Fact]
    public async Task A_failed_call_exits_1_and_names_the_exception_on_stderr()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var bob = await TestNetwork.StartAsync("bob", port);
        bob.Register("boom", _ => throw new InvalidOperationException("thrown on purpose"));
        bob.Register(new Calculator());

        var thrown = await Cli.RunAsync(port, "call", "bob", "boom", "--json");
        var missing = await Cli.RunAsync(port, "call", "bob", "nope");
        var badKwargs = await Cli.RunAsync(port, "call", "bob", "Add", "a=notanumber");

        Assert.Equal(1, thrown.ExitCode);
        Assert.Contains("RemoteException", thrown.Error);
        Assert.Contains("thrown on purpose", thrown.Error);
        var error = thrown.Json().GetProperty("error");
        Assert.Equal("RemoteException", error.GetProperty("type").GetString());
        Assert.Equal("System.InvalidOperationException", error.GetProperty("remoteType").GetString());
        Assert.False(thrown.Json().GetProperty("ok").GetBoolean());

        Assert.Equal(1, missing.ExitCode);
        Assert.StartsWith("error: MethodNotFoundException:", missing.Error);
        Assert.Equal(1, badKwargs.ExitCode);
        Assert.StartsWith("error: InvalidKwargsException:", badKwargs.Error);
    }

    [Fact]
    public async Task A_call_past_its_timeout_fails_with_TimeoutException()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var bob = await TestNetwork.StartAsync("bob", port);
        bob.Register("hang", async (_, cancellationToken) =>
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return null;
        });

        var result = await Cli.RunAsync(port, "call", "bob", "hang", "--timeout", "0.5");

        Assert.Equal(1, result.ExitCode);
        Assert.StartsWith("error: TimeoutException:", result.Error);
    }

    [Theory]
    [InlineData("--kwargs", "[1,2]")]
    [InlineData("--kwargs", "{not json")]
    [InlineData("novalue", null)]
    [InlineData("a=1", "a=2")]
    [InlineData("--timeout", "0")]
    public async Task Bad_kwargs_or_options_exit_2_before_anything_is_sent(string first, string? second)
    {
        var port = TestNetwork.FreeUdpPort();
        string[] args = second is null ? ["call", "bob", "f", first] : ["call", "bob", "f", first, second];

        var result = await Cli.RunAsync(port, args);

        Assert.Equal(2, result.ExitCode);
        Assert.StartsWith("error: ", result.Error);
        Assert.Equal("", result.Out);
    }
}
