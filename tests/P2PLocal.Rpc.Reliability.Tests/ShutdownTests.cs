using System.Diagnostics;

namespace P2PLocal.Rpc.Reliability.Tests;

/// <summary>F4: graceful shutdown with calls in flight, counting what a leak would leave behind.</summary>
[Collection(Serial.Name)]
public class ShutdownTests(ITestOutputHelper output)
{
    private const int Quick = 10, Honouring = 5, Stubborn = 2;

    [Fact]
    public async Task F4_graceful_shutdown_completes_or_fails_calls_cleanly_sends_goodbye_and_leaks_nothing()
    {
        var stubbornHandlers = new List<Task>();
        await CycleAsync(stubbornHandlers); // warm-up: JIT, thread pool, epoll and the like are made once per process
        await Task.WhenAll(stubbornHandlers).Within();
        var before = Resources.Measure();

        const int cycles = 5;
        var lines = new List<string>();
        for (var i = 0; i < cycles; i++)
            lines.Add(await CycleAsync(stubbornHandlers));
        // Handlers that ignore cancellation outlive the node by design; wait for them before counting.
        await Task.WhenAll(stubbornHandlers).Within();
        var right = Resources.Measure();
        var settle = Stopwatch.StartNew();
        var after = await SettledAsync(before);
        var settledMs = settle.ElapsedMilliseconds;

        foreach (var line in lines)
            output.WriteLine(line);
        output.WriteLine($"F4 before {cycles} cycles: {before}");
        output.WriteLine($"F4 right after the last shutdown returned: {right}");
        output.WriteLine($"F4 after  {cycles} cycles: {after} (counts settled {settledMs} ms after the last shutdown returned)");
        Assert.InRange(after.Sockets, 0, before.Sockets);
        Assert.InRange(after.Descriptors, 0, before.Descriptors + 2);
        Assert.InRange(after.Timers, 0, before.Timers + 2);
    }

    [Fact]
    public async Task F4_shutdown_leaves_no_timer_running_once_it_returns()
    {
        async Task CycleAsync()
        {
            var port = Net.FreeUdpPort();
            var server = await Net.StartAsync(Net.Options("server", port, grace: TimeSpan.FromSeconds(5)));
            var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var running = 0;
            server.Register("quick", async (_, ct) =>
            {
                if (Interlocked.Increment(ref running) == 5)
                    started.TrySetResult();
                await release.Task.WaitAsync(ct);
                return "done";
            });
            var callers = new List<Node>();
            var calls = new List<Task<object?>>();
            for (var i = 0; i < 5; i++)
            {
                var caller = await Net.StartAsync($"caller{i}", port);
                await caller.Peers.WaitForAsync("server").Within();
                callers.Add(caller);
                calls.Add(caller.RequestAsync("server", "quick"));
            }

            await started.Task.Within();
            var shutdown = server.DisposeAsync().AsTask();
            release.SetResult(); // the running calls finish early in the 5 s grace period
            await shutdown.Within();
            foreach (var call in calls)
                Assert.Equal("done", await call.Within());
            foreach (var caller in callers)
                await caller.DisposeAsync();
        }

        await CycleAsync(); // warm-up
        var before = Timer.ActiveCount;
        await CycleAsync();
        var after = Timer.ActiveCount;
        output.WriteLine($"F4 timers: {before} before a node with 5 drained connections started, {after} right after it and its 5 callers shut down (grace 5 s, all calls done early)");
        Assert.InRange(after, 0, before + 1);
    }

    /// <summary>Counts again until sockets and timers are back (closing is asynchronous), within the patience.</summary>
    private static async Task<Resources> SettledAsync(Resources before)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var now = Resources.Measure();
            if ((now.Sockets <= before.Sockets && now.Timers <= before.Timers) || deadline.Elapsed > TimeSpan.FromSeconds(10))
                return now;
            await Task.Yield();
        }
    }

    private static async Task<string> CycleAsync(List<Task> stubbornHandlers)
    {
        var port = Net.FreeUdpPort();
        var server = await Net.StartAsync(Net.Options("server", port, interval: TimeSpan.FromSeconds(30), grace: TimeSpan.FromSeconds(3)));
        var caller = await Net.StartAsync("caller", port);
        var running = 0;
        var allRunning = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void Started()
        {
            if (Interlocked.Increment(ref running) == Quick + Honouring + Stubborn)
                allRunning.TrySetResult();
        }

        server.Register("quick", async (_, ct) =>
        {
            Started();
            await release.Task.WaitAsync(ct);
            return "done";
        });
        server.Register("honouring", async (_, ct) =>
        {
            Started();
            await Task.Delay(Timeout.Infinite, ct);
            return null;
        });
        server.Register("stubborn", (_, _) =>
        {
            Started();
            var handler = Task.Delay(7000, CancellationToken.None); // ignores its token, outlives grace + 1 s drain
            lock (stubbornHandlers)
                stubbornHandlers.Add(handler);
            return new ValueTask<object?>(handler.ContinueWith(_ => (object?)"late", TaskScheduler.Default));
        });
        await caller.Peers.WaitForAsync("server").Within();
        var left = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        caller.Peers.Left += (_, p) =>
        {
            if (p.Name == "server")
                left.TrySetResult();
        };

        var quick = Enumerable.Range(0, Quick).Select(_ => caller.RequestAsync("server", "quick")).ToList();
        var honouring = Enumerable.Range(0, Honouring).Select(_ => caller.RequestAsync("server", "honouring")).ToList();
        var stubborn = Enumerable.Range(0, Stubborn).Select(_ => caller.RequestAsync("server", "stubborn")).ToList();
        await allRunning.Task.Within();

        var clock = Stopwatch.StartNew();
        var shutdown = server.DisposeAsync().AsTask();
        // Released as shutdown begins, the quick calls finish inside the grace period with room to spare on a loaded
        // machine (releasing them only after the goodbye arrived left too little of a 500 ms grace under load).
        release.SetResult();
        await left.Task.Within(); // the goodbye: the advertise interval is 30 s, so expiry cannot explain it
        var goodbyeAfter = clock.ElapsedMilliseconds;
        await shutdown.Within();
        var shutdownTook = clock.ElapsedMilliseconds;

        var quickOk = 0;
        foreach (var call in quick)
            quickOk += await call.Within() is "done" ? 1 : 0;
        var failures = new List<string>();
        foreach (var call in honouring.Concat(stubborn))
        {
            var e = await Assert.ThrowsAnyAsync<Exception>(() => call.Within());
            Assert.True(e is P2PException or OperationCanceledException, $"unclean failure: {e}");
            failures.Add(e.GetType().Name);
        }

        await caller.DisposeAsync();
        Assert.Equal(Quick, quickOk);
        // The goodbye goes out first, before any draining; shutdown ends after the 3 s grace period plus the bounded 1 s
        // drain, and never waits for the 7 s stubborn handlers. A 3 s grace (not 1.5 s) leaves the quick calls, released as
        // shutdown begins, room to finish on a loaded 2-core machine (issue 17).
        Assert.InRange(goodbyeAfter, 0, 2000);
        Assert.InRange(shutdownTook, 2500, 6900);
        return $"F4 cycle: goodbye seen {goodbyeAfter} ms after shutdown began; shutdown took {shutdownTook} ms (grace 3000 ms); {quickOk}/{Quick} quick calls completed; "
            + $"cancellable and stubborn calls failed cleanly: {string.Join(", ", failures.GroupBy(f => f).Select(g => $"{g.Count()} {g.Key}"))}";
    }
}
