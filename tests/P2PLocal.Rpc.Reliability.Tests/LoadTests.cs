using System.Diagnostics;

namespace P2PLocal.Rpc.Reliability.Tests;

/// <summary>L1 soak, L2 fifty nodes on one host, L3 overload. Bounded by default; env vars make them longer.</summary>
[Collection(Serial.Name)]
public class LoadTests(ITestOutputHelper output)
{
    private static int EnvInt(string name, int fallback) => int.TryParse(Environment.GetEnvironmentVariable(name), out var v) && v > 0 ? v : fallback;

    private static void RegisterMix(Node node)
    {
        node.Register("echo", kwargs => kwargs.GetValueOrDefault("value"));
        node.Register("slow", async (kwargs, ct) =>
        {
            await Task.Delay(TimeSpan.FromMilliseconds((long)kwargs["ms"]!), ct);
            return "slept";
        });
        node.Register("throws", _ => throw new InvalidOperationException("on purpose"));
    }

    [Fact]
    [Trait("Category", "Long")]
    public async Task L1_soak_of_mixed_calls_loses_nothing_and_keeps_memory_and_handles_flat()
    {
        var seconds = EnvInt("P2P_SOAK_SECONDS", 20);
        var port = Net.FreeUdpPort();
        await using var a = await Net.StartAsync("a", port);
        await using var b = await Net.StartAsync("b", port);
        await using var c = await Net.StartAsync("c", port);
        foreach (var node in new[] { a, b, c })
            RegisterMix(node);
        foreach (var (from, to) in new[] { (c, "a"), (c, "b"), (b, "a"), (a, "c") })
            await from.Peers.WaitForAsync(to).Within();

        var outcomes = new System.Collections.Concurrent.ConcurrentDictionary<string, long>();
        var lost = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var stop = new CancellationTokenSource();
        var big = new string('x', 64 * 1024);
        async Task WorkerAsync(Node from, string to, int seed)
        {
            var random = new Random(seed);
            while (!stop.IsCancellationRequested)
            {
                var pick = random.Next(100);
                var kind = pick switch { < 55 => "echo", < 65 => "echo-64k", < 75 => "slow", < 82 => "cancel", < 88 => "throws", < 94 => "unknown", _ => "$methods" };
                try
                {
                    switch (kind)
                    {
                        case "echo":
                            var value = random.Next();
                            if (!Equals((long)value, await from.RequestAsync(to, "echo", Net.Kw("value", value)).WaitAsync(Net.Patience)))
                                lost.Enqueue("echo returned a wrong value");
                            break;
                        case "echo-64k":
                            if (await from.RequestAsync(to, "echo", Net.Kw("value", big)).WaitAsync(Net.Patience) is not string { Length: 65536 })
                                lost.Enqueue("64 KiB echo came back wrong");
                            break;
                        case "slow":
                            await from.RequestAsync(to, "slow", Net.Kw("ms", 5L)).WaitAsync(Net.Patience);
                            break;
                        case "cancel":
                            using (var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(2)))
                            {
                                try
                                {
                                    await from.RequestAsync(to, "slow", Net.Kw("ms", 10_000L), cts.Token).WaitAsync(Net.Patience);
                                    lost.Enqueue("a cancelled call returned");
                                }
                                catch (OperationCanceledException)
                                {
                                }
                            }

                            break;
                        case "throws":
                            await Assert.ThrowsAsync<RemoteException>(() => from.RequestAsync(to, "throws").WaitAsync(Net.Patience));
                            break;
                        case "unknown":
                            await Assert.ThrowsAsync<MethodNotFoundException>(() => from.RequestAsync(to, "nope").WaitAsync(Net.Patience));
                            break;
                        default:
                            if ((await from.GetMethodsAsync(to).WaitAsync(Net.Patience)).Count != 3)
                                lost.Enqueue("$methods listed the wrong functions");
                            break;
                    }

                    outcomes.AddOrUpdate(kind, 1, (_, n) => n + 1);
                }
                catch (Exception e)
                {
                    lost.Enqueue($"{kind}: {e.GetType().Name}: {e.Message}");
                }
            }
        }

        var workers = new List<Task>();
        for (var i = 0; i < 4; i++)
        {
            workers.Add(Task.Run(() => WorkerAsync(c, "a", 100 + i)));
            workers.Add(Task.Run(() => WorkerAsync(c, "b", 200 + i)));
        }

        workers.Add(Task.Run(() => WorkerAsync(b, "a", 300)));
        workers.Add(Task.Run(() => WorkerAsync(a, "c", 400)));

        // Warm up for a tenth of the run, then sample the process every few seconds.
        var clock = Stopwatch.StartNew();
        var samples = new List<(long Calls, Resources Counts)>();
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(Math.Max(1, seconds / 10.0)));
        while (await timer.WaitForNextTickAsync() && clock.Elapsed < TimeSpan.FromSeconds(seconds))
            samples.Add((outcomes.Values.Sum(), Resources.Measure()));
        await stop.CancelAsync();
        await Task.WhenAll(workers).Within();
        var calls = outcomes.Values.Sum();

        foreach (var (n, counts) in samples)
            output.WriteLine($"L1 after {n,8} calls: {counts}");
        output.WriteLine($"L1 {seconds} s, 10 workers over 3 nodes: {calls} calls ({calls / seconds} /s): {string.Join(", ", outcomes.OrderBy(o => o.Key).Select(o => $"{o.Key} {o.Value}"))}; lost {lost.Count}");
        foreach (var reason in lost.Take(10))
            output.WriteLine("L1 LOST " + reason);

        Assert.Empty(lost);
        var baseline = samples[Math.Min(1, samples.Count - 1)].Counts;
        var last = samples[^1].Counts;
        Assert.InRange(last.Sockets, 0, baseline.Sockets + 4);
        Assert.InRange(last.Descriptors, 0, baseline.Descriptors + 8);
        Assert.InRange(last.ManagedBytes, 0, baseline.ManagedBytes + (32L << 20));
        // Threads and timers: the pool may add a few threads under load, and each pooled pending call owns one timer;
        // a leak per call (about 100 000 calls here) would be far above either bound.
        Assert.InRange(last.Threads, 0, baseline.Threads + 32);
        Assert.InRange(last.Timers, 0, baseline.Timers + 256);
    }

    [Fact]
    [Trait("Category", "Long")]
    public async Task L2_fifty_nodes_on_one_host_all_see_each_other_and_random_pairs_can_call()
    {
        var count = EnvInt("P2P_L2_NODES", 50);
        var port = Net.FreeUdpPort();
        var nodes = new List<Node>();
        var before = Resources.Measure();
        var clock = Stopwatch.StartNew();
        try
        {
            var converged = new List<Task>();
            for (var i = 0; i < count; i++)
            {
                var node = await Net.StartAsync(Net.Options($"n{i:00}", port, interval: TimeSpan.FromSeconds(1)));
                node.Register("echo", kwargs => kwargs.GetValueOrDefault("value"));
                var all = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                node.Peers.Joined += (_, _) =>
                {
                    if (node.Peers.Count >= count - 1)
                        all.TrySetResult();
                };
                nodes.Add(node);
                converged.Add(all.Task);
            }

            var started = clock.ElapsedMilliseconds;
            foreach (var (node, task) in nodes.Zip(converged))
            {
                if (node.Peers.Count >= count - 1)
                    continue;
                await task.Within();
            }

            var convergedAt = clock.ElapsedMilliseconds;
            Assert.All(nodes, n => Assert.Equal(count - 1, n.Peers.Count));
            // Hello answers make it milliseconds; the 1 s alive beacons are the backstop. Either way, within 3 intervals
            // (+1 s) of the last start: a node that needed expiry or a second hello round would miss it.
            Assert.InRange(convergedAt - started, 0, (3 * 1000) + 1000);

            var random = new Random(50);
            var pairs = Enumerable.Range(0, 500).Select(_ => (From: random.Next(count), To: random.Next(count))).Where(p => p.From != p.To).ToList();
            var callClock = Stopwatch.StartNew();
            var results = await Task.WhenAll(pairs.Select(async p =>
            {
                var value = $"{p.From}->{p.To}";
                return Equals(value, await nodes[p.From].RequestAsync(nodes[p.To].Name, "echo", Net.Kw("value", value)).WaitAsync(Net.Patience));
            })).Within();
            var callsMs = callClock.ElapsedMilliseconds;
            var during = Resources.Measure();
            Assert.All(results, Assert.True);

            output.WriteLine($"L2 {count} nodes started in {started} ms; every node saw all {count - 1} others {convergedAt} ms after the first start");
            output.WriteLine($"L2 {pairs.Count} calls between random pairs, all concurrent: {results.Count(r => r)} ok in {callsMs} ms");
            output.WriteLine($"L2 process before: {before}; with {count} nodes and their connections: {during}");
        }
        finally
        {
            var disposeClock = Stopwatch.StartNew();
            await Task.WhenAll(nodes.Select(n => n.DisposeAsync().AsTask()));
            output.WriteLine($"L2 {nodes.Count} nodes shut down together in {disposeClock.ElapsedMilliseconds} ms");
            // No node has calls in flight: shutting down together takes far less than one grace period each (2 s).
            Assert.InRange(disposeClock.ElapsedMilliseconds, 0, (3 * 2000) + 1000);
        }
    }

    [Fact]
    [Trait("Category", "Long")]
    public async Task L3_overload_beyond_the_per_connection_limit_is_rejected_clearly_and_admitted_calls_stay_fast()
    {
        const int limit = 16, burst = 500;
        var port = Net.FreeUdpPort();
        await using var server = await Net.StartAsync(Net.Options("server", port, maxConcurrent: limit));
        await using var caller = await Net.StartAsync("caller", port);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var admitted = 0;
        server.Register("gated", async (_, ct) =>
        {
            Interlocked.Increment(ref admitted);
            await gate.Task.WaitAsync(ct);
            return "ok";
        });
        server.Register("work", async (_, ct) =>
        {
            await Task.Delay(2, ct);
            return "ok";
        });
        await caller.Peers.WaitForAsync("server").Within();
        await caller.RequestAsync("server", "work").Within(); // connect first

        // Part 1: a burst of 500 calls at a gate; only `limit` may run, the rest must be refused at once.
        var memoryBefore = Resources.Measure().ManagedBytes;
        var rejected = 0;
        var allRejected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var calls = Enumerable.Range(0, burst).Select(async _ =>
        {
            try
            {
                return await caller.RequestAsync("server", "gated");
            }
            catch (PeerBusyException)
            {
                if (Interlocked.Increment(ref rejected) == burst - limit)
                    allRejected.TrySetResult();
                return "busy";
            }
        }).ToList();
        await allRejected.Task.Within();
        var memoryPeak = Resources.Measure().ManagedBytes;
        Assert.Equal(limit, Volatile.Read(ref admitted));
        gate.SetResult();
        var burstResults = await Task.WhenAll(calls).Within();
        Assert.Equal(limit, burstResults.Count(r => Equals(r, "ok")));

        // Part 2: sustained overload, 4x the limit in closed loops; admitted calls are timed.
        var seconds = EnvInt("P2P_OVERLOAD_SECONDS", 5);
        var latencies = new System.Collections.Concurrent.ConcurrentBag<double>();
        var busy = 0L;
        var lost = 0L;
        var until = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, limit * 4).Select(_ => Task.Run(async () =>
        {
            while (until.Elapsed < TimeSpan.FromSeconds(seconds))
            {
                var start = Stopwatch.GetTimestamp();
                try
                {
                    await caller.RequestAsync("server", "work").WaitAsync(Net.Patience);
                    latencies.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                }
                catch (PeerBusyException)
                {
                    Interlocked.Increment(ref busy);
                    await Task.Yield();
                }
                catch (Exception)
                {
                    Interlocked.Increment(ref lost);
                }
            }
        }))).Within();
        var memoryAfter = Resources.Measure().ManagedBytes;
        var sorted = latencies.Order().ToArray();
        double P(double q) => sorted.Length == 0 ? double.NaN : sorted[(int)Math.Min(sorted.Length - 1, q * sorted.Length)];

        output.WriteLine($"L3 burst of {burst} at a gate, limit {limit}/connection: {admitted} admitted, {rejected} refused with PeerBusyException at once; managed memory {memoryBefore / 1024} KiB before, {memoryPeak / 1024} KiB at the peak");
        output.WriteLine($"L3 sustained {limit * 4} callers for {seconds} s on a 2 ms handler: {sorted.Length} admitted, {busy} refused busy, {lost} lost; admitted latency p50 {P(0.5):0.0} ms, p99 {P(0.99):0.0} ms, max {sorted.LastOrDefault():0.0} ms; managed memory after {memoryAfter / 1024} KiB");
        Assert.Equal(0, lost);
        Assert.InRange(memoryPeak, 0, memoryBefore + (64L << 20));
        Assert.InRange(memoryAfter, 0, memoryBefore + (64L << 20));
        // "Sane", not fast: 250x the p99 measured here (19.5 ms), since a loaded 2-core machine can stall a thread for a
        // second (issue 17). A regression that queues admitted calls behind refused ones would still pass 5 s only by luck.
        Assert.InRange(P(0.99), 0, 5000);
    }
}
