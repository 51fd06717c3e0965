using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace P2PLocal.Rpc.Cli.Tests;

/// <summary>Doctor against staged faults, each on its own loopback port.</summary>
public class DoctorTests
{
    private static Dictionary<string, JsonElement> Checks(CliResult result) =>
        result.Json().GetProperty("checks").EnumerateArray().ToDictionary(c => c.GetProperty("id").GetString()!);

    private static string Status(Dictionary<string, JsonElement> checks, string id) => checks[id].GetProperty("status").GetString()!;

    [Fact]
    public async Task Nobody_else_on_the_port_fails_others_heard_with_a_fix()
    {
        var port = TestNetwork.FreeUdpPort();

        var result = await Cli.RunAsync(port, "doctor", "--json", "--wait", "0.5");

        Assert.Equal(1, result.ExitCode);
        var json = result.Json();
        Assert.False(json.GetProperty("passed").GetBoolean());
        var checks = Checks(result);
        Assert.Equal("ok", Status(checks, "interfaces"));
        Assert.Contains("127.255.255.255", checks["interfaces"].GetProperty("summary").GetString());
        Assert.Equal("ok", Status(checks, "bind"));
        Assert.Equal("ok", Status(checks, "own-beacon"));
        Assert.Equal("fail", Status(checks, "others-heard"));
        Assert.Contains($"DiscoveryPort = {port}", checks["others-heard"].GetProperty("fix").GetString());
        Assert.DoesNotContain("other-hosts", checks.Keys); // loopback scope: there are no other hosts
        Assert.Equal(["ok"], checks.Values.Where(c => c.GetProperty("id").GetString() != "others-heard").Select(c => c.GetProperty("status").GetString()).Distinct());
    }

    [Fact]
    public async Task A_healthy_typed_peer_passes_every_check()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var bob = await TestNetwork.StartAsync("bob", port);
        bob.Register(new Calculator());

        var result = await Cli.RunAsync(port, "doctor", "bob", "--json", "--wait", "1");

        Assert.True(result.ExitCode == 0, result.ToString());
        var checks = Checks(result);
        Assert.All(checks.Values, c => Assert.Equal("ok", c.GetProperty("status").GetString()));
        Assert.Equal(
            ["interfaces", "bind", "own-beacon", "others-heard", "other-protocols", "legacy-nodes", "undecodable", "name-conflicts",
             "peer-seen", "peer-tcp", "peer-hello", "peer-functions", "peer-rtt", "peer-contracts"],
            checks.Keys);
        Assert.Contains(bob.InstanceId, checks["peer-seen"].GetProperty("summary").GetString());
        Assert.Contains("Add, Describe", checks["peer-functions"].GetProperty("summary").GetString());
        Assert.Matches("fingerprint [0-9a-f]{16} \\(Add, Describe\\)", checks["peer-contracts"].GetProperty("summary").GetString());
        Assert.Equal("bob", result.Json().GetProperty("peer").GetString());
    }

    [Fact]
    public async Task Two_live_nodes_of_one_name_fail_name_conflicts()
    {
        var port = TestNetwork.FreeUdpPort();
        var interval = TimeSpan.FromMilliseconds(200);
        await using var first = await TestNetwork.StartAsync("twin", port, interval);
        // Starting under a live node's name fails by default (NodeStartTests); this test needs the two running.
        await using var second = await Node.StartAsync(new NodeOptions
        {
            Name = "twin", DiscoveryPort = port, Scope = DiscoveryScope.Loopback, AdvertiseInterval = interval, AllowDuplicateName = true,
        });

        var result = await Cli.RunAsync(port, "doctor", "--json", "--wait", "1");

        Assert.Equal(1, result.ExitCode);
        var conflict = Checks(result)["name-conflicts"];
        Assert.Equal("fail", conflict.GetProperty("status").GetString());
        var summary = conflict.GetProperty("summary").GetString();
        Assert.Contains("'twin'", summary);
        Assert.Contains(first.InstanceId, summary);
        Assert.Contains(second.InstanceId, summary);
        Assert.Contains("NodeOptions.Name", conflict.GetProperty("fix").GetString());
    }

    [Fact]
    public async Task A_legacy_beacon_is_a_warning_and_not_a_failure()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var legacy = new BeaconStager(port, "itecnet|pybob|127.0.0.1:8000");

        var result = await Cli.RunAsync(port, "doctor", "--json", "--wait", "1");

        Assert.True(result.ExitCode == 0, result.ToString());
        var checks = Checks(result);
        Assert.Equal("warn", Status(checks, "legacy-nodes"));
        Assert.Contains("'pybob' at 127.0.0.1:8000", checks["legacy-nodes"].GetProperty("summary").GetString());
        Assert.Equal("ok", Status(checks, "others-heard"));
        Assert.True(result.Json().GetProperty("passed").GetBoolean());
    }

    [Fact]
    public async Task A_legacy_peer_by_name_is_seen_but_warned_that_it_takes_no_calls()
    {
        var port = TestNetwork.FreeUdpPort();
        using var listener = new TcpListener(IPAddress.Loopback, 0); // something accepts, as the Python XML-RPC server would
        listener.Start();
        await using var legacy = new BeaconStager(port, $"itecnet|pybob|127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}");

        var result = await Cli.RunAsync(port, "doctor", "pybob", "--json", "--wait", "1");

        var checks = Checks(result);
        Assert.Equal("ok", Status(checks, "peer-seen"));
        Assert.Equal("ok", Status(checks, "peer-tcp"));
        Assert.Equal("warn", Status(checks, "peer-hello"));
        Assert.Contains("XML-RPC", checks["peer-hello"].GetProperty("summary").GetString());
        Assert.DoesNotContain("peer-functions", checks.Keys);
    }

    [Fact]
    public async Task A_peer_whose_tcp_port_is_closed_fails_peer_tcp_and_stops_there()
    {
        var port = TestNetwork.FreeUdpPort();
        var closed = ClosedTcpPort();
        await using var ghost = new BeaconStager(port, $"itecnet|ghost|127.0.0.1:{closed}|p2p1|g1|alive|3000|1");

        var result = await Cli.RunAsync(port, "doctor", "ghost", "--json", "--wait", "1", "--timeout", "2");

        Assert.Equal(1, result.ExitCode);
        var checks = Checks(result);
        Assert.Equal("ok", Status(checks, "peer-seen"));
        Assert.Equal("fail", Status(checks, "peer-tcp"));
        Assert.Contains("connection refused", checks["peer-tcp"].GetProperty("summary").GetString());
        Assert.Contains($"TCP port {closed}", checks["peer-tcp"].GetProperty("fix").GetString());
        Assert.Equal("peer-tcp", checks.Keys.Last());
    }

    [Fact]
    public async Task A_peer_that_accepts_but_never_says_hello_fails_peer_hello()
    {
        var port = TestNetwork.FreeUdpPort();
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        await using var mute = new BeaconStager(port, $"itecnet|mute|127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}|p2p1|m1|alive|3000|1");

        var result = await Cli.RunAsync(port, "doctor", "mute", "--json", "--wait", "1", "--timeout", "0.5");

        Assert.Equal(1, result.ExitCode);
        var checks = Checks(result);
        Assert.Equal("ok", Status(checks, "peer-tcp"));
        Assert.Equal("fail", Status(checks, "peer-hello"));
        Assert.Contains("no hello came back in 0.5 s", checks["peer-hello"].GetProperty("summary").GetString());
    }

    [Fact]
    public async Task A_peer_of_another_protocol_is_found_and_the_protocol_option_named()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var bob = await Cli.StartOtherProtocolAsync("bob", "factory", port);

        var result = await Cli.RunAsync(port, "doctor", "bob", "--json", "--wait", "1");

        Assert.Equal(1, result.ExitCode);
        var checks = Checks(result);
        Assert.Equal("warn", Status(checks, "other-protocols"));
        Assert.Contains("'factory'", checks["other-protocols"].GetProperty("summary").GetString());
        Assert.Equal("fail", Status(checks, "peer-seen"));
        Assert.Contains("--protocol factory", checks["peer-seen"].GetProperty("fix").GetString());

        // With the right protocol the same peer passes.
        var fixedRun = await Cli.RunAsync(port, "doctor", "bob", "--json", "--wait", "0.5", "--protocol", "factory");
        Assert.True(fixedRun.ExitCode == 0, fixedRun.ToString());
    }

    [Fact]
    public async Task Another_program_on_the_port_is_a_warning_that_names_its_source()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var junk = new BeaconStager(port, "M-SEARCH * HTTP/1.1");

        var result = await Cli.RunAsync(port, "doctor", "--wait", "1");

        Assert.Equal(1, result.ExitCode); // nobody else is there either
        Assert.Contains("warn  undecodable", result.Out);
        Assert.Contains("another program uses this port", result.Out);
        Assert.Contains("fix: Give the nodes a port of their own", result.Out);
        Assert.Contains("checks failed.", result.Out);
    }

    [Fact]
    public async Task A_named_peer_never_heard_fails_peer_seen_and_lists_who_was_heard()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var carol = await TestNetwork.StartAsync("carol", port);

        var result = await Cli.RunAsync(port, "doctor", "bobb", "--json", "--wait", "0.5");

        Assert.Equal(1, result.ExitCode);
        var seen = Checks(result)["peer-seen"];
        Assert.Equal("fail", seen.GetProperty("status").GetString());
        Assert.Contains("heard instead: carol", seen.GetProperty("summary").GetString());
    }

    private static int ClosedTcpPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
