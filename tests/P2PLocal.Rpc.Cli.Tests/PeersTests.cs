using System.Diagnostics;
using System.Text.Json;

namespace P2PLocal.Rpc.Cli.Tests;

public class PeersTests
{
    [Fact]
    public async Task Peers_json_lists_each_node_with_instance_version_and_legacy_flag()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var bob = await TestNetwork.StartAsync("bob", port);
        await using var carol = await TestNetwork.StartAsync("carol", port);
        await using var legacy = new BeaconStager(port, "itecnet|pybob|127.0.0.1:8000");

        var result = await Cli.RunAsync(port, "peers", "--json", "--wait", "1.5");

        Assert.True(result.ExitCode == 0, result.ToString());
        var json = result.Json();
        Assert.Equal(1, json.GetProperty("schema").GetInt32());
        Assert.Equal("loopback", json.GetProperty("network").GetProperty("scope").GetString());
        Assert.Equal(port, json.GetProperty("network").GetProperty("port").GetInt32());
        var peers = json.GetProperty("peers").EnumerateArray().ToDictionary(p => p.GetProperty("name").GetString()!);
        Assert.Equal(["bob", "carol", "pybob"], peers.Keys.Order());

        var b = peers["bob"];
        Assert.Equal(bob.InstanceId, b.GetProperty("instance").GetString());
        Assert.Equal(bob.ServiceEndPoint.ToString(), b.GetProperty("endpoint").GetString());
        Assert.Equal(DiscoveryDiagnostics.LibraryVersion, b.GetProperty("libraryVersion").GetString());
        Assert.False(b.GetProperty("legacy").GetBoolean());
        Assert.Equal(3000, b.GetProperty("advertiseIntervalMs").GetInt64());
        Assert.Equal(JsonValueKind.Null, b.GetProperty("peerId").ValueKind);
        Assert.True(b.GetProperty("lastSeen").GetDateTimeOffset() > DateTimeOffset.UtcNow.AddMinutes(-1));

        var py = peers["pybob"];
        Assert.True(py.GetProperty("legacy").GetBoolean());
        Assert.Equal("", py.GetProperty("instance").GetString());
        Assert.Equal(JsonValueKind.Null, py.GetProperty("libraryVersion").ValueKind);
        Assert.Equal(JsonValueKind.Null, py.GetProperty("startedAt").ValueKind);
        Assert.Equal("127.0.0.1:8000", py.GetProperty("endpoint").GetString());
    }

    [Fact]
    public async Task Peers_with_the_network_key_lists_secure_peers_with_their_verified_id()
    {
        var port = TestNetwork.FreeUdpPort();
        using var key = await NetworkKeyFile.CreateAsync();
        await using var bob = await Node.StartAsync(new NodeOptions
        {
            Name = "bob",
            DiscoveryPort = port,
            Scope = DiscoveryScope.Loopback,
            Security = NodeSecurity.SharedKey(key.Key),
        });

        var result = await Cli.RunAsync(port, "peers", "--json", "--wait", "3", "--network-key-file", key.Path);

        Assert.True(result.ExitCode == 0, result.ToString());
        var peers = result.Json().GetProperty("peers").EnumerateArray().ToDictionary(p => p.GetProperty("name").GetString()!);
        Assert.NotNull(bob.PeerId);
        Assert.Equal(bob.PeerId, peers["bob"].GetProperty("peerId").GetString());
    }

    [Fact]
    public async Task Peers_answers_when_the_hello_burst_is_answered_not_after_the_whole_wait()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var bob = await TestNetwork.StartAsync("bob", port);
        var wait = TimeSpan.FromSeconds(15);

        var clock = Stopwatch.StartNew();
        var result = await Cli.RunAsync(port, "peers", "--json", "--wait", wait.TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture));

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Equal("bob", Assert.Single(result.Json().GetProperty("peers").EnumerateArray()).GetProperty("name").GetString());
        // bob beacons only every 3 s on its own; the tool's hello makes it answer at once, and the tool stops listening
        // once answers stop coming (a broken settle would run the full 15 s).
        Assert.True(clock.Elapsed < wait, $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task Peers_table_names_the_columns_and_an_empty_network_says_what_to_do()
    {
        var port = TestNetwork.FreeUdpPort();
        var empty = await Cli.RunAsync(port, "peers", "--wait", "0.5");
        Assert.Equal(0, empty.ExitCode);
        Assert.Contains("No peers heard", empty.Out);
        Assert.Contains("p2plocal doctor", empty.Out);

        await using var bob = await TestNetwork.StartAsync("bob", port);
        var table = await Cli.RunAsync(port, "peers", "--wait", "2");
        Assert.Equal(0, table.ExitCode);
        foreach (var column in new[] { "name", "endpoint", "instance", "version", "legacy", "last seen" })
            Assert.Contains(column, table.Out);
        Assert.Contains(bob.InstanceId, table.Out);
        Assert.Contains(bob.ServiceEndPoint.ToString(), table.Out);
    }

    [Fact]
    public async Task Watch_reports_a_join_and_a_leave_as_json_lines()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var watch = Cli.Start(port, "peers", "--watch", "--json");
        var dave = await TestNetwork.StartAsync("dave", port);
        var instance = dave.InstanceId;
        await watch.WaitForLineAsync(l => l.Contains("\"joined\"", StringComparison.Ordinal) && l.Contains(instance, StringComparison.Ordinal));

        await dave.DisposeAsync(); // its goodbye removes it at once
        await watch.WaitForLineAsync(l => l.Contains("\"left\"", StringComparison.Ordinal) && l.Contains(instance, StringComparison.Ordinal));
        var result = await watch.StopAsync();

        Assert.Equal(0, result.ExitCode);
        var events = result.JsonLines().Where(e => e.GetProperty("peer").GetProperty("instance").GetString() == instance).ToList();
        Assert.Equal(["joined", "left"], events.Select(e => e.GetProperty("event").GetString()));
        Assert.All(events, e => Assert.Equal("dave", e.GetProperty("peer").GetProperty("name").GetString()));
    }

    [Fact]
    public async Task Watch_in_plain_text_marks_joins_and_stops_after_wait()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var erin = await TestNetwork.StartAsync("erin", port);

        var result = await Cli.RunAsync(port, "peers", "--watch", "--wait", "1");

        Assert.Equal(0, result.ExitCode);
        Assert.Contains($"+ erin {erin.ServiceEndPoint} instance {erin.InstanceId}", result.Out);
    }
}
