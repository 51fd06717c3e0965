using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace P2PLocal.Rpc.Legacy;

/// <summary>
/// The little of HTTP/1.x that XML-RPC needs, both ways: a bounded head (start line and headers), then a body of
/// Content-Length bytes. Chunked bodies are refused; a body is never longer than the node's frame limit.
/// </summary>
internal static class HttpMessage
{
    /// <summary>The largest head (start line and headers) read. Python's xmlrpc.client sends about 200 bytes.</summary>
    public const int MaxHeadBytes = 16 * 1024;

    private const int ChunkBytes = 64 * 1024;

    /// <summary>A head, and the bytes read past it (the start of the body).</summary>
    public sealed record Head(string StartLine, Dictionary<string, string> Headers, byte[] Buffer, int BodyStart, int Filled)
    {
        /// <summary>The Content-Length, or null when there is none.</summary>
        /// <exception cref="HttpProtocolException">It is not a number, or two of them differ.</exception>
        public long? ContentLength => !Headers.TryGetValue("content-length", out var text) ? null
            : long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var length) ? length
            : throw new HttpProtocolException(400, "Bad Request", $"Content-Length '{text}' is not one non-negative number.");

        /// <summary>Whether the body is sent in chunks (any Transfer-Encoding), which this node does not read.</summary>
        public bool HasTransferEncoding => Headers.ContainsKey("transfer-encoding");
    }

    /// <summary>Reads a head of at most <see cref="MaxHeadBytes"/>.</summary>
    /// <exception cref="HttpProtocolException">The head is too long or not HTTP.</exception>
    /// <exception cref="EndOfStreamException">The connection closed before the head ended.</exception>
    public static async Task<Head> ReadHeadAsync(Socket socket, CancellationToken cancellationToken)
    {
        var buffer = new byte[1024]; // grows to MaxHeadBytes: a usual head (about 200 bytes) and a small body fit at once
        int filled = 0, searched = 0;
        while (true)
        {
            // Only the new bytes are searched (a blank line may straddle reads), so a head sent a byte at a time costs O(n).
            var end = HeadEnd(buffer, Math.Max(0, searched - 3), filled);
            searched = filled;
            if (end >= 0)
                return Parse(buffer, end, filled);
            if (filled == MaxHeadBytes)
                throw new HttpProtocolException(431, "Request Header Fields Too Large", $"The HTTP head is longer than {MaxHeadBytes} bytes.");
            if (filled == buffer.Length)
                Array.Resize(ref buffer, Math.Min(buffer.Length * 4, MaxHeadBytes));
            var read = await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (read == 0)
                throw new EndOfStreamException("The connection closed before the HTTP head ended.");
            filled += read;
        }
    }

    /// <summary>
    /// Reads the body: <paramref name="length"/> bytes, or up to the end of the stream when null. Memory grows with the
    /// bytes that arrive, never with what the header claims.
    /// </summary>
    /// <exception cref="HttpProtocolException">The body is longer than <paramref name="maxBytes"/>.</exception>
    /// <exception cref="EndOfStreamException">The connection closed before <paramref name="length"/> bytes came.</exception>
    public static async Task<ReadOnlyMemory<byte>> ReadBodyAsync(Socket socket, Head head, long? length, int maxBytes, CancellationToken cancellationToken)
    {
        if (length > maxBytes)
            throw new HttpProtocolException(413, "Payload Too Large", $"The body is {length} bytes; this node takes at most {maxBytes} (NodeOptions.MaxFrameSize).");
        var already = (int)Math.Min(head.Filled - head.BodyStart, length ?? long.MaxValue);
        if (already == length)
            return head.Buffer.AsMemory(head.BodyStart, already); // the whole body came with the head
        var body = new MemoryStream((int)Math.Min(length ?? ChunkBytes, ChunkBytes));
        body.Write(head.Buffer, head.BodyStart, already);
        var chunk = new byte[(int)Math.Min(length - already ?? ChunkBytes, ChunkBytes)];
        while (length is null || body.Length < length)
        {
            var want = length is null ? chunk.Length : (int)Math.Min(chunk.Length, length.Value - body.Length);
            var read = await socket.ReceiveAsync(chunk.AsMemory(0, want), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                if (length is null)
                    break;
                throw new EndOfStreamException($"The connection closed after {body.Length} of the {length} body bytes its Content-Length promised.");
            }

            if (body.Length + read > maxBytes)
                throw new HttpProtocolException(413, "Payload Too Large", $"The body is longer than {maxBytes} bytes (NodeOptions.MaxFrameSize).");
            body.Write(chunk, 0, read);
        }

        return body.GetBuffer().AsMemory(0, (int)body.Length);
    }

    /// <summary>Sends a head and a body in one write.</summary>
    public static async Task SendAsync(Socket socket, string head, ReadOnlyMemory<byte> body, CancellationToken cancellationToken)
    {
        var headBytes = Encoding.ASCII.GetByteCount(head);
        var message = new byte[headBytes + body.Length];
        Encoding.ASCII.GetBytes(head, message);
        body.CopyTo(message.AsMemory(headBytes));
        await socket.SendAsync(message, SocketFlags.None, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The offset just past the blank line that ends the head, or -1.</summary>
    private static int HeadEnd(byte[] buffer, int from, int filled)
    {
        for (var i = from; i < filled; i++)
        {
            if (buffer[i] != '\n')
                continue;
            if (i + 1 < filled && buffer[i + 1] == '\n')
                return i + 2;
            if (i + 2 < filled && buffer[i + 1] == '\r' && buffer[i + 2] == '\n')
                return i + 3;
        }

        return -1;
    }

    private static Head Parse(byte[] buffer, int end, int filled)
    {
        var lines = Encoding.Latin1.GetString(buffer, 0, end).Split('\n');
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var raw in lines.Skip(1))
        {
            var line = raw.TrimEnd('\r');
            if (line.Length == 0)
                continue;
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0)
                throw new HttpProtocolException(400, "Bad Request", "An HTTP header line has no name.");
            var name = line[..colon].Trim().ToLowerInvariant();
            var value = line[(colon + 1)..].Trim();
            // Two Content-Lengths that differ are a request-smuggling classic: refuse, as RFC 9112 section 6.3 says.
            if (headers.TryGetValue(name, out var earlier) && name == "content-length" && earlier != value)
                throw new HttpProtocolException(400, "Bad Request", "Two Content-Length headers differ.");
            headers.TryAdd(name, value);
        }

        return new Head(lines[0].TrimEnd('\r'), headers, buffer, end, filled);
    }
}

/// <summary>An HTTP message this node will not take; the server answers with <see cref="Status"/>.</summary>
internal sealed class HttpProtocolException(int status, string reason, string message) : Exception(message)
{
    public int Status { get; } = status;

    public string Reason { get; } = reason;
}
