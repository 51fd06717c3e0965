using System.Net;
using System.Text;
using System.Text.Json;
using P2PLocal.Rpc.Cli.Commands;
using P2PLocal.Rpc.Cli.Doctor;
using P2PLocal.Rpc.Cli.Output;

namespace P2PLocal.Rpc.Cli.Tests;

public class BeaconMessageTests
{
    private static bool Decode(string text, out BeaconMessage? message) => BeaconMessage.TryDecode(Encoding.UTF8.GetBytes(text), out message);

    [Fact]
    public void Field_8_carries_the_library_version_and_older_8_field_beacons_still_decode()
    {
        Assert.True(Decode("itecnet|bob|127.0.0.1:4000|p2p1|abc|alive|3000|1795000000000|1.2.3", out var current));
        Assert.True(Decode("itecnet|bob|127.0.0.1:4000|p2p1|abc|alive|3000|1795000000000", out var older));
        Assert.True(Decode("itecnet|bob|127.0.0.1:4000|p2p1|abc|bye|3000|1795000000000|1.2.3|future|fields", out var newer));

        Assert.Equal("1.2.3", current!.LibraryVersion);
        Assert.Equal(BeaconMessageKind.Alive, current.Kind);
        Assert.Equal("abc", current.InstanceId);
        Assert.Equal(TimeSpan.FromSeconds(3), current.AdvertiseInterval);
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(1_795_000_000_000), current.StartedAt);
        Assert.Null(older!.LibraryVersion);
        Assert.Equal("abc", older.InstanceId);
        Assert.Equal(BeaconMessageKind.Bye, newer!.Kind);
        Assert.Equal("1.2.3", newer.LibraryVersion);
    }

    [Fact]
    public void A_version_too_long_is_ignored_not_fatal()
    {
        Assert.True(Decode("itecnet|bob|127.0.0.1:4000|p2p1|abc|alive|3000|1|" + new string('9', 65), out var message));
        Assert.Null(message!.LibraryVersion);
    }

    [Fact]
    public void Legacy_and_garbage_decode_as_nodes_do()
    {
        Assert.True(Decode("itecnet|pybob|127.0.1.1:8000", out var legacy));
        Assert.True(legacy!.IsLegacy);
        Assert.Equal(BeaconMessageKind.Legacy, legacy.Kind);
        Assert.Equal("", legacy.InstanceId);
        Assert.Null(legacy.LibraryVersion);

        Assert.False(Decode("GET / HTTP/1.1", out var none));
        Assert.Null(none);
        Assert.False(BeaconMessage.TryDecode([0xff, 0xfe], out _));
        Assert.False(BeaconMessage.TryDecode(new byte[BeaconMessage.MaxLength + 1], out _));
    }

    [Fact]
    public void Loopback_routes_go_to_the_loopback_broadcast_address_only()
    {
        var route = Assert.Single(DiscoveryDiagnostics.GetBeaconRoutes(DiscoveryScope.Loopback, 5000));
        Assert.Equal(new IPEndPoint(IPAddress.Parse("127.255.255.255"), 5000), route.Destination);
        Assert.Equal(IPAddress.Loopback, route.Advertised);
        Assert.Throws<ArgumentOutOfRangeException>(() => DiscoveryDiagnostics.GetBeaconRoutes(DiscoveryScope.Loopback, 0));
    }

    [Fact]
    public void Lan_routes_never_use_loopback_or_the_limited_broadcast_address()
    {
        // Reads this machine's interfaces but sends nothing.
        foreach (var route in DiscoveryDiagnostics.GetBeaconRoutes(DiscoveryScope.Lan, 5000))
        {
            Assert.False(IPAddress.IsLoopback(route.Advertised));
            Assert.NotEqual(IPAddress.Broadcast, route.Destination.Address);
        }
    }
}

public class JsonValuesTests
{
    [Theory]
    [InlineData("5", 5L)]
    [InlineData("-7", -7L)]
    [InlineData("2.5", 2.5)]
    [InlineData("true", true)]
    [InlineData("null", null)]
    [InlineData("\"5\"", "5")]
    [InlineData("hello", "hello")]
    [InlineData("{broken", "{broken")]
    [InlineData("", "")]
    public void Arguments_are_json_where_they_parse_and_strings_otherwise(string text, object? expected) =>
        Assert.Equal(expected, JsonValues.ParseArgument(text));

    [Fact]
    public void Results_that_json_cannot_hold_as_such_become_strings()
    {
        var time = new DateTime(2026, 11, 27, 8, 0, 0, DateTimeKind.Utc);
        var node = JsonValues.ToJson(new Dictionary<object, object?>
        {
            ["bytes"] = new byte[] { 1, 2, 3 },
            ["time"] = time,
            ["nan"] = double.NaN,
            [7L] = new object?[] { 1L, null, "x" },
        })!;

        Assert.Equal("""{"bytes":"AQID","time":"2026-11-27T08:00:00.0000000Z","nan":"NaN","7":[1,null,"x"]}""", node.ToJsonString());
    }

    [Fact]
    public void Kwargs_objects_must_be_objects()
    {
        Assert.Equal(2L, JsonValues.ParseObject("""{"a": 2}""")["a"]);
        var error = Assert.Throws<JsonException>(() => JsonValues.ParseObject("[1]"));
        Assert.Contains("must be a JSON object", error.Message);
    }
}

public class CommandLineTests
{
    [Fact]
    public async Task Usage_errors_exit_2_and_name_the_problem()
    {
        var output = new LineWriter();
        var error = new LineWriter();

        var code = await CliApp.RunAsync(["peers", "--scope", "wifi"], new CliConsole(output, error));

        Assert.Equal(2, code);
        Assert.Contains("'wifi'", error.ToString());
        Assert.Contains("p2plocal --help", error.ToString());
    }

    [Fact]
    public async Task Help_lists_every_command_and_sends_nothing()
    {
        var output = new LineWriter();
        var code = await CliApp.RunAsync(["--help"], new CliConsole(output, new LineWriter()));

        Assert.Equal(0, code);
        foreach (var command in new[] { "peers", "methods", "call", "listen", "doctor", "--scope", "--json", "--wait", "--port", "--protocol" })
            Assert.Contains(command, output.ToString());
    }

    [Fact]
    public void Users_get_lan_scope_and_the_default_port_unless_they_say_otherwise()
    {
        var common = new CommonOptions();
        var root = new System.CommandLine.RootCommand();
        foreach (var option in common.All)
            root.Options.Add(option);

        var defaults = common.Read(root.Parse([]), TimeSpan.FromSeconds(2));
        var given = common.Read(root.Parse(["--scope", "loopback", "--wait", "0.5"]), TimeSpan.FromSeconds(2));

        Assert.Equal(DiscoveryScope.Lan, defaults.Scope);
        Assert.Equal(NodeOptions.DefaultDiscoveryPort, defaults.Port);
        Assert.Equal("itecnet", defaults.Protocol);
        Assert.Equal(TimeSpan.FromSeconds(2), defaults.Wait);
        Assert.False(defaults.WaitGiven);
        Assert.Equal(DiscoveryScope.Loopback, given.Scope);
        Assert.Equal(TimeSpan.FromSeconds(0.5), given.Wait);
        Assert.True(given.WaitGiven);
    }

    [Theory]
    [InlineData("a=1", "b=x")]
    public void Key_value_pairs_and_kwargs_json_merge(string first, string second)
    {
        Assert.True(CallCommand.TryReadKwargs("""{"c": [1]}""", [first, second], out var kwargs, out _));
        Assert.Equal(1L, kwargs["a"]);
        Assert.Equal("x", kwargs["b"]);
        Assert.Equal([1L], (object?[])kwargs["c"]!);
        Assert.False(CallCommand.TryReadKwargs("""{"a": 1}""", ["a=2"], out _, out var error));
        Assert.Contains("given twice", error);
    }
}

public class PeerWatchTests
{
    private static PeerJson Peer(string name, string instance) =>
        new(name, "127.0.0.1:1", instance, null, false, DateTimeOffset.UnixEpoch, null, null, null);

    [Fact]
    public void A_restart_is_a_leave_and_a_join_and_marks_fade()
    {
        var watch = new PeerWatch();
        var t0 = DateTimeOffset.UnixEpoch;

        Assert.Equal([(PeerWatch.Joined, Peer("bob", "a"))], watch.Update([Peer("bob", "a")], t0));
        Assert.Empty(watch.Update([Peer("bob", "a")], t0.AddSeconds(1)));
        var restart = watch.Update([Peer("bob", "b")], t0.AddSeconds(2));
        Assert.Equal([(PeerWatch.Joined, Peer("bob", "b")), (PeerWatch.Left, Peer("bob", "a"))], restart);

        Assert.Equal([(PeerWatch.Joined, "b"), (PeerWatch.Left, "a")], watch.Rows(t0.AddSeconds(3)).Select(r => (r.Mark, r.Peer.Instance)));
        Assert.Equal([("", "b")], watch.Rows(t0.AddSeconds(2) + PeerWatch.MarkFor + TimeSpan.FromSeconds(1)).Select(r => (r.Mark, r.Peer.Instance)));
    }
}

public class NetworkChecksTests
{
    private static readonly CommonSettings s_settings = new(5000, "itecnet", DiscoveryScope.Loopback, false, TimeSpan.FromSeconds(1), true);

    private static HeardDatagram Heard(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        BeaconMessage.TryDecode(bytes, out var beacon);
        return new HeardDatagram(DateTimeOffset.UtcNow, new IPEndPoint(IPAddress.Loopback, 5000), bytes, bytes.Length, beacon);
    }

    private static Check Run(string id, params string[] texts) =>
        NetworkChecks.Run([.. texts.Select(Heard)], s_settings, "self", new HashSet<IPAddress>()).Single(c => c.Id == id);

    [Fact]
    public void An_instance_that_said_bye_is_a_restart_not_a_name_conflict()
    {
        var restart = Run(CheckIds.NameConflicts,
            "itecnet|bob|127.0.0.1:1|p2p1|old|alive|3000|1",
            "itecnet|bob|127.0.0.1:1|p2p1|old|bye|3000|1",
            "itecnet|bob|127.0.0.1:2|p2p1|new|hello|3000|2");
        var conflict = Run(CheckIds.NameConflicts,
            "itecnet|bob|127.0.0.1:1|p2p1|old|alive|3000|1",
            "itecnet|bob|127.0.0.1:2|p2p1|new|hello|3000|2");

        Assert.Equal(CheckStatus.Ok, restart.Status);
        Assert.Equal(CheckStatus.Fail, conflict.Status);
    }

    [Fact]
    public void The_tools_own_beacons_are_not_another_node()
    {
        var alone = Run(CheckIds.OthersHeard, "itecnet|p2plocal-1|127.0.0.1:1|p2p1|self|hello|3000|1");
        Assert.Equal(CheckStatus.Fail, alone.Status);
    }

    [Fact]
    public void Same_name_in_two_protocols_is_no_conflict()
    {
        var check = Run(CheckIds.NameConflicts,
            "itecnet|bob|127.0.0.1:1|p2p1|a|alive|3000|1",
            "other|bob|127.0.0.1:2|p2p1|b|alive|3000|1");
        Assert.Equal(CheckStatus.Ok, check.Status);
    }
}

public class LanChecksTests
{
    // Lan scope is never run in tests (nothing may leave loopback); its checks are pure, so they are fed datagrams.
    private static readonly CommonSettings s_lan = new(47474, "itecnet", DiscoveryScope.Lan, false, TimeSpan.FromSeconds(10), false);
    private static readonly IPAddress s_self = IPAddress.Parse("192.168.1.20");

    private static HeardDatagram From(string address, string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        BeaconMessage.TryDecode(bytes, out var beacon);
        return new HeardDatagram(DateTimeOffset.UtcNow, new IPEndPoint(IPAddress.Parse(address), 47474), bytes, bytes.Length, beacon);
    }

    private static List<Check> Run(params HeardDatagram[] heard) => [.. NetworkChecks.Run(heard, s_lan, "self", new HashSet<IPAddress> { s_self })];

    [Fact]
    public void Silence_on_a_lan_points_at_blocked_broadcast_and_seeds()
    {
        var checks = Run();
        var others = checks.Single(c => c.Id == CheckIds.OthersHeard);
        Assert.Equal(CheckStatus.Fail, others.Status);
        Assert.Contains("no beacon from any other node in 10 s: broadcast may be blocked on this network (Wi-Fi client isolation, VPN, container bridge)", others.Summary);
        Assert.Contains("NodeOptions.Seeds", others.Fix);
        Assert.DoesNotContain(checks, c => c.Id == CheckIds.OtherHosts);
    }

    [Fact]
    public void Nodes_heard_only_from_this_host_warn_that_other_hosts_are_silent()
    {
        var local = Run(From("192.168.1.20", "itecnet|bob|192.168.1.20:4000|p2p1|b|alive|3000|1"));
        var remote = Run(From("192.168.1.20", "itecnet|bob|192.168.1.20:4000|p2p1|b|alive|3000|1"), From("192.168.1.31", "itecnet|carol|192.168.1.31:4000|p2p1|c|alive|3000|1"));

        Assert.Equal(CheckStatus.Warn, local.Single(c => c.Id == CheckIds.OtherHosts).Status);
        Assert.Contains("no beacon from any other host", local.Single(c => c.Id == CheckIds.OtherHosts).Summary);
        var ok = remote.Single(c => c.Id == CheckIds.OtherHosts);
        Assert.Equal(CheckStatus.Ok, ok.Status);
        Assert.Contains("192.168.1.31", ok.Summary);
    }
}
