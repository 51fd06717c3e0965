using MessagePack;

namespace P2PLocal.Rpc.Reliability.Tests;

/// <summary>B3, the other direction: a peer that answers calls with malformed replies. The caller gets a P2PException.</summary>
public class HostileReplyTests(ITestOutputHelper output)
{
    public static TheoryData<string> Replies =>
    [
        "error whose message claims a 4 GB string",
        "error whose code is a string",
        "error of 3 elements",
        "result whose value is truncated",
        "reply that is not an array",
        "reply with an unknown kind",
        "reply for an id never sent, then the real one",
    ];

    [Theory]
    [MemberData(nameof(Replies))]
    public async Task B3_malformed_reply_from_a_hostile_peer_fails_the_call_with_a_P2PException(string reply)
    {
        var port = Net.FreeUdpPort();
        await using var caller = await Net.StartAsync("caller", port);
        using var fake = await FakePeer.StartAsync("hostile", port);
        await caller.Peers.WaitForAsync("hostile").Within();
        var call = caller.RequestAsync("hostile", "anything");
        using var connection = await fake.AcceptWithHelloAsync();
        var request = await connection.ReadFrameAsync();
        var id = RawPeer.Describe(request!).Id;

        byte[] payload = reply switch
        {
            "error whose message claims a 4 GB string" => [.. Net.Pack(b => b.Array(5).Number(2).Number(id).Number(1).Str("X")), 0xDB, 0xF0, 0x00, 0x00, 0x00, 0x41],
            "error whose code is a string" => Net.Pack(b => b.Array(5).Number(2).Number(id).Str("one").Str("X").Str("m")),
            "error of 3 elements" => Net.Pack(b => b.Array(3).Number(2).Number(id).Number(1)),
            "result whose value is truncated" => [.. Net.Pack(b => b.Array(3).Number(1).Number(id)), 0x92, 0x01],
            "reply that is not an array" => [0x2A],
            "reply with an unknown kind" => Net.Pack(b => b.Array(2).Number(9).Number(id)),
            "reply for an id never sent, then the real one" => Net.Pack(b => b.Array(3).Number(1).Number(id + 1000).Str("stray")),
            _ => throw new ArgumentOutOfRangeException(nameof(reply)),
        };
        await connection.SendFrameAsync(payload);
        if (reply.EndsWith("then the real one", StringComparison.Ordinal))
        {
            await connection.SendFrameAsync(Net.Pack(b => b.Array(3).Number(1).Number(id).Str("real")));
            Assert.Equal("real", await call.Within());
            output.WriteLine($"B3 reply {reply}: stray reply dropped, the call got its own");
            return;
        }

        var e = await Assert.ThrowsAnyAsync<Exception>(() => call.Within());
        output.WriteLine($"B3 reply {reply}: caller got {e.GetType().Name}: {e.Message}");
        Assert.IsAssignableFrom<P2PException>(e);
    }
}
