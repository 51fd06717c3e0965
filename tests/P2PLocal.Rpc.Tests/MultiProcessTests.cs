using System.Diagnostics;

namespace P2PLocal.Rpc.Tests;

public class MultiProcessTests
{
    /// <summary>The sample app, built beside the tests (see the project reference).</summary>
    private static string SampleDll => Path.Combine(AppContext.BaseDirectory, "P2PLocal.Rpc.Sample.dll");

    [Fact]
    public async Task Nodes_in_two_processes_find_and_call_each_other()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var alice = await TestNetwork.StartAsync("alice", port);
        alice.Register("double", kwargs => (long)kwargs["x"]! * 2);
        var remoteName = $"remote-{Environment.ProcessId}";
        using var remote = Process.Start(new ProcessStartInfo("dotnet", [SampleDll, "serve", remoteName, port.ToString(System.Globalization.CultureInfo.InvariantCulture)])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        })!;
        try
        {
            var ready = await remote.StandardOutput.ReadLineAsync().Within();
            Assert.StartsWith("READY ", ready);

            var peer = await alice.Peers.WaitForAsync(remoteName).Within();
            Assert.Equal(ready!.Split(' ')[2], peer.InstanceId);
            Assert.Equal("Hello, Ann!", await alice.RequestAsync(remoteName, "greet", new Dictionary<string, object?> { ["name"] = "Ann" }).Within());
            var whoami = (Dictionary<string, object?>)(await alice.RequestAsync(remoteName, "whoami").Within())!;
            Assert.Equal((long)remote.Id, whoami["pid"]);
            Assert.NotEqual((long)Environment.ProcessId, whoami["pid"]);

            // Closing its input makes the remote node leave with a goodbye.
            var left = new TaskCompletionSource();
            alice.Peers.Left += (_, p) => { if (p.Name == remoteName) left.TrySetResult(); };
            var clock = Stopwatch.StartNew();
            remote.StandardInput.Close();
            await left.Task.Within();
            // The goodbye, not expiry: the peer is gone well before one beacon interval, let alone the 3.5 intervals
            // after which a silent peer expires (issue 17: without this bound the test passed with the goodbye removed).
            Assert.InRange(clock.Elapsed, TimeSpan.Zero, peer.AdvertiseInterval);
            await remote.WaitForExitAsync().Within();
            Assert.Equal(0, remote.ExitCode);
        }
        finally
        {
            if (!remote.HasExited)
                remote.Kill(entireProcessTree: true);
        }
    }
}
