using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace P2PLocal.Rpc.Reliability.Tests;

/// <summary>F1-F6: peers that die, hang, throw, cancel, shut down, restart, or lose their connection.</summary>
public class FaultTests(ITestOutputHelper output)
{
    [Fact]
    public async Task F1_callee_killed_mid_call_fails_every_pending_call_fast_and_the_next_call_reconnects()
    {
        const int pending = 20;
        var port = Net.FreeUdpPort();
        await using var caller = await Net.StartAsync("caller", port);
        var callee = await HostProcess.StartAsync("callee", port, "echo,whoami,slow");
        try
        {
            await caller.Peers.WaitForAsync("callee").Within();
            var failedAt = new long[pending];
            var clock = new Stopwatch();
            var calls = Enumerable.Range(0, pending).Select(async i =>
            {
                try
                {
                    await caller.RequestAsync("callee", "slow", Net.Kw("ms", 600_000));
                    return (Exception?)null;
                }
                catch (Exception e)
                {
                    failedAt[i] = clock.ElapsedMilliseconds;
                    return e;
                }
            }).ToList();
            // Requests on one connection are read in order: once this answers, every slow call is running there.
            Assert.StartsWith("callee/", (string?)await caller.RequestAsync("callee", "whoami").Within());

            clock.Start();
            await callee.KillAsync();
            var exited = clock.ElapsedMilliseconds;
            var errors = await Task.WhenAll(calls).Within();
            Assert.All(errors, e => Assert.IsType<PeerConnectionException>(e));
            var worst = failedAt.Max();

            // The callee comes back (new process, new port, new instance): the next call reaches it.
            var back = new TaskCompletionSource<PeerInfo>(TaskCreationOptions.RunContinuationsAsynchronously);
            var restartClock = Stopwatch.StartNew();
            callee = await HostProcess.StartAsync("callee", port, "echo,whoami,slow");
            var newInstance = callee.InstanceId;
            caller.Peers.Joined += (_, p) =>
            {
                if (p.InstanceId == newInstance)
                    back.TrySetResult(p);
            };
            if (caller.Peers.TryGet("callee", out var now) && now.InstanceId == newInstance)
                back.TrySetResult(now);
            await back.Task.Within();
            var seenAfter = restartClock.ElapsedMilliseconds;
            Assert.Equal($"callee/{newInstance}", await caller.RequestAsync("callee", "whoami").Within());

            output.WriteLine($"F1 {pending} pending calls; process gone {exited} ms after kill; all failed with PeerConnectionException, the last {worst} ms after the kill (target 1000 ms): \"{errors[0]!.Message}\"");
            output.WriteLine($"F1 restarted callee (new port {callee.ServicePort}) seen {seenAfter} ms after its start; the next call reached the new instance");
            // Target 1 s (issue 5), typically met by far (docs/reliability.md F1). The test allows 2 s after the process
            // is reported gone: at load 80 on 2 cores the kill itself took 2.2 s to land (the calls failed 2.1 s after the
            // kill, before the exit notice), and a regression to timeouts (30 s) still fails (issue 17).
            Assert.InRange(worst, 0, exited + 2000);
        }
        finally
        {
            await callee.DisposeAsync();
        }
    }

    [Fact]
    public async Task F2_handler_that_throws_hangs_or_ignores_cancellation_gives_errors_and_the_node_keeps_serving()
    {
        var port = Net.FreeUdpPort();
        await using var callee = await Net.StartAsync("callee", port);
        await using var caller = await Net.StartAsync(Net.Options("caller", port, requestTimeout: TimeSpan.FromMilliseconds(500)));
        var hangCancelled = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        var stubbornRelease = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var stubbornDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var clock = Stopwatch.StartNew();
        callee.Register("echo", kwargs => kwargs.GetValueOrDefault("value"));
        callee.Register("throws", _ => throw new InvalidOperationException("boom"));
        callee.Register("hangs", async (_, ct) =>
        {
            using var registration = ct.Register(() => hangCancelled.TrySetResult(clock.ElapsedMilliseconds));
            await Task.Delay(Timeout.Infinite, ct);
            return null;
        });
        callee.Register("stubborn", async (_, _) =>
        {
            await stubbornRelease.Task; // ignores its token
            stubbornDone.TrySetResult();
            return "late";
        });
        await caller.Peers.WaitForAsync("callee").Within();

        var thrown = await Assert.ThrowsAsync<RemoteException>(() => caller.RequestAsync("callee", "throws").Within());
        Assert.Equal(typeof(InvalidOperationException).FullName, thrown.RemoteType);
        Assert.Equal("boom", thrown.RemoteMessage);

        var start = clock.ElapsedMilliseconds;
        var timedOutAfter = (long)(await Patience.AssertRequestTimeoutAsync(caller.RequestAsync("callee", "hangs"), "hangs", TimeSpan.FromMilliseconds(500))).TotalMilliseconds;
        var remoteCancelledAfter = await hangCancelled.Task.Within() - start;
        Assert.InRange(remoteCancelledAfter, 0, (3 * 500) + 1000); // the timeout's cancel reaches the handler, not only the caller

        start = clock.ElapsedMilliseconds;
        var stubbornStarted = Stopwatch.GetTimestamp();
        var stubbornCalls = Enumerable.Range(0, 5).Select(_ => caller.RequestAsync("callee", "stubborn")).ToList();
        foreach (var call in stubbornCalls)
            await Patience.AssertRequestTimeoutAsync(call, "stubborn", TimeSpan.FromMilliseconds(500), stubbornStarted);
        var stubbornTimedOut = clock.ElapsedMilliseconds - start;
        // The stubborn handlers still run; the node serves others meanwhile.
        await Net.AssertServesAsync(caller, "callee");
        stubbornRelease.SetResult();
        await stubbornDone.Task.Within();
        await Net.AssertServesAsync(caller, "callee"); // their late replies were dropped without harm

        output.WriteLine($"F2 throws -> RemoteException {thrown.RemoteType}: {thrown.RemoteMessage}");
        output.WriteLine($"F2 hangs -> TimeoutException after {timedOutAfter} ms (RequestTimeout 500 ms); the handler's token fired {remoteCancelledAfter} ms after the call");
        output.WriteLine($"F2 5 handlers ignoring cancellation -> all TimeoutException after {stubbornTimedOut} ms; node served echo while they ran and after their late replies");
    }

    [Fact]
    public async Task F3_caller_cancel_fires_the_handler_token_on_the_remote_side()
    {
        var port = Net.FreeUdpPort();
        await using var callee = await Net.StartAsync("callee", port);
        await using var caller = await Net.StartAsync("caller", port);
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var cancelled = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        var clock = new Stopwatch();
        callee.Register("wait", async (_, ct) =>
        {
            using var registration = ct.Register(() => cancelled.TrySetResult(clock.ElapsedMilliseconds));
            started.TrySetResult();
            await Task.Delay(Timeout.Infinite, ct);
            return null;
        });
        await caller.Peers.WaitForAsync("callee").Within();

        using var cts = new CancellationTokenSource();
        var call = caller.RequestAsync("callee", "wait", cancellationToken: cts.Token);
        await started.Task.Within();
        clock.Start();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call.Within());
        var callerSawAt = clock.ElapsedMilliseconds;
        var remoteAt = await cancelled.Task.Within();
        // A cancel is one frame: both sides see it within a round trip. 2 s is far above that on a loaded machine and far
        // below the idle reaper (the only other thing that would end the handler).
        Assert.InRange(callerSawAt, 0, 2000);
        Assert.InRange(remoteAt, 0, 2000);
        callee.Register("echo", kwargs => kwargs.GetValueOrDefault("value"));
        await Net.AssertServesAsync(caller, "callee");
        output.WriteLine($"F3 caller cancelled: caller's task cancelled after {callerSawAt} ms, the remote handler's token fired after {remoteAt} ms");
    }

    public static TheoryData<string> Restarts => ["graceful stop, new port", "killed, new port", "killed, same port"];

    [Theory]
    [MemberData(nameof(Restarts))]
    public async Task F5_restart_with_the_same_name_switches_peers_to_the_new_instance_without_a_stale_call(string how)
    {
        var port = Net.FreeUdpPort();
        await using var caller = await Net.StartAsync("caller", port);
        var first = await HostProcess.StartAsync("svc", port);
        HostProcess? second = null;
        try
        {
            await caller.Peers.WaitForAsync("svc").Within();
            var firstAnswer = $"svc/{first.InstanceId}";
            Assert.Equal(firstAnswer, await caller.RequestAsync("svc", "whoami").Within());

            // Calls run all through the restart; each one records who answered, or what failed.
            using var stop = new CancellationTokenSource();
            var log = new List<(long At, string Outcome)>();
            var clock = Stopwatch.StartNew();
            var loop = Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    string outcome;
                    try
                    {
                        outcome = (string)(await caller.RequestAsync("svc", "whoami").WaitAsync(Net.Patience))!;
                    }
                    catch (P2PException e)
                    {
                        outcome = e.GetType().Name;
                    }

                    lock (log)
                        log.Add((clock.ElapsedMilliseconds, outcome));
                    if (!outcome.StartsWith("svc/", StringComparison.Ordinal))
                        await Task.Yield();
                }
            });

            var oldPort = first.ServicePort;
            if (how.StartsWith("graceful", StringComparison.Ordinal))
                await first.StopAsync();
            else
                await first.KillAsync();
            var downAt = clock.ElapsedMilliseconds;

            var joined = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            string? secondInstance = null;
            caller.Peers.Joined += (_, p) =>
            {
                if (p.Name == "svc" && p.InstanceId == Volatile.Read(ref secondInstance))
                    joined.TrySetResult();
            };
            second = how.EndsWith("same port", StringComparison.Ordinal)
                ? await HostProcess.StartAsync("svc", port, servicePort: oldPort)
                : await HostProcess.StartAsync("svc", port);
            Volatile.Write(ref secondInstance, second.InstanceId);
            if (caller.Peers.TryGet("svc", out var current) && current.InstanceId == second.InstanceId)
                joined.TrySetResult();
            await joined.Task.Within();
            var joinedAt = clock.ElapsedMilliseconds;

            // Let the loop make calls to the new instance, then stop it.
            var secondAnswer = $"svc/{second.InstanceId}";
            var answeredByNew = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _ = Task.Run(async () =>
            {
                while (!answeredByNew.Task.IsCompleted)
                {
                    lock (log)
                    {
                        if (log.Count(l => l.At > joinedAt && l.Outcome == secondAnswer) >= 20)
                            answeredByNew.TrySetResult();
                    }

                    await Task.Yield();
                }
            });
            await answeredByNew.Task.Within();
            await stop.CancelAsync();
            await loop.Within();

            List<(long At, string Outcome)> snapshot;
            lock (log)
                snapshot = [.. log];
            var staleAfterJoin = snapshot.Count(l => l.At > joinedAt && l.Outcome == firstAnswer);
            // 500 ms margins (not 50): a call's time is taken when its continuation runs, which a loaded 2-core machine can
            // delay by hundreds of milliseconds; a stale route would keep failing or answering for seconds (issue 17).
            var staleAfterDown = snapshot.Count(l => l.At > downAt + 500 && l.Outcome == firstAnswer);
            var failedAfterJoin = snapshot.Where(l => l.At > joinedAt + 500 && !l.Outcome.StartsWith("svc/", StringComparison.Ordinal)).ToList();
            var errors = snapshot.Where(l => !l.Outcome.StartsWith("svc/", StringComparison.Ordinal)).GroupBy(l => l.Outcome).Select(g => $"{g.Count()} {g.Key}");
            output.WriteLine($"F5 {how}: {snapshot.Count} calls; old instance down at {downAt} ms, new instance (port {second.ServicePort}, old {oldPort}) joined at {joinedAt} ms; "
                + $"answers from the old instance after the new one joined: {staleAfterJoin}; calls failed in the gap: {string.Join(", ", errors)}; failures after the join: {failedAfterJoin.Count}");
            Assert.Equal(0, staleAfterJoin);
            Assert.Empty(failedAfterJoin);
            Assert.Equal(0, staleAfterDown);
        }
        finally
        {
            await first.DisposeAsync();
            if (second is not null)
                await second.DisposeAsync();
        }
    }

    [Fact]
    public async Task F6_reset_by_the_network_fails_pending_calls_and_cancels_handlers_instead_of_hanging()
    {
        var port = Net.FreeUdpPort();
        await using var caller = await Net.StartAsync(Net.Options("caller", port, requestTimeout: TimeSpan.FromSeconds(1)));

        // (a) The callee's side of the connection is reset (a peer behind a dropped path, or a crashed host).
        using var fake = await FakePeer.StartAsync("fake", port);
        await caller.Peers.WaitForAsync("fake").Within();
        var calls = Enumerable.Range(0, 10).Select(i => caller.RequestAsync("fake", "anything", Net.Kw("i", i))).ToList();
        var connection = await fake.AcceptWithHelloAsync();
        for (var i = 0; i < calls.Count; i++)
            Assert.NotNull(await connection.ReadFrameAsync());
        var clock = Stopwatch.StartNew();
        connection.Reset();
        foreach (var call in calls)
            await Assert.ThrowsAsync<PeerConnectionException>(() => call.Within());
        var callerFailedAfter = clock.ElapsedMilliseconds;

        // (b) A black hole: the connection stays up but nothing comes back. The request timeout ends the wait.
        var silent = caller.RequestAsync("fake", "anything");
        using var second = await fake.AcceptWithHelloAsync();
        Assert.NotNull(await second.ReadFrameAsync());
        clock.Restart();
        var blackHoleAfter = (long)(await Patience.AssertRequestTimeoutAsync(silent, "anything", TimeSpan.FromSeconds(1))).TotalMilliseconds;

        // (c) The caller's side is reset while its requests run: every handler's token fires, the node keeps serving.
        await using var server = await Net.StartAsync("server", port);
        server.Register("echo", kwargs => kwargs.GetValueOrDefault("value"));
        var running = 0;
        var allRunning = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var cancelledCount = 0;
        var allCancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        server.Register("block", async (_, ct) =>
        {
            using var registration = ct.Register(() =>
            {
                if (Interlocked.Increment(ref cancelledCount) == 5)
                    allCancelled.TrySetResult();
            });
            if (Interlocked.Increment(ref running) == 5)
                allRunning.TrySetResult();
            await Task.Delay(Timeout.Infinite, ct);
            return null;
        });
        var raw = await RawPeer.ConnectWithHelloAsync(server.ServiceEndPoint);
        for (uint id = 1; id <= 5; id++)
            await raw.SendFrameAsync(RawPeer.Request(id, "block", Net.Pack(b => b.Map(0))));
        await allRunning.Task.Within();
        clock.Restart();
        raw.Reset();
        await allCancelled.Task.Within();
        var handlersCancelledAfter = clock.ElapsedMilliseconds;
        // A reset is seen at once on both sides; 2 s is generous on a loaded machine and below any reaper or timeout.
        Assert.InRange(callerFailedAfter, 0, 2000);
        Assert.InRange(handlersCancelledAfter, 0, 2000);
        await caller.Peers.WaitForAsync("server").Within();
        await Net.AssertServesAsync(caller, "server");

        output.WriteLine($"F6 callee side reset with 10 calls pending: all failed with PeerConnectionException {callerFailedAfter} ms after the reset");
        output.WriteLine($"F6 black hole (connection up, no replies): TimeoutException after {blackHoleAfter} ms (RequestTimeout 1000 ms)");
        output.WriteLine($"F6 caller side reset with 5 handlers running: all 5 handler tokens fired {handlersCancelledAfter} ms after the reset; node kept serving");
    }
}
