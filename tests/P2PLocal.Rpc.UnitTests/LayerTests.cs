using System.Buffers;
using System.Net;
using System.Text;
using MessagePack;
using P2PLocal.Rpc.Discovery;
using P2PLocal.Rpc.Dispatch;

namespace P2PLocal.Rpc.UnitTests;

public class BeaconTests
{
    [Fact]
    public void Beacon_round_trips_and_starts_with_the_python_fields()
    {
        var beacon = new Beacon("itecnet", "bob", new IPEndPoint(IPAddress.Parse("192.168.1.20"), 4000), BeaconKind.Hello,
            "abc123", TimeSpan.FromSeconds(3), DateTimeOffset.FromUnixTimeMilliseconds(1_795_000_000_000));

        var bytes = beacon.ToBytes();
        var text = Encoding.UTF8.GetString(bytes);

        Assert.StartsWith("itecnet|bob|192.168.1.20:4000|", text);
        Assert.True(Beacon.TryParse(bytes, out var parsed));
        Assert.Equal(beacon, parsed);
    }

    [Theory]
    [InlineData("itecnet|pybob|127.0.1.1:8000", "pybob", 8000)]
    [InlineData("itecnet|pybob|10.0.0.5:8000|some|future|fields", "pybob", 8000)]
    public void Three_field_beacons_are_legacy(string text, string name, int port)
    {
        Assert.True(Beacon.TryParse(Encoding.UTF8.GetBytes(text), out var beacon));
        Assert.Equal(BeaconKind.Legacy, beacon!.Kind);
        Assert.Equal(name, beacon.Name);
        Assert.Equal(port, beacon.EndPoint.Port);
    }

    [Theory]
    [InlineData("")]
    [InlineData("itecnet|bob")]
    [InlineData("itecnet||127.0.0.1:1")]
    [InlineData("|bob|127.0.0.1:1")]
    [InlineData("itecnet|bob|127.0.0.1")]
    [InlineData("itecnet|bob|127.0.0.1:0")]
    [InlineData("itecnet|bob|host:80")]
    [InlineData("itecnet|bob|127.0.0.1:1|p2p1|id|dance|1000|1")]
    [InlineData("itecnet|bob|127.0.0.1:1|p2p1||alive|1000|1")]
    [InlineData("itecnet|bob|127.0.0.1:1|p2p1|id|alive|-5|1")]
    [InlineData("itecnet|bob|127.0.0.1:1|p2p1|id|alive|1000|x")]
    public void Malformed_beacons_are_rejected(string text) =>
        Assert.False(Beacon.TryParse(Encoding.UTF8.GetBytes(text), out _));

    [Fact]
    public void Non_utf8_and_oversized_datagrams_are_rejected()
    {
        Assert.False(Beacon.TryParse([0x69, 0x74, 0xff, 0x7c, 0x62, 0x7c], out _));
        Assert.False(Beacon.TryParse(Encoding.UTF8.GetBytes("itecnet|bob|127.0.0.1:1|" + new string('x', 2000)), out _));
    }

    [Fact]
    public void Loopback_advertised_from_a_remote_source_means_the_source_address()
    {
        var remote = new IPEndPoint(IPAddress.Parse("10.1.2.3"), 47474);
        Assert.Equal(new IPEndPoint(IPAddress.Parse("10.1.2.3"), 8000),
            DiscoveryService.EffectiveEndPoint(new IPEndPoint(IPAddress.Parse("127.0.1.1"), 8000), remote));
        Assert.Equal(new IPEndPoint(IPAddress.Parse("10.1.2.3"), 8000),
            DiscoveryService.EffectiveEndPoint(new IPEndPoint(IPAddress.Any, 8000), remote));
        var local = new IPEndPoint(IPAddress.Loopback, 47474);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 8000), DiscoveryService.EffectiveEndPoint(new IPEndPoint(IPAddress.Loopback, 8000), local));
    }
}

public class BeaconTargetTests
{
    private static InterfaceInfo Nic(string name, bool up, bool loopback, params (string Address, string Mask)[] addresses) =>
        new(name, up, loopback, SupportsBroadcast: true, [.. addresses.Select(a => new InterfaceAddress(IPAddress.Parse(a.Address), IPAddress.Parse(a.Mask)))]);

    [Fact]
    public void Lan_scope_beacons_on_every_up_broadcast_interface_with_its_own_address()
    {
        var interfaces = new[]
        {
            Nic("lo", up: true, loopback: true, ("127.0.0.1", "255.0.0.0")),
            Nic("eth0", up: true, loopback: false, ("192.168.1.20", "255.255.255.0")),
            Nic("wlan0", up: true, loopback: false, ("10.0.5.7", "255.255.0.0"), ("10.9.9.9", "255.255.255.255")),
            Nic("eth1", up: false, loopback: false, ("172.16.0.2", "255.255.0.0")),
            Nic("docker0", up: true, loopback: false, ("169.254.3.4", "255.255.0.0")),
        };

        var targets = BeaconTargets.ForLan(interfaces, 5000);

        Assert.Equal(
            [
                new BeaconTarget(new IPEndPoint(IPAddress.Parse("192.168.1.255"), 5000), IPAddress.Parse("192.168.1.20")),
                new BeaconTarget(new IPEndPoint(IPAddress.Parse("10.0.255.255"), 5000), IPAddress.Parse("10.0.5.7")),
            ],
            targets);
        Assert.DoesNotContain(targets, t => IPAddress.IsLoopback(t.Advertised) || t.Destination.Address.Equals(IPAddress.Broadcast));
    }

    [Fact]
    public void Point_to_point_links_have_no_broadcast_address()
    {
        Assert.Null(BeaconTargets.BroadcastOf(IPAddress.Parse("10.0.0.1"), IPAddress.Parse("255.255.255.254")));
        Assert.Equal(IPAddress.Parse("10.0.0.3"), BeaconTargets.BroadcastOf(IPAddress.Parse("10.0.0.1"), IPAddress.Parse("255.255.255.252")));
    }

    [Fact]
    public void Loopback_scope_beacons_only_to_the_loopback_broadcast_address()
    {
        var target = Assert.Single(BeaconTargets.ForLoopback(7000));
        Assert.Equal(new IPEndPoint(IPAddress.Parse("127.255.255.255"), 7000), target.Destination);
        Assert.Equal(IPAddress.Loopback, target.Advertised);
    }
}

public class KwargsCodecTests
{
    private static readonly MessagePackSerializerOptions s_options = MessagePackSerializerOptions.Standard.WithSecurity(MessagePackSecurity.UntrustedData);

    private static byte[] Pack(Action<MessagePackWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(buffer);
        write(writer);
        return buffer.WrittenSpan.ToArray();
    }

    [Fact]
    public void Non_map_kwargs_non_string_keys_and_duplicates_are_invalid()
    {
        var array = Pack(w => { w.WriteArrayHeader(0); w.Flush(); });
        var intKey = Pack(w => { w.WriteMapHeader(1); w.Write(1); w.Write(2); w.Flush(); });
        var duplicate = Pack(w => { w.WriteMapHeader(2); w.Write("a"); w.Write(1); w.Write("a"); w.Write(2); w.Flush(); });

        Assert.Throws<InvalidKwargsException>(() => KwargsCodec.ReadKwargs(array, s_options));
        Assert.Throws<InvalidKwargsException>(() => KwargsCodec.ReadKwargs(intKey, s_options));
        Assert.Contains("twice", Assert.Throws<InvalidKwargsException>(() => KwargsCodec.ReadKwargs(duplicate, s_options)).Message);
    }

    [Fact]
    public void Truncated_and_lying_headers_are_invalid_not_crashes()
    {
        var truncated = Pack(w => { w.WriteMapHeader(1); w.Write("a"); w.WriteString("hello"u8); w.Flush(); })[..^2];
        var hugeArray = Pack(w => { w.WriteMapHeader(1); w.Write("a"); w.WriteArrayHeader(int.MaxValue); w.Flush(); });

        Assert.Throws<InvalidKwargsException>(() => KwargsCodec.ReadKwargs(truncated, s_options));
        Assert.Throws<InvalidKwargsException>(() => KwargsCodec.ReadKwargs(hugeArray, s_options));
    }

    [Fact]
    public void Nesting_deeper_than_the_security_limit_is_invalid()
    {
        var deep = Pack(w =>
        {
            w.WriteMapHeader(1);
            w.Write("a");
            for (var i = 0; i < 10_000; i++)
                w.WriteArrayHeader(1);
            w.WriteNil();
            w.Flush();
        });

        Assert.Throws<InvalidKwargsException>(() => KwargsCodec.ReadKwargs(deep, s_options));
        // Skipping the same value must not recurse either.
        var reader = new MessagePackReader(deep);
        KwargsCodec.SkipValue(ref reader);
        Assert.True(reader.End);
    }

    [Fact]
    public void Unknown_extension_types_are_invalid()
    {
        var extension = Pack(w => { w.WriteMapHeader(1); w.Write("a"); w.WriteExtensionFormat(new ExtensionResult(42, new byte[] { 1 })); w.Flush(); });
        Assert.Throws<InvalidKwargsException>(() => KwargsCodec.ReadKwargs(extension, s_options));
    }
}
