namespace P2PLocal.Rpc.Reliability.Tests;

/// <summary>
/// The request and cancel shapes PROTOCOL.md promises (section "Requests"): what a server answers, and what closes the
/// connection as a bad request. Each case is a line of the spec that a second implementation relies on.
/// </summary>
public class RequestShapeTests(ITestOutputHelper output)
{
    private const int ResultKind = 1;
    private const int ErrorKind = 2;
    private const int Canceled = 5;

    private static readonly byte[] s_echoOk = Net.Pack(b => b.Map(1).Str("value").Str("ok"));

    /// <summary>[0, id, "echo", {"value": "ok"}] followed by <paramref name="extra"/> elements, with the header saying so.</summary>
    private static byte[] EchoRequest(long id, int elements, params byte[] extra) =>
        Net.Pack(b => b.Array(elements).Number(0).Number(id).Str("echo").Raw(s_echoOk).Raw(extra));

    public static TheoryData<string, bool> Shapes => new()
    {
        // name, whether the node answers (false: it closes the connection)
        { "request of 4 elements", true },
        { "request with an extras map", true },
        { "request with an empty extras map", true },
        { "request with an extras map of nested unknown keys", true },
        { "request whose fifth element is not a map", false },
        { "request of 6 elements", false },
        { "cancel with an extra element", false },
        { "cancel followed by stray bytes", false },
        { "cancel of an id that is not running", true },
        { "id 0", true },
        { "id 7 in a uint64 encoding", true },
        { "id 2^32-1", true },
        { "id 2^32", false },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public async Task Request_and_cancel_shapes_are_answered_or_close_the_connection_as_the_spec_says(string name, bool answered)
    {
        var port = Net.FreeUdpPort();
        await using var node = await Net.StartAsync("shapes", port);
        node.Register("echo", kwargs => kwargs.GetValueOrDefault("value"));
        using var raw = await RawPeer.ConnectWithHelloAsync(node.ServiceEndPoint);

        uint expectedId = 7;
        byte[] payload = name switch
        {
            "request of 4 elements" => EchoRequest(7, 4),
            "request with an extras map" => EchoRequest(7, 5, Net.Pack(b => b.Map(1).Str("trace").Str("00-abc-01"))),
            "request with an empty extras map" => EchoRequest(7, 5, 0x80),
            "request with an extras map of nested unknown keys" =>
                EchoRequest(7, 5, Net.Pack(b => b.Map(2).Str("future").Map(1).Str("x").Array(2).Number(1).Number(2).Number(3).Str("y"))),
            "request whose fifth element is not a map" => EchoRequest(7, 5, 0x2A),
            "request of 6 elements" => EchoRequest(7, 6, 0x80, 0x80),
            "cancel with an extra element" => Net.Pack(b => b.Array(3).Number(3).Number(7).Str("why")),
            "cancel followed by stray bytes" => [.. Net.Pack(b => b.Array(2).Number(3).Number(7)), 0x01],
            "cancel of an id that is not running" => Net.Pack(b => b.Array(2).Number(3).Number(99)),
            "id 0" => EchoRequest(expectedId = 0, 4),
            "id 7 in a uint64 encoding" => [0x94, 0x00, 0xCF, 0, 0, 0, 0, 0, 0, 0, 7, .. Net.Pack(b => b.Str("echo")), .. s_echoOk],
            "id 2^32-1" => EchoRequest(expectedId = uint.MaxValue, 4),
            "id 2^32" => EchoRequest(1L << 32, 4),
            _ => throw new ArgumentOutOfRangeException(nameof(name)),
        };
        await raw.SendFrameAsync(payload);

        if (!answered)
        {
            await raw.WaitClosedAsync();
            output.WriteLine($"{name}: connection closed");
            return;
        }

        if (name.StartsWith("cancel", StringComparison.Ordinal))
            await raw.SendFrameAsync(EchoRequest(7, 4)); // nothing answers a cancel: the next request shows the connection lives
        var reply = await raw.ReadFrameAsync();
        Assert.NotNull(reply);
        Assert.Equal((ResultKind, expectedId, 0), RawPeer.Describe(reply));
        output.WriteLine($"{name}: answered with a result for id {expectedId}");
    }

    [Fact]
    public async Task A_cancelled_request_still_gets_exactly_one_reply_and_the_connection_serves_on()
    {
        var port = Net.FreeUdpPort();
        await using var node = await Net.StartAsync("cancel", port);
        node.Register("echo", kwargs => kwargs.GetValueOrDefault("value"));
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        node.Register("wait", async (_, cancellationToken) =>
        {
            started.TrySetResult();
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return null;
        });
        using var raw = await RawPeer.ConnectWithHelloAsync(node.ServiceEndPoint);

        await raw.SendFrameAsync(RawPeer.Request(7, "wait", [0x80]));
        await started.Task.Within();
        await raw.SendFrameAsync(Net.Pack(b => b.Array(2).Number(3).Number(7)));
        await raw.SendFrameAsync(Net.Pack(b => b.Array(2).Number(3).Number(7))); // a second cancel is ignored
        var cancelled = await raw.ReadFrameAsync();
        Assert.Equal((ErrorKind, 7u, Canceled), RawPeer.Describe(cancelled!));

        await raw.SendFrameAsync(EchoRequest(8, 4));
        var reply = await raw.ReadFrameAsync();
        Assert.Equal((ResultKind, 8u, 0), RawPeer.Describe(reply!)); // the next frame is the next reply: no second one for 7
    }

    [Fact]
    public async Task A_request_before_the_hello_closes_the_connection()
    {
        var port = Net.FreeUdpPort();
        await using var node = await Net.StartAsync("nohello", port);
        node.Register("echo", kwargs => kwargs.GetValueOrDefault("value"));
        using var raw = await RawPeer.ConnectAsync(node.ServiceEndPoint);

        await raw.SendFrameAsync(EchoRequest(7, 4));
        // Nothing is served; at most a connection-level error (id 0, bad request) comes before the close.
        if (await raw.ReadFrameAsync() is { } reply)
        {
            Assert.Equal((ErrorKind, 0u, 8), RawPeer.Describe(reply));
            await raw.WaitClosedAsync();
        }
    }

    [Fact]
    public async Task An_id_may_be_reused_as_soon_as_its_reply_arrives()
    {
        // The server used to forget an id only after its reply was written, so a caller reusing it at once could find
        // its connection closed as if it had sent a duplicate of a running request. Many rounds make the window show.
        var port = Net.FreeUdpPort();
        await using var node = await Net.StartAsync("reuse", port);
        node.Register("echo", kwargs => kwargs.GetValueOrDefault("value"));
        using var raw = await RawPeer.ConnectWithHelloAsync(node.ServiceEndPoint);
        const int rounds = 10_000; // before the fix: closed within 500-1200 rounds in 2 runs of 3 at 3000
        for (var i = 0; i < rounds; i++)
        {
            await raw.SendFrameAsync(EchoRequest(1, 4));
            var reply = await raw.ReadFrameAsync();
            Assert.True(reply is not null, $"the node closed the connection when id 1 was reused in round {i}");
            Assert.Equal((ResultKind, 1u), (RawPeer.Describe(reply).Kind, RawPeer.Describe(reply).Id));
        }

        output.WriteLine($"{rounds} rounds reusing id 1 the moment its reply arrived: all answered");
    }

    [Fact]
    public async Task A_caller_at_the_concurrency_limit_is_not_told_busy_for_a_request_sent_after_its_last_reply()
    {
        // A slot is held until its reply is written, and the caller can read that reply before this side sees the write
        // complete: a caller that keeps exactly MaxConcurrentRequestsPerConnection requests running was told busy now
        // and then (seen once in a CI run of ErrorTests). Replies already on their way no longer count against the limit.
        var port = Net.FreeUdpPort();
        await using var node = await Net.StartAsync(Net.Options("limit", port, maxConcurrent: 1));
        node.Register("echo", kwargs => kwargs.GetValueOrDefault("value"));
        using var raw = await RawPeer.ConnectWithHelloAsync(node.ServiceEndPoint);
        const int rounds = 10_000;
        for (var i = 0; i < rounds; i++)
        {
            await raw.SendFrameAsync(EchoRequest(i, 4));
            var reply = await raw.ReadFrameAsync();
            Assert.NotNull(reply);
            var (kind, id, code) = RawPeer.Describe(reply);
            Assert.True(kind == ResultKind, $"round {i}: error code {code} instead of a result (limit 1, nothing else running)");
            Assert.Equal((uint)i, id);
        }

        output.WriteLine($"{rounds} requests, each sent the moment the previous reply arrived, against a limit of 1: all answered");
    }
}
