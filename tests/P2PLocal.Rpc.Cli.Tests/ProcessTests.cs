using System.Diagnostics;
using System.Text.Json;

namespace P2PLocal.Rpc.Cli.Tests;

/// <summary>The built tool in its own process, as users run it.</summary>
public class ProcessTests
{
    [Fact]
    public async Task The_built_tool_lists_a_peer_and_calls_it_from_its_own_process()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var bob = await TestNetwork.StartAsync("bob", port);
        bob.Register("echo", kwargs => kwargs["value"]);

        // `peers` stops after 500 ms in which nothing new is heard (by design: a quick answer on a quiet LAN). At load 40
        // on 2 cores the new process's hello and bob's answer can take longer than that, so the tool gets up to 3 tries.
        var peers = await RunToolAsync("peers", "--json", "--scope", "loopback", "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        for (var attempt = 1; attempt < 3 && peers.ExitCode == 0 && !peers.Out.Contains(bob.InstanceId, StringComparison.Ordinal); attempt++)
            peers = await RunToolAsync("peers", "--json", "--scope", "loopback", "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var call = await RunToolAsync("call", "bob", "echo", "value=[1,2]", "--scope", "loopback", "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture));

        Assert.True(peers.ExitCode == 0, peers.ToString());
        var listed = Assert.Single(JsonDocument.Parse(peers.Out).RootElement.GetProperty("peers").EnumerateArray());
        Assert.Equal(bob.InstanceId, listed.GetProperty("instance").GetString());
        Assert.True(call.ExitCode == 0, call.ToString());
        Assert.Equal([1, 2], JsonSerializer.Deserialize<int[]>(call.Out)!);
    }

    private static async Task<CliResult> RunToolAsync(params string[] args)
    {
        var tool = Path.Combine(AppContext.BaseDirectory, "p2plocal.dll");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(tool);
        foreach (var arg in args)
            start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync().Within();
        }
        finally
        {
            if (!process.HasExited)
                process.Kill(entireProcessTree: true);
        }

        return new CliResult(process.ExitCode, await output, await error);
    }
}
