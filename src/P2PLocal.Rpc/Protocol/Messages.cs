using System.Text;
using MessagePack;

namespace P2PLocal.Rpc.Protocol;

/// <summary>The first element of every message array. See PROTOCOL.md.</summary>
internal enum MessageKind
{
    Request = 0,
    Result = 1,
    Error = 2,
    Cancel = 3,
    Hello = 4,
    StreamItem = 5,
    StreamCredit = 6,
    StreamRequest = 7,

    /// <summary>Server to caller: the topics the server's node subscribes to (issue 14; Events/EventMessages.cs).</summary>
    Subscriptions = 8,

    /// <summary>Caller to server: one event on a topic the server subscribes to (issue 14; Events/EventMessages.cs).</summary>
    Event = 9,
}

/// <summary>Why a request failed, as sent in an error message. Values are part of the wire format.</summary>
internal enum ErrorCode
{
    HandlerFailed = 1,
    MethodNotFound = 2,
    InvalidKwargs = 3,
    Busy = 4,
    Canceled = 5,
    FrameTooLarge = 6,
    ShuttingDown = 7,
    BadRequest = 8,
}

/// <summary>The hello both sides send first on a connection: who they are and what they accept.</summary>
/// <param name="Version">The protocol version, <see cref="Messages.ProtocolVersion"/>.</param>
/// <param name="Name">The sender's node name.</param>
/// <param name="InstanceId">The sender's instance, as in its beacons.</param>
/// <param name="MaxFrameSize">The largest frame the sender accepts.</param>
/// <param name="IdleTimeoutMs">
/// How long the sender keeps a quiet incoming connection open (0: not said). An optional sixth element, so a caller
/// can close an idle connection before the peer reaps it under a request in flight; older readers skip it.
/// </param>
internal readonly record struct Hello(int Version, string Name, string InstanceId, int MaxFrameSize, long IdleTimeoutMs = 0)
{
    /// <summary>Whether the sender's hello lists the <c>extras</c> feature (element 6): requests to it may have 5 elements.</summary>
    public bool AcceptsExtras { get; init; }

    /// <summary>Whether the sender's hello lists the <c>stream</c> feature: it takes stream requests (kinds 5-7, see <see cref="StreamMessages"/>).</summary>
    public bool AcceptsStreams { get; init; }

    /// <summary>Whether the sender's hello lists the <c>events</c> feature: it sends and takes subscriptions and events (issue 14).</summary>
    public bool AcceptsEvents { get; init; }

    /// <summary>Not on the wire: the most topics this node keeps of a peer's subscriptions (<see cref="EventOptions.MaxTopicsPerPeer"/>).</summary>
    public int MaxPeerTopics { get; init; } = 256;
}

/// <summary>Writes and reads the message shapes of PROTOCOL.md.</summary>
internal static class Messages
{
    public const int ProtocolVersion = 1;

    /// <summary>
    /// The largest frame read before the hello: a hello is small, so a stranger who has not said who it is cannot make
    /// a node buffer a full-size frame (issue 8).
    /// </summary>
    public const int MaxHelloFrameSize = 16 * 1024;

    /// <summary>The longest node name a hello may carry, in UTF-8 bytes (a beacon, which carries it too, is at most 1024 bytes).</summary>
    public const int MaxHelloNameBytes = 1024;

    /// <summary>The longest instance id a hello may carry, in UTF-8 bytes (PROTOCOL.md: 1-64 characters).</summary>
    public const int MaxHelloInstanceIdBytes = 64;

    /// <summary>The smallest frame limit a hello may announce; NodeOptions.MaxFrameSize has the same minimum.</summary>
    public const int MinFrameSize = 1024;

    /// <summary>The error type sent, with <see cref="ErrorCode.BadRequest"/> and request id 0, to refuse a hello before closing.</summary>
    public const string BadHelloType = "BadHello";

    /// <summary>The error type sent, with <see cref="ErrorCode.Busy"/> and request id 0, to refuse a connection when the node is full.</summary>
    public const string NodeFullType = "NodeFull";

    /// <summary>The error type a secure node sends, with <see cref="ErrorCode.BadRequest"/> and request id 0, in plaintext to a caller that did not start TLS (issue 10).</summary>
    public const string AuthenticationRequiredType = "AuthenticationRequired";

    /// <summary>The reserved function that lists a node's functions; see <c>GetMethodsAsync</c>.</summary>
    public const string MethodsFunction = "$methods";

    public static void WriteHello(ref MessagePackWriter writer, in Hello hello)
    {
        writer.WriteArrayHeader(7);
        writer.Write((int)MessageKind.Hello);
        writer.Write(hello.Version);
        writer.Write(hello.Name);
        writer.Write(hello.InstanceId);
        writer.Write(hello.MaxFrameSize);
        writer.Write(hello.IdleTimeoutMs);
        RequestExtras.WriteFeatures(ref writer);
    }

    /// <summary>
    /// Writes the header of a request; the caller then writes exactly one value, the kwargs map, and then the extras
    /// map when <paramref name="withExtras"/> (only to a peer whose hello accepts them).
    /// </summary>
    public static void WriteRequestHeader(ref MessagePackWriter writer, uint id, string function, bool withExtras = false)
    {
        writer.WriteArrayHeader(withExtras ? 5 : 4);
        writer.Write((int)MessageKind.Request);
        writer.Write(id);
        writer.Write(function);
    }

    /// <summary>Writes the header of a result; the caller then writes exactly one value, the result.</summary>
    public static void WriteResultHeader(ref MessagePackWriter writer, uint id)
    {
        writer.WriteArrayHeader(3);
        writer.Write((int)MessageKind.Result);
        writer.Write(id);
    }

    /// <summary>The most bytes of an error frame besides its type and message: headers, kind, id, code.</summary>
    public const int ErrorFrameOverhead = 24;

    /// <summary>The most UTF-8 bytes an error's type name keeps when it must be cut.</summary>
    private const int MaxCutErrorTypeBytes = 1024;

    /// <summary>
    /// Writes an error whose frame fits in <paramref name="maxFrameSize"/> bytes (at least <see cref="ErrorFrameOverhead"/>):
    /// a type or message too long for it is cut and ends in an ellipsis, since a frame above the caller's limit would
    /// cost the caller the whole connection and every call on it (issue 8, item 10).
    /// </summary>
    public static void WriteError(ref MessagePackWriter writer, uint id, ErrorCode code, string type, string message, int maxFrameSize)
    {
        var room = Math.Max(0, maxFrameSize - ErrorFrameOverhead);
        if (System.Text.Encoding.UTF8.GetMaxByteCount(type.Length + message.Length) > room)
        {
            type = CutToUtf8Bytes(type, Math.Min(MaxCutErrorTypeBytes, room / 2));
            message = CutToUtf8Bytes(message, room - System.Text.Encoding.UTF8.GetByteCount(type));
        }

        WriteError(ref writer, id, code, type, message);
    }

    /// <summary>
    /// Cuts <paramref name="text"/> so that its UTF-8 form (as MessagePackWriter writes it) takes at most
    /// <paramref name="maxBytes"/>, ending a cut text in an ellipsis and never splitting a surrogate pair.
    /// </summary>
    internal static string CutToUtf8Bytes(string text, int maxBytes)
    {
        if (System.Text.Encoding.UTF8.GetByteCount(text) <= maxBytes)
            return text;
        const string Ellipsis = "\u2026"; // 3 bytes in UTF-8
        var budget = maxBytes - 3;
        if (budget < 0)
            return "";
        int bytes = 0, end = 0;
        while (end < text.Length)
        {
            var c = text[end];
            var (size, chars) = c < 0x80 ? (1, 1)
                : c < 0x800 ? (2, 1)
                : char.IsHighSurrogate(c) && end + 1 < text.Length && char.IsLowSurrogate(text[end + 1]) ? (4, 2)
                : (3, 1); // other BMP characters, and lone surrogates (written as U+FFFD)
            if (bytes + size > budget)
                break;
            bytes += size;
            end += chars;
        }

        return string.Concat(text.AsSpan(0, end), Ellipsis);
    }

    public static void WriteError(ref MessagePackWriter writer, uint id, ErrorCode code, string type, string message)
    {
        writer.WriteArrayHeader(5);
        writer.Write((int)MessageKind.Error);
        writer.Write(id);
        writer.Write((int)code);
        writer.Write(type);
        writer.Write(message);
    }

    public static void WriteCancel(ref MessagePackWriter writer, uint id)
    {
        writer.WriteArrayHeader(2);
        writer.Write((int)MessageKind.Cancel);
        writer.Write(id);
    }

    /// <summary>Reads the array header and kind of a message; throws <see cref="MessagePackSerializationException"/> on garbage.</summary>
    public static MessageKind ReadKind(ref MessagePackReader reader, out int count)
    {
        count = reader.ReadArrayHeader();
        if (count < 2)
            throw new MessagePackSerializationException($"A message needs at least 2 elements; got {count}.");
        var kind = reader.ReadInt32();
        // Kinds this side does not know are refused by the connection that reads them (it closes), never ignored.
        if (kind < 0)
            throw new MessagePackSerializationException($"Unknown message kind {kind}.");
        return (MessageKind)kind;
    }

    /// <summary>Reads the rest of a hello after <see cref="ReadKind"/>.</summary>
    /// <exception cref="BadHelloException">The hello is well formed but not acceptable: another version, a frame limit
    /// below <see cref="MinFrameSize"/>, or a name or instance id above its bound.</exception>
    public static Hello ReadHello(ref MessagePackReader reader, int count)
    {
        if (count < 5)
            throw new MessagePackSerializationException("A hello needs 5 elements.");
        var version = reader.ReadInt32();
        if (version != ProtocolVersion)
            throw new BadHelloException($"Protocol version {version} is not supported; this node speaks version {ProtocolVersion}.");
        var name = ReadBoundedString(ref reader, MaxHelloNameBytes, "name");
        var instanceId = ReadBoundedString(ref reader, MaxHelloInstanceIdBytes, "instance id");
        var maxFrameSize = reader.ReadInt32();
        if (maxFrameSize < MinFrameSize)
            throw new BadHelloException($"A maxFrameSize of {maxFrameSize} is below the minimum of {MinFrameSize} bytes.");
        var hello = new Hello(version, name, instanceId, maxFrameSize);
        var next = 5;
        if (count > 5 && reader.NextMessagePackType == MessagePackType.Integer)
        {
            hello = hello with { IdleTimeoutMs = Math.Max(0, reader.ReadInt64()) };
            next = 6;
        }

        if (count > 6 && next == 6 && reader.NextMessagePackType == MessagePackType.Array)
        {
            var features = RequestExtras.ReadFeatures(ref reader);
            hello = hello with { AcceptsExtras = features.Contains(RequestExtras.Feature), AcceptsStreams = features.Contains(StreamMessages.Feature),
                AcceptsEvents = features.Contains(EventMessages.Feature) };
            next = 7;
        }

        for (var i = next; i < count; i++)
            MessagePackValues.Skip(ref reader); // iterative: extra elements may nest arbitrarily
        return hello;
    }

    /// <summary>Reads a hello string (nil reads as empty), refusing one longer than <paramref name="maxBytes"/> before decoding it.</summary>
    private static string ReadBoundedString(ref MessagePackReader reader, int maxBytes, string field)
    {
        if (reader.TryReadNil())
            return "";
        var bytes = reader.ReadStringSequence() ?? default;
        if (bytes.Length > maxBytes)
            throw new BadHelloException($"The hello's {field} is {bytes.Length} bytes; at most {maxBytes} are allowed.");
        return Encoding.UTF8.GetString(bytes);
    }

    /// <summary>Writes the error that refuses a connection before any request: id 0, then the node closes.</summary>
    public static void WriteRefusal(ref MessagePackWriter writer, ErrorCode code, string type, string reason) =>
        WriteError(ref writer, 0, code, type, reason);

    /// <summary>
    /// Reads a request's id after <see cref="ReadKind"/>; the function name and kwargs follow. A request has 4 elements,
    /// or 5 when the fifth is the extras map (PROTOCOL.md, "Request extras and tracing"); call
    /// <see cref="SkipRequestExtras"/> after the kwargs.
    /// </summary>
    /// <exception cref="InvalidDataException">Another element count: a bad request, which closes the connection.</exception>
    /// <exception cref="MessagePackSerializationException">The id is not an integer from 0 to 2^32-1 (any encoding).</exception>
    public static uint ReadRequestId(ref MessagePackReader reader, int count)
    {
        if (count is not (4 or 5))
            throw new InvalidDataException($"A request has 4 elements (5 with extras), not {count}.");
        return reader.ReadUInt32();
    }

    /// <summary>Skips a request's optional fifth element, which must be a map (readers skip its unknown keys).</summary>
    /// <exception cref="InvalidDataException">The fifth element is not a map.</exception>
    public static void SkipRequestExtras(ref MessagePackReader reader, int count)
    {
        if (count < 5)
            return;
        if (reader.NextMessagePackType != MessagePackType.Map)
            throw new InvalidDataException($"A request's fifth element (extras) must be a map, not {reader.NextMessagePackType}.");
        MessagePackValues.Skip(ref reader);
    }

    /// <summary>
    /// Reads a cancel's id after <see cref="ReadKind"/>. A cancel has exactly 2 elements: like a request of the wrong
    /// shape, any other count is a bad request and closes the connection.
    /// </summary>
    /// <exception cref="InvalidDataException">The cancel does not have 2 elements.</exception>
    /// <exception cref="MessagePackSerializationException">The id is not an integer from 0 to 2^32-1.</exception>
    public static uint ReadCancelId(ref MessagePackReader reader, int count)
    {
        if (count != 2)
            throw new InvalidDataException($"A cancel has 2 elements, not {count}.");
        return reader.ReadUInt32();
    }

    /// <summary>Reads an error's fields after <see cref="ReadKind"/> and the id.</summary>
    public static (ErrorCode Code, string Type, string Message) ReadError(ref MessagePackReader reader, int count)
    {
        if (count < 5)
            throw new MessagePackSerializationException("An error needs 5 elements.");
        return ((ErrorCode)reader.ReadInt32(), reader.ReadString() ?? "", reader.ReadString() ?? "");
    }
}

/// <summary>A hello that is well formed but not acceptable; the message says why, and is sent back as a BadHello error.</summary>
internal sealed class BadHelloException(string message) : IOException(message);
