using System.Runtime.CompilerServices;
using System.Text.Json;

namespace P2PLocal.Rpc.Cli.Tests;

/// <summary>A typed service whose function streams: <c>$methods</c> lists its result as <c>stream&lt;int&gt;</c>.</summary>
[P2PService]
public partial class Ticker
{
    public async IAsyncEnumerable<int> Count(int from, int count, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        for (var i = 0; i < count; i++)
        {
            await Task.Yield();
            cancellationToken.ThrowIfCancellationRequested();
            yield return from + i;
        }
    }
}

public class StreamCallTests
{
    /// <summary>
    /// A dynamic producer that never ends on its own: it yields 0, 1, 2, ... as fast as the caller's credit allows, and
    /// completes <paramref name="cancelled"/> when its token fires (the caller left or cancelled).
    /// </summary>
    private static async IAsyncEnumerable<object?> EndlessAsync(TaskCompletionSource cancelled, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var registration = cancellationToken.Register(() => cancelled.TrySetResult());
        for (long i = 0; ; i++)
        {
            await Task.Yield();
            cancellationToken.ThrowIfCancellationRequested();
            yield return i;
        }
    }

    /// <summary>Two maps, then (when <paramref name="fail"/>) an exception.</summary>
    private static async IAsyncEnumerable<object?> TwoMapsAsync(bool fail, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await Task.Yield();
        yield return new Dictionary<string, object?> { ["n"] = 1L };
        yield return new Dictionary<string, object?> { ["n"] = 2L };
        cancellationToken.ThrowIfCancellationRequested();
        if (fail)
            throw new InvalidOperationException("producer failed on purpose");
    }

    [Fact]
    public async Task Call_on_a_streaming_function_prints_each_item_on_a_line_of_its_own_until_the_stream_ends()
    {
        var port = LoopbackPorts.FreeUdpPort();
        await using var bob = await TestNetwork.StartAsync("bob", port);
        bob.Register(new Ticker());
        bob.RegisterStream("maps", (kwargs, cancellationToken) => TwoMapsAsync(fail: false, cancellationToken));

        var methods = await Cli.RunAsync(port, "methods", "bob");
        var typed = await Cli.RunAsync(port, "call", "bob", "Count", "from=5", "count=3");
        var dynamic = await Cli.RunAsync(port, "call", "bob", "maps");

        Assert.Contains("stream<int>", methods.Out);
        Assert.True(typed.ExitCode == 0, typed.ToString());
        Assert.Equal(["5", "6", "7"], typed.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        Assert.Equal("", typed.Error);
        Assert.True(dynamic.ExitCode == 0, dynamic.ToString());
        Assert.Equal(["{\"n\":1}", "{\"n\":2}"], dynamic.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }

    [Fact]
    public async Task Call_json_on_a_stream_writes_one_line_per_item_then_an_end_line()
    {
        var port = LoopbackPorts.FreeUdpPort();
        await using var bob = await TestNetwork.StartAsync("bob", port);
        bob.Register(new Ticker());

        var result = await Cli.RunAsync(port, "call", "bob", "Count", "--kwargs", "{\"from\": 10, \"count\": 4}", "--json");

        Assert.True(result.ExitCode == 0, result.ToString());
        var lines = result.JsonLines();
        Assert.Equal(5, lines.Count);
        Assert.All(lines, l => Assert.Equal(1, l.GetProperty("schema").GetInt32()));
        Assert.Equal([("item", 0L, 10), ("item", 1L, 11), ("item", 2L, 12), ("item", 3L, 13)],
            lines.Take(4).Select(l => (l.GetProperty("event").GetString(), l.GetProperty("index").GetInt64(), l.GetProperty("item").GetInt32())));
        var end = lines[^1];
        Assert.Equal("end", end.GetProperty("event").GetString());
        Assert.True(end.GetProperty("ok").GetBoolean());
        Assert.True(end.GetProperty("complete").GetBoolean());
        Assert.Equal(4, end.GetProperty("items").GetInt64());
        Assert.Equal(("bob", "Count"), (end.GetProperty("peer").GetString(), end.GetProperty("function").GetString()));
        Assert.Equal("loopback", end.GetProperty("network").GetProperty("scope").GetString());
        Assert.Equal(JsonValueKind.Null, end.GetProperty("error").ValueKind);
    }

    [Fact]
    public async Task Max_items_leaves_the_stream_early_and_cancels_the_producer()
    {
        var port = LoopbackPorts.FreeUdpPort();
        await using var bob = await TestNetwork.StartAsync("bob", port);
        var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        bob.RegisterStream("endless", (_, cancellationToken) => EndlessAsync(cancelled, cancellationToken));

        var result = await Cli.RunAsync(port, "call", "bob", "endless", "--max-items", "3", "--json");

        Assert.True(result.ExitCode == 0, result.ToString());
        await cancelled.Task.Within();
        var lines = result.JsonLines();
        Assert.Equal([0L, 1L, 2L], lines.Where(l => l.GetProperty("event").GetString() == "item").Select(l => l.GetProperty("item").GetInt64()));
        var end = lines[^1];
        Assert.Equal(("end", true, false, 3L), (end.GetProperty("event").GetString(), end.GetProperty("ok").GetBoolean(), end.GetProperty("complete").GetBoolean(), end.GetProperty("items").GetInt64()));
    }

    [Fact]
    public async Task Ctrl_C_stops_a_stream_with_exit_130_after_the_items_that_came_and_cancels_the_producer()
    {
        var port = LoopbackPorts.FreeUdpPort();
        await using var bob = await TestNetwork.StartAsync("bob", port);
        var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        bob.RegisterStream("endless", (_, cancellationToken) => EndlessAsync(cancelled, cancellationToken));

        await using var call = Cli.Start(port, "call", "bob", "endless");
        await call.WaitForLineAsync(l => l == "2");
        var result = await call.StopAsync();

        Assert.Equal(130, result.ExitCode);
        await cancelled.Task.Within();
        Assert.StartsWith("error: interrupted after ", result.Error);
        Assert.Contains("the stream was cancelled", result.Error);
        Assert.StartsWith("0\n1\n2\n", result.Out.ReplaceLineEndings("\n"));
    }

    [Fact]
    public async Task An_error_after_some_items_prints_the_items_then_the_error_and_exits_1()
    {
        var port = LoopbackPorts.FreeUdpPort();
        await using var bob = await TestNetwork.StartAsync("bob", port);
        bob.RegisterStream("fails", (_, cancellationToken) => TwoMapsAsync(fail: true, cancellationToken));

        var plain = await Cli.RunAsync(port, "call", "bob", "fails");
        var json = await Cli.RunAsync(port, "call", "bob", "fails", "--json");

        Assert.Equal(1, plain.ExitCode);
        Assert.Equal(["{\"n\":1}", "{\"n\":2}"], plain.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        Assert.StartsWith("error: RemoteException:", plain.Error);
        Assert.Contains("producer failed on purpose", plain.Error);

        Assert.Equal(1, json.ExitCode);
        var lines = json.JsonLines();
        Assert.Equal(3, lines.Count);
        var end = lines[^1];
        Assert.Equal(("end", false, false, 2L), (end.GetProperty("event").GetString(), end.GetProperty("ok").GetBoolean(), end.GetProperty("complete").GetBoolean(), end.GetProperty("items").GetInt64()));
        Assert.Equal("RemoteException", end.GetProperty("error").GetProperty("type").GetString());
        Assert.Equal("System.InvalidOperationException", end.GetProperty("error").GetProperty("remoteType").GetString());
    }

    [Fact]
    public async Task Max_items_below_1_exits_2_before_anything_is_sent()
    {
        var port = LoopbackPorts.FreeUdpPort();

        var result = await Cli.RunAsync(port, "call", "bob", "endless", "--max-items", "0");

        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--max-items must be at least 1.", result.Error);
        Assert.Equal("", result.Out);
    }
}
