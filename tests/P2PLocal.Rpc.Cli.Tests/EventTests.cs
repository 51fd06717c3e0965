using System.Text.Json;

namespace P2PLocal.Rpc.Cli.Tests;

/// <summary>An event value with the array layout: JSON <c>["EUR", 1.08]</c> reads as one.</summary>
[MessagePack.MessagePackObject]
public sealed record Price([property: MessagePack.Key(0)] string Currency, [property: MessagePack.Key(1)] double Value);

public class EventTests
{
    /// <summary>Completes once <paramref name="node"/> sees the tool's own node (named <c>p2plocal-...</c>).</summary>
    private static async Task<PeerInfo> SeesToolAsync(Node node)
    {
        var seen = new TaskCompletionSource<PeerInfo>(TaskCreationOptions.RunContinuationsAsynchronously);
        void Joined(object? sender, PeerInfo peer)
        {
            if (peer.Name.StartsWith("p2plocal-", StringComparison.Ordinal))
                seen.TrySetResult(peer);
        }

        node.Peers.Joined += Joined;
        try
        {
            if (node.Peers.FirstOrDefault(p => p.Name.StartsWith("p2plocal-", StringComparison.Ordinal)) is { } known)
                return known;
            return await seen.Task.Within();
        }
        finally
        {
            node.Peers.Joined -= Joined;
        }
    }

    [Fact]
    public async Task Publish_reaches_every_subscribed_peer_and_says_how_many_in_json()
    {
        var port = LoopbackPorts.FreeUdpPort();
        await using var bob = await TestNetwork.StartAsync("bob", port);
        await using var carol = await TestNetwork.StartAsync("carol", port);
        var atBob = new TaskCompletionSource<(Price, PeerInfo)>(TaskCreationOptions.RunContinuationsAsynchronously);
        var atCarol = new TaskCompletionSource<Price>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var bobSubscription = bob.Subscribe<Price>("prices", (price, sender) => atBob.TrySetResult((price, sender)));
        using var carolSubscription = carol.Subscribe<Price>("prices", price => atCarol.TrySetResult(price));

        var result = await Cli.RunAsync(port, "publish", "prices", "[\"EUR\", 1.08]", "--json");

        Assert.True(result.ExitCode == 0, result.ToString());
        var json = result.Json();
        Assert.Equal(1, json.GetProperty("schema").GetInt32());
        Assert.True(json.GetProperty("ok").GetBoolean());
        Assert.Equal("prices", json.GetProperty("topic").GetString());
        Assert.Equal("EUR", json.GetProperty("value")[0].GetString());
        Assert.Equal(["bob", "carol"], json.GetProperty("peersSeen").EnumerateArray().Select(p => p.GetString()));
        Assert.Equal((2L, 0L), (json.GetProperty("reached").GetInt64(), json.GetProperty("dropped").GetInt64()));
        var (price, sender) = await atBob.Task.Within();
        Assert.Equal(new Price("EUR", 1.08), price);
        Assert.StartsWith("p2plocal-", sender.Name);
        Assert.Equal(new Price("EUR", 1.08), await atCarol.Task.Within());
    }

    [Fact]
    public async Task Publish_waits_for_the_named_peer_and_reports_in_plain_text()
    {
        var port = LoopbackPorts.FreeUdpPort();
        await using var bob = await TestNetwork.StartAsync("bob", port);
        var got = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var subscription = bob.Subscribe<string>("chat", text => got.TrySetResult(text));

        var result = await Cli.RunAsync(port, "publish", "chat", "hello there", "--wait-for", "bob");

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Equal("topic 'chat': reached 1 peer (of 1 seen: bob).", result.Out.Trim());
        Assert.Equal("hello there", await got.Task.Within());
    }

    [Fact]
    public async Task Publish_counts_only_the_peers_that_subscribe()
    {
        var port = LoopbackPorts.FreeUdpPort();
        await using var bob = await TestNetwork.StartAsync("bob", port);
        await using var carol = await TestNetwork.StartAsync("carol", port);
        var got = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var subscription = bob.Subscribe<int>("prices", value => got.TrySetResult(value));
        using var elsewhere = carol.Subscribe<int>("news", _ => { });

        var result = await Cli.RunAsync(port, "publish", "prices", "7");

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Equal("topic 'prices': reached 1 peer (of 2 seen: bob, carol).", result.Out.Trim());
        Assert.Equal(7, await got.Task.Within());
        Assert.Equal(0, carol.GetEventStatistics().Received);
    }

    [Fact]
    public async Task Publish_that_no_peer_subscribes_to_exits_1_and_says_so()
    {
        var port = LoopbackPorts.FreeUdpPort();
        await using var bob = await TestNetwork.StartAsync("bob", port);
        using var other = bob.Subscribe<int>("other", _ => { });

        var result = await Cli.RunAsync(port, "publish", "prices", "1", "--json");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("no peer subscribes to topic 'prices' (1 seen), so nothing was sent", result.Error);
        var json = result.Json();
        Assert.False(json.GetProperty("ok").GetBoolean());
        Assert.Equal(0, json.GetProperty("reached").GetInt64());
    }

    [Fact]
    public async Task Publish_with_no_peer_or_without_the_named_peer_exits_3()
    {
        var port = LoopbackPorts.FreeUdpPort();

        var nobody = await Cli.RunAsync(port, "publish", "prices", "1", "--wait", "0.3");
        await using var bob = await TestNetwork.StartAsync("bob", port);
        var ghost = await Cli.RunAsync(port, "publish", "prices", "1", "--wait-for", "ghost", "--wait", "0.3");

        Assert.Equal(3, nobody.ExitCode);
        Assert.Contains("no peer was seen in 0.3 s", nobody.Error);
        Assert.Equal(3, ghost.ExitCode);
        Assert.Contains("peer 'ghost' was not seen in 0.3 s", ghost.Error);
        Assert.Equal("", ghost.Out);
    }

    [Fact]
    public async Task Subscribe_json_prints_each_event_with_sender_topic_and_value_until_count()
    {
        var port = LoopbackPorts.FreeUdpPort();
        await using var subscribe = Cli.Start(port, "subscribe", "prices", "news", "--count", "2", "--json");
        await using var bob = await TestNetwork.StartAsync("bob", port);
        await SeesToolAsync(bob);

        await bob.PublishAsync("ignored", 0);
        await bob.PublishAsync("prices", new Price("EUR", 1.08));
        await bob.PublishAsync("news", new Dictionary<string, object?> { ["title"] = "up", ["tags"] = new[] { "a" } });
        var result = await subscribe.WaitForExitAsync();

        Assert.True(result.ExitCode == 0, result.ToString());
        var lines = result.JsonLines();
        Assert.Equal(2, lines.Count);
        Assert.All(lines, l =>
        {
            Assert.Equal(1, l.GetProperty("schema").GetInt32());
            Assert.Equal("bob", l.GetProperty("sender").GetString());
            Assert.Equal(bob.InstanceId, l.GetProperty("instance").GetString());
            Assert.Equal(JsonValueKind.Null, l.GetProperty("peerId").ValueKind);
            Assert.True(l.GetProperty("time").GetDateTimeOffset() > DateTimeOffset.UtcNow.AddMinutes(-1));
        });
        Assert.Equal("prices", lines[0].GetProperty("topic").GetString());
        Assert.Equal("[\"EUR\",1.08]", lines[0].GetProperty("value").GetRawText());
        Assert.Equal("news", lines[1].GetProperty("topic").GetString());
        Assert.Equal("{\"title\":\"up\",\"tags\":[\"a\"]}", lines[1].GetProperty("value").GetRawText());
    }

    [Fact]
    public async Task Subscribe_prints_a_line_per_event_until_Ctrl_C_and_exits_0()
    {
        var port = LoopbackPorts.FreeUdpPort();
        await using var subscribe = Cli.Start(port, "subscribe", "chat");
        await subscribe.WaitForLineAsync(l => l.StartsWith("Subscribed to chat as p2plocal-", StringComparison.Ordinal));
        await using var bob = await TestNetwork.StartAsync("bob", port);
        await SeesToolAsync(bob);

        await bob.PublishAsync("chat", "hi");
        var line = await subscribe.WaitForLineAsync(l => l.Contains("  bob  chat  ", StringComparison.Ordinal));
        var result = await subscribe.StopAsync();

        Assert.Equal(0, result.ExitCode);
        Assert.Matches(@"^\d\d:\d\d:\d\d\.\d{3}  bob  chat  ""hi""$", line);
        Assert.Equal("", result.Error);
    }

    [Fact]
    public async Task Subscribe_shows_the_verified_id_of_a_secure_publisher()
    {
        var port = LoopbackPorts.FreeUdpPort();
        using var key = await NetworkKeyFile.CreateAsync();
        await using var subscribe = Cli.Start(port, "subscribe", "chat", "--count", "1", "--network-key-file", key.Path);
        await using var bob = await Node.StartAsync(new NodeOptions(LoopbackNodes.Options("bob", port)) { Security = NodeSecurity.SharedKey(key.Key) });
        await SeesToolAsync(bob);

        await bob.PublishAsync("chat", 42);
        var result = await subscribe.WaitForExitAsync();

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.NotNull(bob.PeerId);
        Assert.Contains($"  bob (id {bob.PeerId})  chat  42", result.Out);
    }

    [Fact]
    public async Task Publish_from_one_tool_reaches_subscribe_in_another()
    {
        var port = LoopbackPorts.FreeUdpPort();
        await using var subscribe = Cli.Start(port, "subscribe", "chat", "--count", "1", "--json");
        await using var bob = await TestNetwork.StartAsync("bob", port);
        var listener = await SeesToolAsync(bob);

        var publish = await Cli.RunAsync(port, "publish", "chat", "{\"text\": \"hi\"}", "--wait-for", listener.Name, "--json");
        var received = await subscribe.WaitForExitAsync();

        Assert.True(publish.ExitCode == 0, publish.ToString());
        Assert.Equal(1, publish.Json().GetProperty("reached").GetInt64());
        Assert.True(received.ExitCode == 0, received.ToString());
        var line = Assert.Single(received.JsonLines());
        Assert.StartsWith("p2plocal-", line.GetProperty("sender").GetString());
        Assert.NotEqual(listener.Name, line.GetProperty("sender").GetString());
        Assert.Equal("hi", line.GetProperty("value").GetProperty("text").GetString());
    }

    [Fact]
    public async Task Subscribe_with_count_exits_1_when_fewer_events_came_within_the_wait()
    {
        var port = LoopbackPorts.FreeUdpPort();

        var result = await Cli.RunAsync(port, "subscribe", "chat", "--count", "1", "--wait", "0.3");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains("0 of 1 events arrived in 0.3 s (--wait)", result.Error);
    }

    [Theory]
    [InlineData("publish", "", "1")]
    [InlineData("subscribe", "ok", "")]
    [InlineData("subscribe", "chat", "--count=0")]
    [InlineData("publish", "chat", null)]
    public async Task Bad_topics_or_options_exit_2_before_anything_is_sent(string command, string first, string? second)
    {
        var port = LoopbackPorts.FreeUdpPort();
        string[] args = second is null ? [command, first] : [command, first, second];

        var result = await Cli.RunAsync(port, args);

        Assert.Equal(2, result.ExitCode);
        Assert.StartsWith("error: ", result.Error);
        Assert.Equal("", result.Out);
    }

    [Fact]
    public async Task A_topic_longer_than_the_library_allows_exits_2_and_gives_the_limit()
    {
        var port = LoopbackPorts.FreeUdpPort();
        var topic = new string('t', EventOptions.MaxTopicBytes + 1);

        var result = await Cli.RunAsync(port, "subscribe", topic);

        Assert.Equal(2, result.ExitCode);
        Assert.Contains($"is {EventOptions.MaxTopicBytes + 1} UTF-8 bytes; a topic is 1 to {EventOptions.MaxTopicBytes}", result.Error);
    }
}
