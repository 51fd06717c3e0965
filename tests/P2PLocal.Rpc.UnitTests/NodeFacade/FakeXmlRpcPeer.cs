using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using P2PLocal.Rpc.Legacy;

namespace P2PLocal.Rpc.UnitTests.NodeFacade;

/// <summary>
/// A Python p2p-local node's XML-RPC server as far as a caller sees it: on loopback, one request per connection, each
/// answered with the bytes <c>answer</c> gives for its body (or nothing until disposed, when it gives null).
/// </summary>
internal sealed class FakeXmlRpcPeer : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly Func<string, byte[]?> _answer;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentQueue<(string Head, string Body)> _requests = new();
    private readonly Task _loop;

    public FakeXmlRpcPeer(Func<string, byte[]?> answer)
    {
        _answer = answer;
        _listener.Start();
        _loop = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public IReadOnlyList<(string Head, string Body)> Requests => [.. _requests];

    /// <summary>A 200 reply holding one value (XML of <c>&lt;value&gt;</c>'s content).</summary>
    public static byte[] Value(string valueXml) => Ok($"<?xml version='1.0'?><methodResponse><params><param><value>{valueXml}</value></param></params></methodResponse>");

    /// <summary>A 200 reply holding the result <paramref name="value"/>, written as this library writes one.</summary>
    public static byte[] Result(object? value) => Ok(Encoding.UTF8.GetString(XmlRpcValues.WriteResult(value)));

    /// <summary>A 200 reply holding a fault.</summary>
    public static byte[] Fault(int code, string text) => Ok(Encoding.UTF8.GetString(XmlRpcValues.WriteFault(code, text)));

    public static byte[] Ok(string body) => Http("HTTP/1.0 200 OK", body);

    public static byte[] Http(string statusLine, string body, string extraHeaders = "")
    {
        var bytes = Encoding.UTF8.GetBytes(body);
        return [.. Encoding.ASCII.GetBytes($"{statusLine}\r\nContent-Type: text/xml\r\n{extraHeaders}Content-Length: {bytes.Length}\r\n\r\n"), .. bytes];
    }

    private async Task AcceptAsync()
    {
        var served = new List<Task>();
        try
        {
            while (true)
            {
                var socket = await _listener.AcceptSocketAsync(_stop.Token);
                served.Add(ServeAsync(socket));
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }

        await Task.WhenAll(served);
    }

    private async Task ServeAsync(Socket socket)
    {
        using (socket)
        {
            try
            {
                var received = new List<byte>();
                var buffer = new byte[4096];
                int headEnd, length = 0;
                while (true)
                {
                    var text = Encoding.ASCII.GetString([.. received]);
                    headEnd = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
                    if (headEnd >= 0)
                    {
                        var header = text[..headEnd].Split("\r\n").FirstOrDefault(l => l.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase));
                        length = header is null ? 0 : int.Parse(header["Content-Length:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
                        if (received.Count >= headEnd + 4 + length)
                            break;
                    }

                    var read = await socket.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                    if (read == 0)
                        return;
                    received.AddRange(buffer.AsSpan(0, read));
                }

                var all = received.ToArray();
                var head = Encoding.ASCII.GetString(all, 0, headEnd);
                var body = Encoding.UTF8.GetString(all, headEnd + 4, length);
                _requests.Enqueue((head, body));
                var answer = _answer(body);
                if (answer is null)
                {
                    await Task.Delay(Timeout.Infinite, _stop.Token);
                    return;
                }

                await socket.SendAsync(answer, SocketFlags.None, _stop.Token);
                socket.Shutdown(SocketShutdown.Both);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException)
            {
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _loop;
        _stop.Dispose();
    }
}
