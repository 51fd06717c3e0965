using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using P2PLocal.Rpc.Benchmarks.Arms;

namespace P2PLocal.Rpc.Benchmarks;

/// <summary>
/// Streamed results (issue 14): items per second of one stream of small items, against the same number of unary
/// calls returning one small value each, one after another and with 64 in flight; alice and bob on loopback, both
/// dynamic (<c>RegisterStream</c>/<c>RequestStreamAsync</c> and <c>Register</c>/<c>RequestAsync</c>), measured in one run.
/// </summary>
public static class StreamBench
{
    public sealed record Result(int Items, double StreamPerSecond, double SequentialPerSecond, double InFlightPerSecond, int Window);

    public static async Task<Result> RunAsync(Settings settings)
    {
        var items = settings.Quick ? 20_000 : 100_000;
        var port = LoopbackNodes.FreeUdpPort();
        await using var bob = await Node.StartAsync(LoopbackNodes.Options("bob", port));
        bob.RegisterStream("count", (kwargs, ct) => Count((long)kwargs["n"]!, ct));
        bob.Register("one", kwargs => kwargs["i"]);
        await using var alice = await Node.StartAsync(LoopbackNodes.Options("alice", port));
        await alice.Peers.WaitForAsync("bob").WaitAsync(TimeSpan.FromSeconds(20));

        // Warm-up: both paths, so neither pays for JIT or the first connection.
        await ReadStreamAsync(alice, items / 10);
        await UnaryAsync(alice, items / 10, 1);

        var stream = await TimeAsync(() => ReadStreamAsync(alice, items));
        var sequential = await TimeAsync(() => UnaryAsync(alice, items, 1));
        var inFlight = await TimeAsync(() => UnaryAsync(alice, items, 64));
        return new Result(items, items / stream, items / sequential, items / inFlight, alice.Options.StreamWindow);
    }

    public static string Describe(Result r) => string.Create(CultureInfo.InvariantCulture,
        $"Streamed results (issue 14): {r.Items:#,0} small items (an int64 each) as one stream: {r.StreamPerSecond:#,0} items/s " +
        $"(window {r.Window}). The same number of unary calls returning one int64 each: {r.SequentialPerSecond:#,0} calls/s one after another " +
        $"(the stream: {r.StreamPerSecond / r.SequentialPerSecond:0.0}x), {r.InFlightPerSecond:#,0} calls/s with 64 in flight " +
        $"(the stream: {r.StreamPerSecond / r.InFlightPerSecond:0.0}x). Both sides dynamic, loopback, measured in one run.");

    private static async IAsyncEnumerable<object?> Count(long n, [EnumeratorCancellation] CancellationToken ct)
    {
        for (var i = 0L; i < n; i++)
            yield return i;
        await Task.CompletedTask;
    }

    private static async Task ReadStreamAsync(Node alice, int items)
    {
        var expected = 0L;
        await foreach (var item in alice.RequestStreamAsync("bob", "count", new Dictionary<string, object?> { ["n"] = (long)items }))
        {
            if ((long)item! != expected++)
                throw new InvalidOperationException($"Item {expected - 1} arrived as {item}.");
        }

        if (expected != items)
            throw new InvalidOperationException($"The stream ended after {expected} of {items} items.");
    }

    private static async Task UnaryAsync(Node alice, int calls, int inFlight)
    {
        var next = -1;
        await Task.WhenAll(Enumerable.Range(0, inFlight).Select(async _ =>
        {
            for (var i = Interlocked.Increment(ref next); i < calls; i = Interlocked.Increment(ref next))
            {
                var reply = await alice.RequestAsync("bob", "one", new Dictionary<string, object?> { ["i"] = (long)i });
                if ((long)reply! != i)
                    throw new InvalidOperationException($"Call {i} answered {reply}.");
            }
        }));
    }

    private static async Task<double> TimeAsync(Func<Task> run)
    {
        var clock = Stopwatch.StartNew();
        await run();
        return clock.Elapsed.TotalSeconds;
    }
}
