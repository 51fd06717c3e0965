using System.Diagnostics;

namespace P2PLocal.Rpc.Reliability.Tests;

/// <summary>
/// A real LAN without leaving the machine: three network namespaces on a private bridge, a node in each in
/// <see cref="DiscoveryScope.Lan"/>, finding each other by real subnet broadcast and calling across. The namespaces
/// are made per run and deleted in a finally; the machine's own interfaces never see a datagram.
/// </summary>
public class LanNamespaceTests(ITestOutputHelper output)
{
    [SkippableFact]
    [Trait("Category", "Lan")]
    public Task Lan_nodes_in_separate_network_namespaces_discover_each_other_by_broadcast_and_call_across() => RunAsync(secure: false);

    /// <summary>The same in secure mode (issue 10): sealed beacons cross the bridge and calls run over TLS 1.3.</summary>
    [SkippableFact]
    [Trait("Category", "Lan")]
    public Task Secure_lan_nodes_in_separate_network_namespaces_discover_each_other_and_call_across() => RunAsync(secure: true);

    private async Task RunAsync(bool secure)
    {
        var why = NetNamespaces.WhyUnavailable();
        Skip.If(why is not null, $"LAN-in-namespaces test skipped: {why}");
        NetNamespaces segment;
        try
        {
            segment = NetNamespaces.Create(3);
        }
        catch (InvalidOperationException e)
        {
            Skip.If(true, $"LAN-in-namespaces test skipped: the kernel refused the namespaces: {e.Message}");
            throw;
        }

        var hosts = new List<HostProcess>();
        string? keyFile = null;
        try
        {
            if (secure)
            {
                keyFile = Path.GetTempFileName();
                File.WriteAllText(keyFile, NodeSecurity.CreateNetworkKey());
            }

            var port = Net.FreeUdpPort();
            var names = new[] { "lan-a", "lan-b", "lan-c" };
            var clock = Stopwatch.StartNew();
            for (var i = 0; i < names.Length; i++)
                hosts.Add(await HostProcess.StartAsync(names[i], port, "echo,whoami", scope: "lan", netns: segment.Hosts[i], networkKeyFile: keyFile));
            var started = clock.ElapsedMilliseconds;

            var seen = new List<string>();
            for (var i = 0; i < names.Length; i++)
            {
                for (var j = 0; j < names.Length; j++)
                {
                    if (i == j)
                        continue;
                    var line = await hosts[i].CommandAsync($"wait {names[j]}", l => l.StartsWith($"SEEN {names[j]} ", StringComparison.Ordinal) || l.StartsWith("ERROR", StringComparison.Ordinal));
                    Assert.StartsWith("SEEN", line, StringComparison.Ordinal);
                    var endPoint = line.Split(' ')[2];
                    // The peer is reached at its own namespace's address: the beacon crossed the bridge.
                    Assert.Equal($"{segment.AddressOf(j)}:{hosts[j].ServicePort}", endPoint);
                    seen.Add($"{names[i]} sees {names[j]} at {endPoint}");
                }
            }

            var discovered = clock.ElapsedMilliseconds;
            var calls = new List<string>();
            for (var i = 0; i < names.Length; i++)
            {
                var target = names[(i + 1) % names.Length];
                var line = await hosts[i].CommandAsync($"call {target} echo across-{i}", l => l.StartsWith("RESULT", StringComparison.Ordinal) || l.StartsWith("ERROR", StringComparison.Ordinal));
                Assert.Equal($"RESULT across-{i}", line);
                var who = await hosts[i].CommandAsync($"call {target} whoami", l => l.StartsWith("RESULT", StringComparison.Ordinal) || l.StartsWith("ERROR", StringComparison.Ordinal));
                Assert.Equal($"RESULT {target}/{hosts[(i + 1) % names.Length].InstanceId}", who);
                calls.Add($"{names[i]} -> {target}: echo and whoami ok");
            }

            output.WriteLine(secure ? "Secure mode (SharedKey): sealed beacons, TLS 1.3 calls" : "Open mode");
            output.WriteLine($"LAN segment {segment.Subnet}.0/24 over a bridge, hosts in namespaces {string.Join(", ", segment.Hosts)}; nodes started in {started} ms");
            foreach (var line in seen)
                output.WriteLine("LAN " + line);
            output.WriteLine($"LAN all 6 directions discovered {discovered} ms after the first start");
            foreach (var line in calls)
                output.WriteLine("LAN " + line);
        }
        finally
        {
            foreach (var host in hosts)
                await host.DisposeAsync();
            segment.Dispose();
            if (keyFile is not null)
                File.Delete(keyFile);
        }
    }
}
