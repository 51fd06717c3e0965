using System.Diagnostics;

namespace P2PLocal.Rpc.Tests;

/// <summary>Counting a process's sockets needs no other test opening sockets at the same time.</summary>
[CollectionDefinition(nameof(SocketCounting), DisableParallelization = true)]
public sealed class SocketCounting;

[Collection(nameof(SocketCounting))]
public class ShutdownTests
{
    [Fact]
    public async Task In_flight_calls_complete_during_shutdown_and_later_calls_fail_cleanly()
    {
        var pair = await NodePair.StartAsync();
        var started = new TaskCompletionSource();
        var finish = new TaskCompletionSource<object?>(TaskCreationOptions.RunContinuationsAsynchronously);
        pair.Bob.Register("work", async (_, ct) => { started.TrySetResult(); return await finish.Task.WaitAsync(ct); });

        var call = pair.Alice.RequestAsync("bob", "work");
        await started.Task.Within();
        var shutdown = pair.Bob.DisposeAsync().AsTask();
        finish.SetResult("finished");

        Assert.Equal("finished", await call.Within());
        await shutdown.Within();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => pair.Bob.RequestAsync("alice", "x"));
        await pair.DisposeAsync();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => pair.Alice.RequestAsync("bob", "x"));
    }

    [Fact]
    public async Task Calls_still_running_after_the_grace_period_fail_and_their_handlers_are_cancelled()
    {
        await using var pair = await NodePair.StartAsync(bobOptions: o => o.With(grace: TimeSpan.FromMilliseconds(100)));
        var started = new TaskCompletionSource();
        var cancelled = new TaskCompletionSource();
        pair.Bob.Register("stuck", async (_, ct) =>
        {
            using var registration = ct.Register(() => cancelled.TrySetResult());
            started.TrySetResult();
            await Task.Delay(Timeout.Infinite, ct);
            return null;
        });

        var call = pair.Alice.RequestAsync("bob", "stuck");
        await started.Task.Within();
        await pair.Bob.DisposeAsync().AsTask().Within();

        await cancelled.Task.Within();
        var error = await Assert.ThrowsAnyAsync<Exception>(() => call.Within());
        Assert.True(error is OperationCanceledException or PeerConnectionException, error.ToString());
    }

    [Fact]
    public async Task Shutdown_fails_waiters_and_is_idempotent()
    {
        var port = TestNetwork.FreeUdpPort();
        var alice = await TestNetwork.StartAsync("alice", port);
        var waiting = alice.Peers.WaitForAsync("nobody");

        alice.Shutdown();
        alice.Shutdown();
        await alice.DisposeAsync();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => waiting.Within());
    }

    [Fact]
    public async Task Nodes_release_every_socket_they_opened()
    {
        // Warm up once so that runtime-internal descriptors (epoll, thread pool) exist before counting.
        await RunPairAsync();
        var before = OpenDescriptors();

        var during = 0;
        for (var i = 0; i < 3; i++)
            during = Math.Max(during, await RunPairAsync());

        Assert.True(during >= before + 6, $"the counter must see the pair's sockets: {before} before, {during} during");
        Assert.Equal(before, OpenDescriptors());

        static async Task<int> RunPairAsync()
        {
            await using var pair = await NodePair.StartAsync();
            pair.Bob.Register("f", _ => 1);
            await pair.Alice.RequestAsync("bob", "f");
            return OpenDescriptors();
        }
    }

    private static int OpenDescriptors() =>
        Directory.GetFiles($"/proc/{Environment.ProcessId}/fd").Count(fd =>
        {
            try
            {
                return new FileInfo(fd).LinkTarget?.StartsWith("socket:", StringComparison.Ordinal) == true;
            }
            catch (IOException)
            {
                return false;
            }
        });
}
