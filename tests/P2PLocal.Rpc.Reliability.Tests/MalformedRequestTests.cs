using MessagePack;

namespace P2PLocal.Rpc.Reliability.Tests;

/// <summary>B3 malformed MessagePack inside well-framed requests, and B6 wrong calls made through the API.</summary>
public class MalformedRequestTests(ITestOutputHelper output)
{
    private const int ErrorKind = 2;
    private const int InvalidKwargs = 3;
    private const int MethodNotFound = 2;

    /// <summary>What the node must do with a case: answer with that error code, or close the connection (-1).</summary>
    private const int Closes = -1;

    private static byte[] Nested(int depth)
    {
        var bytes = new byte[depth + 1];
        Array.Fill(bytes, (byte)0x91); // fixarray of one element, nested
        bytes[^1] = 0xC0;              // nil at the bottom
        return bytes;
    }

    public static TheoryData<string, int> Cases => new()
    {
        { "truncated kwargs", Closes },
        { "kwargs is an array", InvalidKwargs },
        { "kwargs is an integer", InvalidKwargs },
        { "kwargs nested 100000 deep", InvalidKwargs },
        { "kwargs nested 600 deep (just over the limit)", InvalidKwargs },
        { "str32 header claims 2 GiB", Closes },
        { "array32 header claims 4G elements", Closes },
        { "map32 header claims 4G entries", Closes },
        { "duplicate keys", InvalidKwargs },
        { "non-string key", InvalidKwargs },
        { "nil key", InvalidKwargs },
        { "extension type value", InvalidKwargs },
        { "timestamp out of range", InvalidKwargs },
        { "extension as function name", Closes },
        { "nil function name", MethodNotFound },
        { "negative id", Closes },
        { "float id", Closes },
        { "bytes after kwargs", Closes },
        { "unknown message kind", Closes },
        { "result sent to a server", Closes },
        { "bare integer instead of array", Closes },
        { "second hello", Closes },
        { "request of 2 elements", Closes },
        { "duplicate running id", Closes },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task B3_malformed_request_gets_an_error_or_closes_only_its_connection(string name, int expected)
    {
        var (victim, caller) = await Net.VictimAndCallerAsync(Net.Options("victim", Net.FreeUdpPort()));
        await using var _ = victim;
        await using var __ = caller;
        var gate = new TaskCompletionSource<object?>(TaskCreationOptions.RunContinuationsAsynchronously);
        victim.Register("wait", async (_, ct) => await gate.Task.WaitAsync(ct));
        using var raw = await RawPeer.ConnectWithHelloAsync(victim.ServiceEndPoint);

        var request = Net.Pack(b => b.Array(4).Number(0).Number(7).Str("echo")); // kwargs follow
        byte[] payload = name switch
        {
            "truncated kwargs" => [.. request, 0x82, 0xA1, (byte)'a'],
            "kwargs is an array" => [.. request, 0x91, 0x01],
            "kwargs is an integer" => [.. request, 0x2A],
            "kwargs nested 100000 deep" => [.. request, 0x81, 0xA1, (byte)'a', .. Nested(100_000)],
            "kwargs nested 600 deep (just over the limit)" => [.. request, 0x81, 0xA1, (byte)'a', .. Nested(600)],
            "str32 header claims 2 GiB" => [.. request, 0x81, 0xA1, (byte)'a', 0xDB, 0x7F, 0xFF, 0xFF, 0xFF, 0x41],
            "array32 header claims 4G elements" => [.. request, 0x81, 0xA1, (byte)'a', 0xDD, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
            "map32 header claims 4G entries" => [.. request, 0xDF, 0xFF, 0xFF, 0xFF, 0xFF, 0xA1, (byte)'a', 0x01],
            "duplicate keys" => [.. request, 0x82, 0xA1, (byte)'a', 0x01, 0xA1, (byte)'a', 0x02],
            "non-string key" => [.. request, 0x81, 0x01, 0x01],
            "nil key" => [.. request, 0x81, 0xC0, 0x01],
            "extension type value" => [.. request, 0x81, 0xA1, (byte)'a', 0xD4, 0x05, 0x00],
            "timestamp out of range" => [.. request, 0x81, 0xA1, (byte)'a', 0xC7, 12, 0xFF, 0x3B, 0x9A, 0xCA, 0x00, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
            "extension as function name" => [.. Net.Pack(b => b.Array(4).Number(0).Number(7)), 0xD4, 0x05, 0x00, 0x80],
            "nil function name" => [.. Net.Pack(b => b.Array(4).Number(0).Number(7)), 0xC0, 0x80],
            "negative id" => [.. Net.Pack(b => b.Array(4).Number(0).Number(-5).Str("echo")), 0x80],
            "float id" => [.. Net.Pack(b => b.Array(4).Number(0)), 0xCB, 0, 0, 0, 0, 0, 0, 0, 0, .. Net.Pack(b => b.Str("echo")), 0x80],
            "bytes after kwargs" => [.. request, 0x80, 0x01, 0x02],
            "unknown message kind" => Net.Pack(b => b.Array(2).Number(9).Number(7)),
            "result sent to a server" => Net.Pack(b => b.Array(3).Number(1).Number(7).Number(1)),
            "bare integer instead of array" => [0x2A],
            "second hello" => RawPeer.Hello("again"),
            "request of 2 elements" => Net.Pack(b => b.Array(2).Number(0).Number(7)),
            "duplicate running id" => Net.Pack(b => b.Array(4).Number(0).Number(7).Str("wait").Map(0)),
            _ => throw new ArgumentOutOfRangeException(nameof(name)),
        };

        await raw.SendFrameAsync(payload);
        if (name == "duplicate running id")
            await raw.SendFrameAsync(payload);

        if (expected == Closes)
        {
            await raw.WaitClosedAsync();
        }
        else
        {
            var reply = await raw.ReadFrameAsync();
            Assert.NotNull(reply);
            var (kind, id, code) = RawPeer.Describe(reply);
            Assert.Equal((ErrorKind, 7u, expected), (kind, id, code));
            // The connection stays usable after a rejected request.
            await raw.SendFrameAsync(RawPeer.Request(8, "echo", Net.Pack(b => b.Map(1).Str("value").Str("ok"))));
            var next = await raw.ReadFrameAsync();
            Assert.Equal(1, RawPeer.Describe(next!).Kind);
        }

        await Net.AssertServesAsync(caller, victim.Name);
        gate.TrySetResult(null);
        output.WriteLine($"B3 {name}: {(expected == Closes ? "connection closed" : $"error code {expected} and the connection kept serving")}; honest caller served");
    }

    [Fact]
    public async Task B6_unknown_function_and_bad_kwargs_give_clear_errors_and_the_node_keeps_serving()
    {
        var (victim, caller) = await Net.VictimAndCallerAsync(Net.Options("victim", Net.FreeUdpPort()));
        await using var _ = victim;
        await using var __ = caller;
        victim.Register(new Adder()); // generated: the errors checked below are the generator's own
        victim.Register("needs_x", kwargs => (long)kwargs["x"]! * 2);

        var outcomes = new List<string>();
        async Task<T> Expect<T>(string what, Task call)
            where T : Exception
        {
            var e = await Assert.ThrowsAsync<T>(() => call.Within());
            outcomes.Add($"{what} -> {typeof(T).Name}: {e.Message}");
            return e;
        }

        var notFound = await Expect<MethodNotFoundException>("unknown function", caller.RequestAsync(victim.Name, "nope"));
        Assert.Contains("nope", notFound.Message, StringComparison.Ordinal);
        var missing = await Expect<InvalidKwargsException>("missing kwarg", caller.RequestAsync(victim.Name, "add", Net.Kw("a", 1)));
        Assert.Contains("'b'", missing.Message, StringComparison.Ordinal);
        var extra = await Expect<InvalidKwargsException>("extra kwarg", caller.RequestAsync(victim.Name, "add",
            new Dictionary<string, object?> { ["a"] = 1, ["b"] = 2, ["c"] = 3 }));
        Assert.Contains("'c'", extra.Message, StringComparison.Ordinal);
        var mistyped = await Expect<InvalidKwargsException>("mistyped kwarg", caller.RequestAsync(victim.Name, "add",
            new Dictionary<string, object?> { ["a"] = "one", ["b"] = 2 }));
        Assert.Contains("'a'", mistyped.Message, StringComparison.Ordinal);
        var dynamicMissing = await Expect<RemoteException>("dynamic handler, missing kwarg", caller.RequestAsync(victim.Name, "needs_x"));
        Assert.Equal(typeof(KeyNotFoundException).FullName, dynamicMissing.RemoteType);
        var dynamicMistyped = await Expect<RemoteException>("dynamic handler, mistyped kwarg", caller.RequestAsync(victim.Name, "needs_x", Net.Kw("x", "str")));
        Assert.Equal(typeof(InvalidCastException).FullName, dynamicMistyped.RemoteType);

        // A hundred more of them, concurrently, then an honest call: nothing escaped onto the server loop.
        var storm = Enumerable.Range(0, 100).Select(i => caller.RequestAsync(victim.Name, i % 2 == 0 ? "nope" : "add", Net.Kw("z", i))).ToList();
        foreach (var call in storm)
            await Assert.ThrowsAnyAsync<P2PException>(() => call.Within());
        Assert.Equal(3L, await caller.RequestAsync(victim.Name, "add", new Dictionary<string, object?> { ["a"] = 1, ["b"] = 2 }).Within());
        await Net.AssertServesAsync(caller, victim.Name);

        foreach (var line in outcomes)
            output.WriteLine("B6 " + line);
        output.WriteLine("B6 then 100 concurrent bad calls all failed with P2PException; add(1,2)=3 and echo still served");
    }
}
