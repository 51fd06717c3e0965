using P2PLocal.Rpc.TestHost.Contracts;
using Xunit.Abstractions;

namespace P2PLocal.Rpc.Reliability.Tests;

/// <summary>
/// Issue 14: <c>Peers.Any&lt;T&gt;()</c> with a serving node KILLED mid-load (its process, so its connections are cut,
/// not closed with a goodbye). Each server logs every call to a file as it starts, so the test counts where each job
/// ran, the killed process included: no call is lost (each one succeeds or fails with PeerConnectionException), and
/// none runs twice unless its function is idempotent.
/// </summary>
public sealed class AnyPeerKillTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("p2p-any-kill-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_serving_process_killed_mid_load_loses_no_call_and_runs_none_twice_unless_idempotent(bool idempotent)
    {
        var port = Net.FreeUdpPort();
        var (victimLog, survivorLog) = (Path.Combine(_folder, "victim.log"), Path.Combine(_folder, "survivor.log"));
        await using var victim = await HostProcess.StartAsync("victim", port, "jobs", ranFile: victimLog);
        await using var survivor = await HostProcess.StartAsync("survivor", port, "jobs", ranFile: survivorLog);
        await using var caller = await Net.StartAsync("caller", port);
        await caller.Peers.WaitForAsync("victim").Within();
        await caller.Peers.WaitForAsync("survivor").Within();
        await BothServeAsync().Within();   // READY comes after the hosts registered the contract: normally at once

        var jobs = caller.Peers.Any<IKillableJobs>();
        const int Workers = 8, PerWorker = 80;
        var started = 0;
        var midLoad = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var load = FailoverLoad.RunAsync(Workers, PerWorker, job => idempotent ? jobs.LookAsync(job) : jobs.RunAsync(job),
            starting: _ =>
            {
                if (Interlocked.Increment(ref started) == Workers * PerWorker / 3)
                    midLoad.TrySetResult();
            });
        await midLoad.Task.Within();
        await victim.KillAsync();
        var results = await load.Within();

        var (onVictim, onSurvivor) = (Ran(victimLog), Ran(survivorLog));
        Assert.True(onVictim.Count > 0, "the victim served part of the load before it was killed");
        var failed = FailoverLoad.AssertNoneLostNoneRunTwice(results, Workers * PerWorker, "victim", onVictim, onSurvivor, idempotent, Workers);
        output.WriteLine($"any-kill idempotent={idempotent}: {onVictim.Count} jobs ran on the victim, {onSurvivor.Count} on the survivor, " +
                         $"{failed} failed with PeerConnectionException, {results.Length - failed} succeeded");

        async Task BothServeAsync()
        {
            while ((await caller.Peers.ServingAsync<IKillableJobs>()).Count < 2)
                await Task.Delay(50);
        }
    }

    /// <summary>How often each job ran, from a server's log of "run N" / "look N" lines.</summary>
    private static Dictionary<int, int> Ran(string log)
    {
        var counts = new Dictionary<int, int>();
        if (!File.Exists(log))
            return counts;
        foreach (var line in File.ReadAllLines(log))
        {
            if (line.Split(' ') is [_, var number] && int.TryParse(number, System.Globalization.CultureInfo.InvariantCulture, out var job))
                counts[job] = counts.GetValueOrDefault(job) + 1;
        }

        return counts;
    }
}
