using System.Net;
using System.Text;
using P2PLocal.Rpc.Discovery;

namespace P2PLocal.Rpc.UnitTests;

/// <summary>The beacon text of PROTOCOL.md, its bounds, and where beacons go; no socket is opened.</summary>
public class BeaconFormatTests
{
    private static readonly DateTimeOffset s_started = DateTimeOffset.FromUnixTimeMilliseconds(1_795_000_000_000);

    private static bool Parse(string text, out Beacon? beacon) => Beacon.TryParse(Encoding.UTF8.GetBytes(text), out beacon);

    private static Beacon ParseValid(string text)
    {
        Assert.True(Parse(text, out var beacon), text);
        return beacon!;
    }

    [Theory]
    [InlineData(nameof(BeaconKind.Hello), "hello")]
    [InlineData(nameof(BeaconKind.Alive), "alive")]
    [InlineData(nameof(BeaconKind.Bye), "bye")]
    [InlineData(nameof(BeaconKind.Legacy), "alive")]
    public void A_beacon_is_written_as_nine_fields(string kind, string word)
    {
        var beacon = new Beacon("itecnet", "bob", new IPEndPoint(IPAddress.Parse("10.0.0.2"), 4000), Enum.Parse<BeaconKind>(kind),
            "abc", TimeSpan.FromMilliseconds(2500), s_started) { LibraryVersion = "1.2.3" };

        Assert.Equal($"itecnet|bob|10.0.0.2:4000|p2p1|abc|{word}|2500|1795000000000|1.2.3", Encoding.UTF8.GetString(beacon.ToBytes()));
    }

    [Fact]
    public void Without_a_library_version_a_beacon_has_eight_fields_and_IPv6_endpoints_are_bracketed()
    {
        var beacon = new Beacon("p", "n", new IPEndPoint(IPAddress.IPv6Loopback, 80), BeaconKind.Alive, "i", TimeSpan.FromSeconds(1), s_started) { LibraryVersion = null };
        var text = Encoding.UTF8.GetString(beacon.ToBytes());
        Assert.Equal("p|n|[::1]:80|p2p1|i|alive|1000|1795000000000", text);
        Assert.Equal(beacon, ParseValid(text));
    }

    [Fact]
    public void Beacons_carry_this_library_version_by_default()
    {
        var beacon = new Beacon("p", "n", new IPEndPoint(IPAddress.Loopback, 80), BeaconKind.Alive);
        Assert.Equal(DiscoveryDiagnostics.LibraryVersion, beacon.LibraryVersion);
        Assert.EndsWith("|" + DiscoveryDiagnostics.LibraryVersion, Encoding.UTF8.GetString(beacon.ToBytes()), StringComparison.Ordinal);
    }

    [Fact]
    public void Every_field_is_read_back()
    {
        var beacon = ParseValid("itecnet|bob|10.0.0.2:4000|p2p1|abc|bye|2500|1795000000000|1.2.3");
        Assert.Equal(new Beacon("itecnet", "bob", new IPEndPoint(IPAddress.Parse("10.0.0.2"), 4000), BeaconKind.Bye, "abc",
            TimeSpan.FromMilliseconds(2500), s_started) { LibraryVersion = "1.2.3" }, beacon);
        Assert.Equal(BeaconKind.Hello, ParseValid("a|b|10.0.0.2:1|p2p1|i|hello|1|0").Kind);
        Assert.Equal(BeaconKind.Alive, ParseValid("a|b|10.0.0.2:1|p2p1|i|alive|1|0").Kind);
    }

    [Theory]
    [InlineData("itecnet|pybob|10.0.0.5:8000")]
    [InlineData("itecnet|pybob|10.0.0.5:8000|p2p1|i|alive|1000")] // seven fields: not ours
    [InlineData("itecnet|pybob|10.0.0.5:8000|p2p2|i|alive|1000|0")] // another marker
    public void Beacons_without_our_eight_fields_are_legacy_and_have_no_version(string text)
    {
        var beacon = ParseValid(text);
        Assert.Equal(BeaconKind.Legacy, beacon.Kind);
        Assert.Equal("itecnet", beacon.Protocol);
        Assert.Equal("pybob", beacon.Name);
        Assert.Equal(new IPEndPoint(IPAddress.Parse("10.0.0.5"), 8000), beacon.EndPoint);
        Assert.Equal("", beacon.InstanceId);
        Assert.Null(beacon.LibraryVersion);
    }

    [Fact]
    public void Datagrams_up_to_1024_bytes_are_read_and_longer_ones_are_not()
    {
        var head = "itecnet|bob|10.0.0.5:8000|";
        Assert.True(Beacon.TryParse(Encoding.UTF8.GetBytes(head + new string('x', 1024 - head.Length)), out _));
        Assert.False(Beacon.TryParse(Encoding.UTF8.GetBytes(head + new string('x', 1025 - head.Length)), out var beacon));
        Assert.Null(beacon);
        Assert.False(Beacon.TryParse([], out _));
    }

    [Theory]
    [InlineData(1, true)]
    [InlineData(86_400_000, true)]
    [InlineData(0, false)]
    [InlineData(86_400_001, false)]
    public void Intervals_from_1_ms_to_one_day_are_accepted(long intervalMs, bool accepted)
    {
        Assert.Equal(accepted, Parse($"a|b|10.0.0.2:1|p2p1|i|alive|{intervalMs}|0", out var beacon));
        if (accepted)
            Assert.Equal(TimeSpan.FromMilliseconds(intervalMs), beacon!.Interval);
    }

    [Fact]
    public void Start_times_up_to_the_last_representable_millisecond_are_accepted()
    {
        var max = DateTimeOffset.MaxValue.ToUnixTimeMilliseconds();
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(max), ParseValid($"a|b|10.0.0.2:1|p2p1|i|alive|5|{max}").StartedAt);
        Assert.False(Parse($"a|b|10.0.0.2:1|p2p1|i|alive|5|{max + 1}", out _));
        Assert.False(Parse("a|b|10.0.0.2:1|p2p1|i|alive|+5|0", out _)); // digits only
        Assert.False(Parse("a|b|10.0.0.2:1|p2p1|i|alive|5|-1", out _));
        Assert.False(Parse("a|b|10.0.0.2:1|p2p1|i|alive|5| 1", out _));
    }

    [Fact]
    public void Instance_ids_of_1_to_64_characters_are_accepted()
    {
        Assert.Equal(new string('i', 64), ParseValid($"a|b|10.0.0.2:1|p2p1|{new string('i', 64)}|alive|5|0").InstanceId);
        Assert.False(Parse($"a|b|10.0.0.2:1|p2p1|{new string('i', 65)}|alive|5|0", out _));
        Assert.False(Parse("a|b|10.0.0.2:1|p2p1||alive|5|0", out _));
    }

    [Fact]
    public void A_library_version_that_is_empty_or_over_64_characters_is_ignored()
    {
        Assert.Null(ParseValid("a|b|10.0.0.2:1|p2p1|i|alive|5|0|").LibraryVersion);
        Assert.Null(ParseValid("a|b|10.0.0.2:1|p2p1|i|alive|5|0").LibraryVersion);
        Assert.Equal(new string('v', 64), ParseValid($"a|b|10.0.0.2:1|p2p1|i|alive|5|0|{new string('v', 64)}").LibraryVersion);
        Assert.Null(ParseValid($"a|b|10.0.0.2:1|p2p1|i|alive|5|0|{new string('v', 65)}").LibraryVersion);
        Assert.Equal("x", ParseValid("a|b|10.0.0.2:1|p2p1|i|alive|5|0|x|future").LibraryVersion);
    }

    [Fact]
    public void A_name_that_fits_is_accepted_and_one_byte_more_is_refused_with_the_room_left()
    {
        var error = Assert.Throws<ArgumentException>(() => Beacon.ThrowIfTooLong("itecnet", new string('n', 2000), "instance", TimeSpan.FromSeconds(1), s_started));
        Assert.Equal("name", error.ParamName);
        var room = int.Parse(System.Text.RegularExpressions.Regex.Match(error.Message, @"may be at most (\d+) bytes").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.StartsWith($"The name '{new string('n', 40)}...' (2000 bytes in UTF-8) makes this node's beacon ", error.Message, StringComparison.Ordinal);
        Assert.Contains($"({room} ASCII characters;", error.Message, StringComparison.Ordinal);

        Beacon.ThrowIfTooLong("itecnet", new string('n', room), "instance", TimeSpan.FromSeconds(1), s_started);
        var oneMore = Assert.Throws<ArgumentException>(() => Beacon.ThrowIfTooLong("itecnet", new string('n', room + 1), "instance", TimeSpan.FromSeconds(1), s_started));
        Assert.Contains("makes this node's beacon 1025 bytes, above the 1024-byte limit", oneMore.Message, StringComparison.Ordinal);

        // The longest beacon is the one written with the widest IPv4 endpoint and the longest kind word.
        var longest = new Beacon("itecnet", new string('n', room), new IPEndPoint(IPAddress.Broadcast, 65535), BeaconKind.Alive, "instance", TimeSpan.FromSeconds(1), s_started);
        Assert.Equal(1024, longest.ToBytes().Length);
    }

    [Fact]
    public void A_short_name_is_quoted_whole_and_multibyte_names_count_their_bytes()
    {
        var error = Assert.Throws<ArgumentException>(() => Beacon.ThrowIfTooLong(new string('p', 1000), "bob", "instance", TimeSpan.FromSeconds(1), s_started));
        Assert.StartsWith("The name 'bob' (3 bytes in UTF-8)", error.Message, StringComparison.Ordinal);
        Assert.Contains("the name may be at most 0 bytes", error.Message, StringComparison.Ordinal);
        var forty = new string('n', 40);
        Assert.StartsWith($"The name '{forty}' (40 bytes", Assert.Throws<ArgumentException>(() => Beacon.ThrowIfTooLong(new string('p', 1000), forty, "i", TimeSpan.FromSeconds(1), s_started)).Message, StringComparison.Ordinal);
        Assert.StartsWith($"The name '{forty}...' (41 bytes", Assert.Throws<ArgumentException>(() => Beacon.ThrowIfTooLong(new string('p', 1000), forty + "n", "i", TimeSpan.FromSeconds(1), s_started)).Message, StringComparison.Ordinal);

        var wide = Assert.Throws<ArgumentException>(() => Beacon.ThrowIfTooLong("itecnet", new string('\u20ac', 400), "instance", TimeSpan.FromSeconds(1), s_started));
        Assert.Contains("(1200 bytes in UTF-8)", wide.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Loopback_or_unspecified_advertised_from_a_remote_source_means_the_source_address()
    {
        var remote = new IPEndPoint(IPAddress.Parse("10.1.2.3"), 47474);
        Assert.Equal(new IPEndPoint(IPAddress.Parse("10.1.2.3"), 8000), DiscoveryService.EffectiveEndPoint(new IPEndPoint(IPAddress.Parse("127.0.1.1"), 8000), remote));
        Assert.Equal(new IPEndPoint(IPAddress.Parse("10.1.2.3"), 8000), DiscoveryService.EffectiveEndPoint(new IPEndPoint(IPAddress.Any, 8000), remote));
        Assert.Equal(new IPEndPoint(IPAddress.Parse("10.9.9.9"), 8000), DiscoveryService.EffectiveEndPoint(new IPEndPoint(IPAddress.Parse("10.9.9.9"), 8000), remote));
        var local = new IPEndPoint(IPAddress.Loopback, 47474);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 8000), DiscoveryService.EffectiveEndPoint(new IPEndPoint(IPAddress.Loopback, 8000), local));
        Assert.Equal(new IPEndPoint(IPAddress.Any, 8000), DiscoveryService.EffectiveEndPoint(new IPEndPoint(IPAddress.Any, 8000), local));
    }
}

public class BeaconTargetRuleTests
{
    private static InterfaceInfo Nic(string name, bool broadcast, params string[] addresses) =>
        new(name, IsUp: true, IsLoopback: false, broadcast, [.. addresses.Select(a => new InterfaceAddress(IPAddress.Parse(a), IPAddress.Parse("255.255.255.0")))]);

    [Fact]
    public void Interfaces_without_broadcast_IPv6_and_loopback_addresses_get_no_target()
    {
        var targets = BeaconTargets.ForLan(
            [
                Nic("ppp0", broadcast: false, "192.168.7.2"),
                new InterfaceInfo("v6", true, false, true, [new InterfaceAddress(IPAddress.Parse("fe80::1"), IPAddress.Parse("255.255.255.0"))]),
                Nic("odd", broadcast: true, "127.0.0.2"),
                Nic("eth0", broadcast: true, "192.168.1.20"),
            ],
            5000);

        var target = Assert.Single(targets);
        Assert.Equal(new BeaconTarget(new IPEndPoint(IPAddress.Parse("192.168.1.255"), 5000), IPAddress.Parse("192.168.1.20")), target);
    }

    [Fact]
    public void Only_169_254_is_link_local_and_a_target_is_listed_once()
    {
        var targets = BeaconTargets.ForLan(
            [
                Nic("a", broadcast: true, "169.1.2.3", "10.254.0.1", "169.254.9.9"),
                Nic("b", broadcast: true, "169.1.2.3"),
            ],
            6000);

        Assert.Equal(
            [
                new BeaconTarget(new IPEndPoint(IPAddress.Parse("169.1.2.255"), 6000), IPAddress.Parse("169.1.2.3")),
                new BeaconTarget(new IPEndPoint(IPAddress.Parse("10.254.0.255"), 6000), IPAddress.Parse("10.254.0.1")),
            ],
            targets);
    }

    [Theory]
    [InlineData("10.0.0.1", "255.255.255.252", "10.0.0.3")]
    [InlineData("10.1.2.3", "255.0.0.0", "10.255.255.255")]
    [InlineData("192.168.5.9", "255.255.254.0", "192.168.5.255")]
    [InlineData("10.0.0.1", "255.255.255.254", null)]
    [InlineData("10.0.0.1", "255.255.255.255", null)]
    public void The_broadcast_address_sets_the_host_bits_and_needs_two_of_them(string address, string mask, string? broadcast) =>
        Assert.Equal(broadcast is null ? null : IPAddress.Parse(broadcast), BeaconTargets.BroadcastOf(IPAddress.Parse(address), IPAddress.Parse(mask)));

    [Fact]
    public void An_IPv6_address_has_no_broadcast_address() =>
        Assert.Null(BeaconTargets.BroadcastOf(IPAddress.IPv6Loopback, IPAddress.Parse("255.255.255.0")));

    [Fact]
    public void This_machine_lists_its_loopback_interface_up_with_127_0_0_1()
    {
        var interfaces = BeaconTargets.SystemInterfaces().ToList();
        var loopback = Assert.Single(interfaces, i => i.IsLoopback);
        Assert.True(loopback.IsUp);
        Assert.Contains(loopback.Addresses, a => a.Address.Equals(IPAddress.Loopback) && a.Mask.Equals(IPAddress.Parse("255.0.0.0")));
        Assert.All(interfaces.SelectMany(i => i.Addresses), a => Assert.Equal(System.Net.Sockets.AddressFamily.InterNetwork, a.Address.AddressFamily));
        Assert.DoesNotContain(BeaconTargets.ForLan(interfaces, 5000), t => IPAddress.IsLoopback(t.Advertised));
    }
}

public class DiscoveryPublicSurfaceTests
{
    [Theory]
    [InlineData("hello", nameof(BeaconMessageKind.Hello))]
    [InlineData("alive", nameof(BeaconMessageKind.Alive))]
    [InlineData("bye", nameof(BeaconMessageKind.Bye))]
    public void A_decoded_beacon_message_carries_every_field(string word, string kind)
    {
        Assert.True(BeaconMessage.TryDecode(Encoding.UTF8.GetBytes($"itecnet|bob|10.0.0.2:4000|p2p1|abc|{word}|2500|1795000000000|1.2.3"), out var message));
        Assert.Equal(
            new BeaconMessage("itecnet", "bob", new IPEndPoint(IPAddress.Parse("10.0.0.2"), 4000), Enum.Parse<BeaconMessageKind>(kind))
            {
                InstanceId = "abc",
                AdvertiseInterval = TimeSpan.FromMilliseconds(2500),
                StartedAt = DateTimeOffset.FromUnixTimeMilliseconds(1_795_000_000_000),
                LibraryVersion = "1.2.3",
            },
            message);
        Assert.False(message.IsLegacy);
    }

    [Fact]
    public void A_three_field_beacon_decodes_as_legacy_and_garbage_does_not_decode()
    {
        Assert.True(BeaconMessage.TryDecode("itecnet|pybob|10.0.0.5:8000"u8, out var legacy));
        Assert.Equal(BeaconMessageKind.Legacy, legacy.Kind);
        Assert.True(legacy.IsLegacy);
        Assert.Equal("", legacy.InstanceId);
        Assert.Null(legacy.LibraryVersion);
        Assert.False(BeaconMessage.TryDecode("garbage"u8, out var none));
        Assert.Null(none);
        Assert.Equal(1024, BeaconMessage.MaxLength);
    }

    [Fact]
    public void Loopback_routes_go_to_the_loopback_broadcast_address_and_ports_are_checked()
    {
        var route = Assert.Single(DiscoveryDiagnostics.GetBeaconRoutes(DiscoveryScope.Loopback, 47900));
        Assert.Equal(new BeaconRoute("lo", IPAddress.Loopback, new IPEndPoint(IPAddress.Parse("127.255.255.255"), 47900)), route);
        Assert.Single(DiscoveryDiagnostics.GetBeaconRoutes(DiscoveryScope.Loopback, 1));
        Assert.Single(DiscoveryDiagnostics.GetBeaconRoutes(DiscoveryScope.Loopback, 65535));
        // Refused up front, naming the argument, in either scope (not by an IPEndPoint made later, or not at all when no
        // interface can broadcast).
        foreach (var scope in new[] { DiscoveryScope.Loopback, DiscoveryScope.Lan })
        {
            foreach (var port in new[] { 0, 65536 })
                Assert.Equal("discoveryPort", Assert.Throws<ArgumentOutOfRangeException>(() => DiscoveryDiagnostics.GetBeaconRoutes(scope, port)).ParamName);
        }
    }

    [Fact]
    public void Lan_routes_are_the_lan_targets_of_each_interface_by_name()
    {
        // Only computed, never sent to: the routes of this machine's interfaces.
        var routes = DiscoveryDiagnostics.GetBeaconRoutes(DiscoveryScope.Lan, 47900);
        var expected = BeaconTargets.SystemInterfaces()
            .SelectMany(nic => BeaconTargets.ForLan([nic], 47900).Select(t => new BeaconRoute(nic.Name, t.Advertised, t.Destination)));
        Assert.Equal(expected, routes);
        Assert.DoesNotContain(routes, r => IPAddress.IsLoopback(r.Advertised) || r.Interface == "lo");
    }

    [Fact]
    public void The_library_version_is_the_informational_version_without_its_build_metadata()
    {
        var informational = typeof(Node).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .Cast<System.Reflection.AssemblyInformationalVersionAttribute>().Single().InformationalVersion;
        Assert.Equal(informational.Split('+')[0], DiscoveryDiagnostics.LibraryVersion);
        Assert.DoesNotContain("+", DiscoveryDiagnostics.LibraryVersion, StringComparison.Ordinal);
    }
}
