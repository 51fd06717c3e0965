using MessagePack;

namespace P2PLocal.Rpc.Protocol;

/// <summary>
/// The message shapes of streamed results (issue 14; PROTOCOL.md, "Streamed results"): a stream request
/// <c>[7, id, function, kwargs, window(, extras)]</c>, items <c>[5, id, value]</c> from the server, credit
/// <c>[6, id, n]</c> from the caller; the stream ends with the ordinary reply of its id (a result of nil, or an error),
/// and the caller cancels it with the ordinary cancel.
/// </summary>
internal static class StreamMessages
{
    /// <summary>The hello feature that says "send me stream requests": a node lists it when it serves them.</summary>
    public const string Feature = "stream";

    /// <summary>
    /// Writes the header of a stream request; the caller then writes the kwargs map, then <see cref="WriteWindow"/>, then
    /// the extras map when <paramref name="withExtras"/>.
    /// </summary>
    public static void WriteRequestHeader(ref MessagePackWriter writer, uint id, string function, bool withExtras)
    {
        writer.WriteArrayHeader(withExtras ? 6 : 5);
        writer.Write((int)MessageKind.StreamRequest);
        writer.Write(id);
        writer.Write(function);
    }

    /// <summary>Writes a stream request's window: how many items the server may send before the caller grants more.</summary>
    public static void WriteWindow(ref MessagePackWriter writer, int window) => writer.Write((uint)window);

    /// <summary>Writes the header of a stream item; the server then writes exactly one value, the item.</summary>
    public static void WriteItemHeader(ref MessagePackWriter writer, uint id)
    {
        writer.WriteArrayHeader(3);
        writer.Write((int)MessageKind.StreamItem);
        writer.Write(id);
    }

    /// <summary>Writes a credit: the caller read <paramref name="items"/> more items, so the server may send that many more.</summary>
    public static void WriteCredit(ref MessagePackWriter writer, uint id, int items)
    {
        writer.WriteArrayHeader(3);
        writer.Write((int)MessageKind.StreamCredit);
        writer.Write(id);
        writer.Write((uint)items);
    }

    /// <summary>Reads a stream request's id after <see cref="Messages.ReadKind"/>; the function name and kwargs follow, then <see cref="ReadWindow"/>.</summary>
    /// <exception cref="InvalidDataException">Not 5 or 6 elements: a bad request, which closes the connection.</exception>
    /// <exception cref="MessagePackSerializationException">The id is not an integer from 0 to 2^32-1.</exception>
    public static uint ReadRequestId(ref MessagePackReader reader, int count)
    {
        if (count is not (5 or 6))
            throw new InvalidDataException($"A stream request has 5 elements (6 with extras), not {count}.");
        return reader.ReadUInt32();
    }

    /// <summary>Reads a stream request's window (after the kwargs): 1 or more.</summary>
    /// <exception cref="InvalidDataException">A window of 0, which would let nothing be sent.</exception>
    public static uint ReadWindow(ref MessagePackReader reader)
    {
        var window = reader.ReadUInt32();
        if (window == 0)
            throw new InvalidDataException("A stream request's window must be at least 1.");
        return window;
    }

    /// <summary>Reads a credit after <see cref="Messages.ReadKind"/>: its id and item count. Exactly 3 elements.</summary>
    /// <exception cref="InvalidDataException">Another element count.</exception>
    public static (uint Id, uint Items) ReadCredit(ref MessagePackReader reader, int count)
    {
        if (count != 3)
            throw new InvalidDataException($"A stream credit has 3 elements, not {count}.");
        return (reader.ReadUInt32(), reader.ReadUInt32());
    }
}

/// <summary>A request of the wrong shape for its function (one result asked of a stream): answered as error 2, no such function.</summary>
internal sealed class StreamShapeException(string message) : MethodNotFoundException(message);
