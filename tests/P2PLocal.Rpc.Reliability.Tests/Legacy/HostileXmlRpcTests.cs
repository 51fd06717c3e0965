using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace P2PLocal.Rpc.Reliability.Tests.Legacy;

/// <summary>
/// Hostile XML-RPC (issue 13, docs/reliability.md rows X1-X6): what a stranger can send to a node with
/// <see cref="NodeOptions.LegacyInterop"/> on, and the bound that holds. Each test prints its figures.
/// </summary>
public sealed class HostileXmlRpcTests(ITestOutputHelper output)
{
    private static readonly TimeSpan s_handshake = TimeSpan.FromSeconds(1);

    private static async Task<Node> StartVictimAsync(int discoveryPort, int maxIncoming = 1024)
    {
        var node = await Node.StartAsync(Net.Options("victim", discoveryPort, handshakeTimeout: s_handshake, maxIncoming: maxIncoming, legacyInterop: true));
        node.Register("echo", kwargs => kwargs.GetValueOrDefault("value"));
        return node;
    }

    private static byte[] Post(string xml) => Post(Encoding.UTF8.GetBytes(xml));

    private static byte[] Post(byte[] body) =>
        [.. Encoding.ASCII.GetBytes($"POST /RPC2 HTTP/1.0\r\nContent-Type: text/xml\r\nContent-Length: {body.Length}\r\n\r\n"), .. body];

    private static string Call(string value) =>
        $"<?xml version='1.0'?><methodCall><methodName>echo</methodName><params><param><value><struct><member><name>value</name>{value}</member></struct></value></param></params></methodCall>";

    /// <summary>Sends bytes and reads the whole answer until the node closes; returns it with the time it took.</summary>
    private static async Task<(string Answer, TimeSpan Elapsed)> ExchangeAsync(Node node, byte[] request, Func<Socket, Task>? afterSend = null)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, node.ServiceEndPoint.Port));
        var clock = Stopwatch.StartNew();
        if (request.Length > 0)
            await socket.SendAsync(request);
        if (afterSend is not null)
            await afterSend(socket);
        var answer = new MemoryStream();
        var buffer = new byte[64 * 1024];
        try
        {
            int read;
            while ((read = await socket.ReceiveAsync(buffer, SocketFlags.None).Within()) > 0)
                answer.Write(buffer, 0, read);
        }
        catch (SocketException)
        {
            // A reset ends the answer too.
        }

        return (Encoding.UTF8.GetString(answer.ToArray()), clock.Elapsed);
    }

    private static async Task AssertStillServesAsync(Node node)
    {
        var (answer, _) = await ExchangeAsync(node, Post(Call("<value><int>42</int></value>")));
        Assert.Contains("<int>42</int>", answer);
    }

    private static void AssertFault(string answer, int code, string text)
    {
        Assert.StartsWith("HTTP/1.0 200 OK", answer);
        Assert.Contains($"<name>faultCode</name><value><int>{code}</int></value>", answer);
        Assert.Contains(text, answer);
    }

    [Fact]
    public async Task X1_entity_expansion_is_refused_before_any_entity_is_declared()
    {
        await using var node = await StartVictimAsync(Net.FreeUdpPort());
        var laughs = new StringBuilder("<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol \"lol\">");
        for (var i = 1; i <= 9; i++)
            laughs.Append(System.Globalization.CultureInfo.InvariantCulture, $"<!ENTITY lol{i} \"{string.Concat(Enumerable.Repeat(i == 1 ? "&lol;" : $"&lol{i - 1};", 10))}\">");
        laughs.Append("]><methodCall><methodName>echo</methodName><params><param><value><struct><member><name>value</name><value>&lol9;</value></member></struct></value></param></params></methodCall>");
        var before = GC.GetTotalAllocatedBytes(precise: true);
        var (answer, elapsed) = await ExchangeAsync(node, Post(laughs.ToString()));
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        AssertFault(answer, 8, "DTD");
        output.WriteLine($"X1: billion laughs ({laughs.Length} bytes, 10^9 expansions) refused in {elapsed.TotalMilliseconds:F1} ms; {allocated / 1024} KiB allocated in the process meanwhile");
        Assert.True(allocated < 64L * 1024 * 1024, $"{allocated} bytes allocated");
        await AssertStillServesAsync(node);
    }

    [Fact]
    public async Task X2_deep_nesting_is_refused_at_the_serializer_depth_limit()
    {
        await using var node = await StartVictimAsync(Net.FreeUdpPort());
        const int levels = 50_000; // 2.1 MB: under MaxFrameSize, so the parser, not the size limit, must refuse it
        var xml = new StringBuilder();
        for (var i = 0; i < levels; i++)
            xml.Append("<value><array><data>");
        for (var i = 0; i < levels; i++)
            xml.Append("</data></array></value>");
        var (answer, elapsed) = await ExchangeAsync(node, Post(Call(xml.ToString())));
        AssertFault(answer, 8, "nested deeper than");
        output.WriteLine($"X2: {levels} nested arrays ({xml.Length / 1024} KiB) refused in {elapsed.TotalMilliseconds:F1} ms (limit: MessagePackSecurity.MaximumObjectGraphDepth)");
        await AssertStillServesAsync(node);
    }

    [Fact]
    public async Task X3_huge_numbers_are_refused_and_huge_strings_are_bounded_by_MaxFrameSize()
    {
        await using var node = await StartVictimAsync(Net.FreeUdpPort());
        var digits = new string('9', 1_000_000);
        var (intAnswer, intElapsed) = await ExchangeAsync(node, Post(Call($"<value><int>{digits}</int></value>")));
        AssertFault(intAnswer, 8, "is not an integer of at most 64 bits");
        var (doubleAnswer, doubleElapsed) = await ExchangeAsync(node, Post(Call($"<value><double>{digits}</double></value>")));
        AssertFault(doubleAnswer, 8, "is not a double");

        var text = new string('x', 3 * 1024 * 1024);
        var (stringAnswer, stringElapsed) = await ExchangeAsync(node, Post(Call($"<value><string>{text}</string></value>")));
        Assert.Contains(text, stringAnswer); // below MaxFrameSize: served

        var tooLong = Encoding.ASCII.GetBytes($"POST / HTTP/1.0\r\nContent-Length: {NodeOptions.DefaultMaxFrameSize + 1}\r\n\r\n");
        var (tooLongAnswer, tooLongElapsed) = await ExchangeAsync(node, tooLong);
        Assert.StartsWith("HTTP/1.0 413", tooLongAnswer);
        output.WriteLine($"X3: 10^6-digit int refused in {intElapsed.TotalMilliseconds:F1} ms, double in {doubleElapsed.TotalMilliseconds:F1} ms; " +
            $"3 MiB string echoed in {stringElapsed.TotalMilliseconds:F1} ms; Content-Length MaxFrameSize+1 refused (413) in {tooLongElapsed.TotalMilliseconds:F1} ms before any body byte");
        await AssertStillServesAsync(node);
    }

    [Fact]
    public async Task X4_invalid_utf8_is_a_fault()
    {
        await using var node = await StartVictimAsync(Net.FreeUdpPort());
        var body = Encoding.UTF8.GetBytes(Call("<value><string>AB</string></value>"));
        var at = Array.IndexOf(body, (byte)'A');
        body[at] = 0xC3;
        body[at + 1] = 0x28; // a lead byte followed by a non-continuation byte
        var (answer, elapsed) = await ExchangeAsync(node, Post(body));
        AssertFault(answer, 8, "cannot be read");
        output.WriteLine($"X4: invalid UTF-8 refused in {elapsed.TotalMilliseconds:F1} ms");
        await AssertStillServesAsync(node);
    }

    [Fact]
    public async Task X5_chunked_and_lying_Content_Length_bodies_are_refused_or_timed_out()
    {
        await using var node = await StartVictimAsync(Net.FreeUdpPort());
        var (chunked, _) = await ExchangeAsync(node, Encoding.ASCII.GetBytes("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
        Assert.StartsWith("HTTP/1.0 501", chunked);
        var (noLength, _) = await ExchangeAsync(node, Encoding.ASCII.GetBytes("POST / HTTP/1.0\r\n\r\n<methodCall/>"));
        Assert.StartsWith("HTTP/1.0 411", noLength);
        var (twoLengths, _) = await ExchangeAsync(node, Encoding.ASCII.GetBytes("POST / HTTP/1.0\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"));
        Assert.StartsWith("HTTP/1.0 400", twoLengths);

        // Claims 1000 bytes, sends 10, then waits: closed at HandshakeTimeout, which covers the whole request.
        var (lying, elapsed) = await ExchangeAsync(node, Encoding.ASCII.GetBytes("POST / HTTP/1.0\r\nContent-Length: 1000\r\n\r\n<methodCal"));
        Assert.Equal("", lying);
        Assert.InRange(elapsed, s_handshake * 0.8, s_handshake * 3 + TimeSpan.FromSeconds(1));
        output.WriteLine($"X5: chunked -> 501, no length -> 411, two lengths -> 400; a body 990 bytes short closed after {elapsed.TotalMilliseconds:F0} ms (HandshakeTimeout {s_handshake.TotalMilliseconds} ms)");
        await AssertStillServesAsync(node);
    }

    [Fact]
    public async Task X6_header_slowloris_is_closed_at_HandshakeTimeout_and_evicted_when_the_node_is_full()
    {
        var port = Net.FreeUdpPort();
        await using var node = await StartVictimAsync(port, maxIncoming: 4);
        var (_, elapsed) = await ExchangeAsync(node, [], async socket =>
        {
            // One header byte every 100 ms: the head never ends before the deadline.
            foreach (var b in Encoding.ASCII.GetBytes("POST / HTTP/1.0\r\nX-Slow: " + new string('a', 100)))
            {
                try
                {
                    await socket.SendAsync(new[] { b });
                }
                catch (SocketException)
                {
                    return;
                }

                await Task.Delay(100);
                if (socket.Poll(0, SelectMode.SelectRead))
                    return; // closed by the node
            }
        });
        Assert.InRange(elapsed, s_handshake * 0.8, s_handshake * 3 + TimeSpan.FromSeconds(1));

        var (tooBig, _) = await ExchangeAsync(node, Encoding.ASCII.GetBytes("POST / HTTP/1.0\r\nX-Big: " + new string('a', 20 * 1024) + "\r\n\r\n"));
        Assert.StartsWith("HTTP/1.0 431", tooBig);

        // Four connections that started a request and stall fill the node; a framed caller still gets in.
        var squatters = new List<Socket>();
        try
        {
            for (var i = 0; i < 4; i++)
            {
                var squatter = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                squatters.Add(squatter);
                await squatter.ConnectAsync(new IPEndPoint(IPAddress.Loopback, node.ServiceEndPoint.Port));
                await squatter.SendAsync(Encoding.ASCII.GetBytes("POST / HTTP/1.0\r\n"));
            }

            await using var caller = await Node.StartAsync(Net.Options("caller", port));
            await caller.Peers.WaitForAsync("victim").Within();
            var clock = Stopwatch.StartNew();
            Assert.Equal(7L, await caller.RequestAsync("victim", "echo", new Dictionary<string, object?> { ["value"] = 7 }).Within());
            output.WriteLine($"X6: header slowloris closed after {elapsed.TotalMilliseconds:F0} ms (HandshakeTimeout {s_handshake.TotalMilliseconds} ms); 20 KiB head -> 431; " +
                $"with 4 of 4 slots held by stalled requests a framed call got in (evicting one) in {clock.Elapsed.TotalMilliseconds:F1} ms");
        }
        finally
        {
            foreach (var squatter in squatters)
                squatter.Dispose();
        }
    }
}
