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
}

/// <summary>Writes and reads the message shapes of PROTOCOL.md.</summary>
internal static class Messages
{
    public const int ProtocolVersion = 1;

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
        if (kind is < 0 or > (int)MessageKind.Hello)
            throw new MessagePackSerializationException($"Unknown message kind {kind}.");
        return (MessageKind)kind;
    }

    /// <summary>Reads the rest of a hello after <see cref="ReadKind"/>.</summary>
    public static Hello ReadHello(ref MessagePackReader reader, int count)
    {
        if (count < 5)
            throw new MessagePackSerializationException("A hello needs 5 elements.");
        var hello = new Hello(reader.ReadInt32(), reader.ReadString() ?? "", reader.ReadString() ?? "", reader.ReadInt32());
        var next = 5;
        if (count > 5 && reader.NextMessagePackType == MessagePackType.Integer)
        {
            hello = hello with { IdleTimeoutMs = Math.Max(0, reader.ReadInt64()) };
            next = 6;
        }

        if (count > 6 && next == 6 && reader.NextMessagePackType == MessagePackType.Array)
        {
            hello = hello with { AcceptsExtras = RequestExtras.ReadFeatures(ref reader) };
            next = 7;
        }

        for (var i = next; i < count; i++)
            Dispatch.KwargsCodec.SkipValue(ref reader); // iterative: extra elements may nest arbitrarily
        return hello;
    }

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
        Dispatch.KwargsCodec.SkipValue(ref reader);
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
