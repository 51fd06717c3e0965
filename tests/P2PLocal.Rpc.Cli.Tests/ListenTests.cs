using System.Text.Json;

namespace P2PLocal.Rpc.Cli.Tests;

public class ListenTests
{
    private static readonly byte[] s_notUtf8 = [0xff, 0xfe, 0x00, 0x01];

    [Fact]
    public async Task Listen_decodes_every_kind_of_datagram_with_its_source_and_time()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var listen = Cli.Start(port, "listen", "--json");
        await using (new BeaconStager(port, s_notUtf8, "GET / HTTP/1.1"u8.ToArray(), "itecnet|pybob|127.0.0.1:8000"u8.ToArray(), "other|zed|127.0.0.1:9000|p2p1|z1|alive|1000|1"u8.ToArray()))
        {
            // Once a staged datagram shows, the tool is listening: the node's hello cannot be missed.
            await listen.WaitForLineAsync(l => l.Contains("\"undecodable\"", StringComparison.Ordinal));
            await listen.WaitForLineAsync(l => l.Contains("\"zed\"", StringComparison.Ordinal));
            await listen.WaitForLineAsync(l => l.Contains("\"pybob\"", StringComparison.Ordinal));
        }

        var bob = await TestNetwork.StartAsync("bob", port);
        var instance = bob.InstanceId;
        await listen.WaitForLineAsync(l => l.Contains(instance, StringComparison.Ordinal) && l.Contains("\"hello\"", StringComparison.Ordinal));
        await bob.DisposeAsync();
        await listen.WaitForLineAsync(l => l.Contains(instance, StringComparison.Ordinal) && l.Contains("\"bye\"", StringComparison.Ordinal));
        var result = await listen.StopAsync();

        Assert.Equal(0, result.ExitCode);
        var lines = result.JsonLines();
        Assert.All(lines, l => Assert.Equal(1, l.GetProperty("schema").GetInt32()));
        Assert.All(lines, l => Assert.StartsWith("127.", l.GetProperty("source").GetString()));
        Assert.All(lines, l => Assert.True(l.GetProperty("time").GetDateTimeOffset() > DateTimeOffset.UtcNow.AddMinutes(-1)));

        var hello = lines.First(l => l.GetProperty("instance").GetString() == instance);
        Assert.Equal("beacon", hello.GetProperty("decoded").GetString());
        Assert.Equal("hello", hello.GetProperty("kind").GetString());
        Assert.True(hello.GetProperty("ourProtocol").GetBoolean());
        Assert.Equal("bob", hello.GetProperty("name").GetString());
        Assert.Equal(DiscoveryDiagnostics.LibraryVersion, hello.GetProperty("libraryVersion").GetString());
        Assert.StartsWith("itecnet|bob|127.0.0.1:", hello.GetProperty("text").GetString());
        Assert.Equal(["hello", "bye"], lines.Where(l => l.GetProperty("instance").GetString() == instance && l.GetProperty("kind").GetString() != "alive")
            .Select(l => l.GetProperty("kind").GetString()));

        var legacy = lines.First(l => l.GetProperty("name").GetString() == "pybob");
        Assert.Equal("legacy", legacy.GetProperty("decoded").GetString());
        Assert.Equal(JsonValueKind.Null, legacy.GetProperty("instance").ValueKind);

        var foreign = lines.First(l => l.GetProperty("name").GetString() == "zed");
        Assert.Equal("other", foreign.GetProperty("protocol").GetString());
        Assert.False(foreign.GetProperty("ourProtocol").GetBoolean());

        var binary = lines.First(l => l.GetProperty("decoded").GetString() == "undecodable" && l.GetProperty("text").ValueKind == JsonValueKind.Null);
        Assert.Equal(Convert.ToBase64String(s_notUtf8), binary.GetProperty("base64").GetString());
        Assert.Equal(4, binary.GetProperty("length").GetInt32());
        Assert.Contains(lines, l => l.GetProperty("text").GetString() == "GET / HTTP/1.1");
    }

    [Fact]
    public async Task Listen_in_plain_text_says_what_each_datagram_is_and_stops_after_wait()
    {
        var port = TestNetwork.FreeUdpPort();
        await using var stager = new BeaconStager(port, s_notUtf8, "itecnet|pybob|127.0.0.1:8000"u8.ToArray(), "other|zed|127.0.0.1:9000|p2p1|z1|alive|1000|1"u8.ToArray());
        await using var bob = await TestNetwork.StartAsync("bob", port, TimeSpan.FromMilliseconds(100));

        var result = await Cli.RunAsync(port, "listen", "--wait", "1");

        Assert.Equal(0, result.ExitCode);
        Assert.Contains($"Listening on UDP port {port}", result.Out);
        Assert.Contains("undecodable  4 bytes  0xFFFE0001", result.Out);
        Assert.Contains("legacy  itecnet  pybob  127.0.0.1:8000  (Python p2p-local: speaks XML-RPC)", result.Out);
        Assert.Contains("(other protocol other)", result.Out);
        Assert.Contains($"alive  itecnet  bob  {bob.ServiceEndPoint}  instance {bob.InstanceId}", result.Out);
    }
}
