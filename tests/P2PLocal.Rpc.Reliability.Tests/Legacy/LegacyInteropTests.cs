namespace P2PLocal.Rpc.Reliability.Tests.Legacy;

/// <summary>shout(text, times = 1): a generated [P2PService] function that Python callers reach by kwargs name.</summary>
[P2PService]
public partial class Shouter
{
    /// <summary>The text in capitals, <paramref name="times"/> times.</summary>
    [P2PFunction(Name = "shout")]
    public string Shout(string text, int times = 1) => string.Concat(Enumerable.Repeat(text.ToUpperInvariant(), times));
}

/// <summary>Mixed networks (issue 13): the Python p2p-local (legacy_node.py) and P2PLocal.Rpc nodes call each other, on loopback.</summary>
public sealed class LegacyInteropTests
{
    private static async Task<Node> StartCSharpAsync(string name, int port, bool legacy = true)
    {
        var node = await Node.StartAsync(Net.Options(name, port, interval: TimeSpan.FromMilliseconds(500), legacyInterop: legacy));
        node.Register("greet", kwargs => $"Hello, {kwargs["name"]}!");
        node.Register("kinds", kwargs => kwargs.OrderBy(k => k.Key).Select(k => $"{k.Key}:{k.Value?.GetType().Name}").ToArray());
        node.Register("fail", kwargs => throw new InvalidOperationException("boom"));
        node.Register("big", kwargs => 1L << 40);
        node.Register(new Shouter());
        return node;
    }

    [Fact]
    public async Task Python_finds_and_calls_dynamic_and_generated_functions_and_reads_faults()
    {
        var port = Net.FreeUdpPort();
        await using var csharp = await StartCSharpAsync("cs", port);
        await using var python = await LegacyPythonNode.StartAsync("py", port);

        Assert.Equal($"FOUND 127.0.0.1:{csharp.ServiceEndPoint.Port}", await python.AskAsync("wait cs")); // our beacon suits the Python parser
        Assert.Equal("OK 'Hello, Ann!'", await python.AskAsync("call cs greet {'name': 'Ann'}"));
        Assert.Equal("OK 'HI'", await python.AskAsync("call cs shout {'text': 'hi'}")); // default applied
        Assert.Equal("OK 'HIHI'", await python.AskAsync("call cs shout {'text': 'hi', 'times': 2}"));
        Assert.Equal("OK ['b:Byte[]', 'd:Double', 'f:Boolean', 'i:Int64', 'l:Object[]', 'm:Dictionary`2', 's:String', 't:DateTime']",
            await python.AskAsync("call cs kinds {'i': 7, 'd': 2.5, 'f': True, 's': 'x', 'b': b'\\x00', 'l': [1], 'm': {'k': 1}, 't': datetime.datetime(2026, 1, 2, 3, 4, 5)}"));

        var methods = await python.AskAsync("methods cs");
        Assert.Equal("OK ['big', 'fail', 'greet', 'kinds', 'shout', 'system.listMethods', 'system.methodHelp', 'system.methodSignature']", methods);
        Assert.Equal("OK 'shout(text: string, times: int = ...) -> string'", await python.AskAsync("call cs system.methodHelp 'shout'"));

        Assert.Equal("FAULT 1 <class 'System.InvalidOperationException'>:boom", await python.AskAsync("call cs fail {}"));
        Assert.Equal("FAULT 2 <class 'MethodNotFound'>:Node 'cs' has no function 'fly'.", await python.AskAsync("call cs fly {}"));
        Assert.StartsWith("FAULT 3 <class 'InvalidKwargsException'>:", await python.AskAsync("call cs shout {'times': 2}"));
        Assert.StartsWith("FAULT 1 <class 'TypeError'>:The result of 'big' cannot cross XML-RPC: the result is 1099511627776, an integer beyond 32 bits",
            await python.AskAsync("call cs big {}"));
    }

    [Fact]
    public async Task CSharp_calls_python_with_every_mappable_type_over_loopback_for_its_own_advertised_address()
    {
        var port = Net.FreeUdpPort();
        await using var csharp = await StartCSharpAsync("cs", port);
        await using var python = await LegacyPythonNode.StartAsync("py", port, advertisedIp: "127.0.1.1"); // Python serves on localhost only

        var peer = await csharp.Peers.WaitForAsync("py").Within();
        Assert.True(peer.IsLegacy);
        Assert.Equal($"127.0.1.1:{python.Port}", peer.EndPoint.ToString());

        var time = new DateTime(2026, 11, 27, 9, 30, 15, DateTimeKind.Utc);
        object?[] values = [7L, -2147483648L, 2.5, true, "h\u00e9llo <&> \U0001F600", new byte[] { 0, 1, 255 }, time,
            new object?[] { 1L, "two" }, new Dictionary<string, object?> { ["k"] = new object?[] { false } }];
        foreach (var value in values)
            Assert.Equal(value, await csharp.RequestAsync("py", "echo", new Dictionary<string, object?> { ["value"] = value }).Within());
        Assert.Equal(5, await csharp.RequestAsync<int>("py", "add", new Dictionary<string, object?> { ["a"] = 2, ["b"] = 3 }).Within());
        Assert.Equal("ab", csharp.Request("py", "add", new Dictionary<string, object?> { ["a"] = "a", ["b"] = "b" }));

        var types = (Dictionary<string, object?>)(await csharp.RequestAsync("py", "types", new Dictionary<string, object?> { ["n"] = 1, ["s"] = "x", ["f"] = 1.5f }).Within())!;
        Assert.Equal(7L, types["int"]);
        Assert.Equal(2.5, types["double"]);
        Assert.Equal(true, types["bool"]);
        Assert.Equal("h\u00e9llo <&>", types["string"]);
        Assert.Equal(new byte[] { 0, 1, 255 }, types["bytes"]);
        Assert.Equal(new DateTime(2026, 11, 27, 9, 30, 15, DateTimeKind.Utc), types["time"]);
        Assert.Equal(new object?[] { 1L, "two", 3.0 }, types["list"]);
        Assert.Equal(new object?[] { "f:float", "n:int", "s:str" }, types["got"]);

        Assert.Contains("echo", csharp.GetMethods("py"));
        Assert.Contains("system.listMethods", await csharp.GetMethodsAsync("py").Within());

        var failed = await Assert.ThrowsAsync<RemoteException>(() => csharp.RequestAsync("py", "fail", new Dictionary<string, object?> { ["why"] = "test" }));
        Assert.Equal("ValueError", failed.RemoteType);
        Assert.Equal("boom: test", failed.RemoteMessage);
        await Assert.ThrowsAsync<MethodNotFoundException>(() => csharp.RequestAsync("py", "fly"));
        var tooBig = await Assert.ThrowsAsync<RemoteException>(() => csharp.RequestAsync("py", "big"));
        Assert.Equal("OverflowError", tooBig.RemoteType); // Python's own marshaller refuses 2**40
    }

    [Fact]
    public async Task Values_that_cannot_cross_fail_with_a_clear_error_before_sending()
    {
        var port = Net.FreeUdpPort();
        await using var csharp = await StartCSharpAsync("cs", port);
        await using var python = await LegacyPythonNode.StartAsync("py", port);
        await csharp.Peers.WaitForAsync("py").Within();

        async Task<string> Refused(object? value) =>
            (await Assert.ThrowsAsync<InvalidKwargsException>(() => csharp.RequestAsync("py", "echo", new Dictionary<string, object?> { ["value"] = value }))).Message;

        Assert.Contains("integer beyond 32 bits", await Refused(1L << 32));
        Assert.Contains("integer beyond 32 bits", await Refused(ulong.MaxValue));
        Assert.Contains("is null", await Refused(null));
        Assert.Contains("keys are not all strings", await Refused(new Dictionary<int, string> { [1] = "a" }));
        Assert.Contains("whole seconds", await Refused(new DateTime(2026, 1, 1, 0, 0, 0, 5, DateTimeKind.Utc)));
        Assert.Contains("character XML-RPC cannot carry", await Refused("nul\0"));
        // Still serving after every refusal: nothing was sent.
        Assert.Equal(1L, await csharp.RequestAsync("py", "echo", new Dictionary<string, object?> { ["value"] = 1 }).Within());
    }

    [Fact]
    public async Task LegacyInterop_with_secure_mode_is_refused_at_start_with_the_reason()
    {
        var options = new NodeOptions
        {
            Name = "both",
            DiscoveryPort = Net.FreeUdpPort(),
            Scope = DiscoveryScope.Loopback,
            LegacyInterop = true,
            Security = NodeSecurity.SharedKey(NodeSecurity.CreateNetworkKey()),
        };
        var error = await Assert.ThrowsAsync<ArgumentException>(() => Node.StartAsync(options));
        Assert.Equal(nameof(NodeOptions.LegacyInterop), error.ParamName);
        Assert.Contains("no authentication", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_LegacyInterop_calls_to_python_say_how_to_enable_it()
    {
        var port = Net.FreeUdpPort();
        await using var csharp = await StartCSharpAsync("cs", port, legacy: false);
        await using var python = await LegacyPythonNode.StartAsync("py", port);
        await csharp.Peers.WaitForAsync("py").Within();
        var error = await Assert.ThrowsAsync<P2PException>(() => csharp.RequestAsync("py", "echo"));
        Assert.Contains("LegacyInterop = true", error.Message);
        Assert.StartsWith("ERROR", await python.AskAsync("wait cs") is var found && found.StartsWith("FOUND", StringComparison.Ordinal)
            ? await python.AskAsync("call cs greet {'name': 'Ann'}") : "ERROR not found");
    }

    [Fact]
    public async Task CSharp_nodes_call_each_other_over_xml_rpc_too_and_framed_callers_still_get_in()
    {
        var port = Net.FreeUdpPort();
        await using var server = await StartCSharpAsync("server", port);
        await using var framed = await StartCSharpAsync("framed", port);
        await framed.Peers.WaitForAsync("server").Within();
        Assert.Equal("Hello, Bo!", await framed.RequestAsync("server", "greet", new Dictionary<string, object?> { ["name"] = "Bo" }).Within());

        // The same server, announced by a Python-style beacon: the caller sees a legacy peer and speaks XML-RPC to it.
        await using var beacon = LegacyBeacon.Start("server-xmlrpc", server.ServiceEndPoint.Port, port);
        Assert.True((await framed.Peers.WaitForAsync("server-xmlrpc").Within()).IsLegacy);
        Assert.Equal("HIHI", await framed.RequestAsync("server-xmlrpc", "shout", new Dictionary<string, object?> { ["text"] = "hi", ["times"] = 2 }).Within());
        var error = await Assert.ThrowsAsync<InvalidKwargsException>(() => framed.RequestAsync("server-xmlrpc", "shout", new Dictionary<string, object?> { ["times"] = 2 }));
        Assert.Equal("InvalidKwargsException", error.RemoteType);
        await Assert.ThrowsAsync<MethodNotFoundException>(() => framed.RequestAsync("server-xmlrpc", "fly"));
        Assert.Equal(["big", "fail", "greet", "kinds", "shout", "system.listMethods", "system.methodHelp", "system.methodSignature"],
            await framed.GetMethodsAsync("server-xmlrpc").Within());
        // A typed proxy to a legacy peer: names are checked (the peer lists them), signatures cannot be.
        Assert.Equal("HO", await Task.Run(() => framed.Peers.Get<IShouter>("server-xmlrpc").Shout("ho")).Within());
        Assert.Equal("Hello, Bo!", await framed.RequestAsync("server", "greet", new Dictionary<string, object?> { ["name"] = "Bo" }).Within());
    }

    [Fact]
    public async Task A_node_whose_protocol_merely_starts_with_ours_is_not_listed()
    {
        var port = Net.FreeUdpPort();
        await using var csharp = await StartCSharpAsync("cs", port);
        await using var python = await LegacyPythonNode.StartAsync("py", port, protocol: "itecnet2"); // Python itself would list it under "itecnet"
        await using var control = LegacyBeacon.Start("control", 9, port); // sent after py's first beacon
        await csharp.Peers.WaitForAsync("control").Within();
        Assert.False(csharp.Peers.TryGet("py", out _));
    }
}
