using System.Globalization;
using System.Text;
using System.Xml;
using MessagePack;

namespace P2PLocal.Rpc.Legacy;

/// <summary>
/// XML-RPC documents (methodCall, methodResponse) to and from the plain values of the dynamic API (issue 13):
/// int/i4/i8 -> <see cref="long"/>, double, boolean, string, base64 -> <c>byte[]</c>, dateTime.iso8601 ->
/// <see cref="DateTime"/> (UTC kind), array -> <c>object?[]</c>, struct -> <c>Dictionary&lt;string, object?&gt;</c>,
/// nil -> null. System.Xml reads and writes the text; DTDs are refused, so no entity can expand.
/// </summary>
/// <remarks>
/// Writing refuses, with <see cref="XmlRpcTypeException"/>, every value the Python p2p-local cannot take: null,
/// integers beyond 32 bits, maps whose keys are not strings, times with fractions of a second, and strings with
/// characters XML 1.0 cannot carry. Nothing is truncated silently.
/// </remarks>
internal static class XmlRpcValues
{
    private const string DateTimeFormat = "yyyyMMdd'T'HH':'mm':'ss";
    private static readonly string[] s_dateTimeFormats = [DateTimeFormat, "yyyy'-'MM'-'dd'T'HH':'mm':'ss", "yyyyMMdd'T'HH':'mm':'ss'Z'"];
    private static readonly UTF8Encoding s_utf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>A call: the method name and its positional parameters.</summary>
    public readonly record struct Call(string Method, object?[] Params);

    /// <summary>A reply: a value, or a fault.</summary>
    public readonly record struct Response(object? Value, int? FaultCode, string? FaultString);

    private static XmlReaderSettings ReaderSettings(int maxBytes) => new()
    {
        DtdProcessing = DtdProcessing.Prohibit, // no DOCTYPE, so no entity can be declared ("billion laughs", external entities)
        XmlResolver = null,
        MaxCharactersInDocument = maxBytes,
        IgnoreComments = true,
        IgnoreProcessingInstructions = true,
        CheckCharacters = true,
        CloseInput = false,
    };

    /// <summary>Reads a methodCall.</summary>
    /// <exception cref="XmlRpcFormatException">The document is not a well-formed XML-RPC call, or is nested deeper than <paramref name="maxDepth"/>.</exception>
    public static Call ReadCall(ReadOnlyMemory<byte> body, int maxDepth)
    {
        return Parse(body, reader =>
        {
            Enter(reader, "methodCall");
            var method = "";
            var parameters = new List<object?>();
            for (var more = EnterChildren(reader); more; more = NextSibling(reader))
            {
                switch (reader.LocalName)
                {
                    case "methodName":
                        method = reader.ReadElementContentAsString().Trim();
                        break;
                    case "params":
                        ReadParams(reader, parameters, maxDepth);
                        break;
                    default:
                        throw new XmlRpcFormatException($"A methodCall holds methodName and params, not <{reader.LocalName}>.");
                }
            }

            if (method.Length == 0)
                throw new XmlRpcFormatException("The methodCall has no methodName.");
            return new Call(method, [.. parameters]);
        });
    }

    /// <summary>Reads a methodResponse: one value, or a fault struct with faultCode and faultString.</summary>
    /// <exception cref="XmlRpcFormatException">The document is not a well-formed XML-RPC response.</exception>
    public static Response ReadResponse(ReadOnlyMemory<byte> body, int maxDepth)
    {
        return Parse(body, reader =>
        {
            Enter(reader, "methodResponse");
            if (!EnterChildren(reader))
                throw new XmlRpcFormatException("The methodResponse is empty.");
            Response response;
            if (reader.LocalName == "fault")
            {
                Enter(reader, "fault");
                if (!EnterChildren(reader) || ReadValue(reader, 0, maxDepth) is not Dictionary<string, object?> fault)
                    throw new XmlRpcFormatException("A fault holds one struct value.");
                SkipToEnd(reader);
                var code = fault.GetValueOrDefault("faultCode") is long c and >= int.MinValue and <= int.MaxValue ? (int)c : 0;
                response = new Response(null, code, fault.GetValueOrDefault("faultString") as string ?? "");
            }
            else if (reader.LocalName == "params")
            {
                var values = new List<object?>(1);
                ReadParams(reader, values, maxDepth);
                if (values.Count != 1)
                    throw new XmlRpcFormatException($"A methodResponse holds one value, not {values.Count}.");
                response = new Response(values[0], null, null);
            }
            else
            {
                throw new XmlRpcFormatException($"A methodResponse holds params or fault, not <{reader.LocalName}>.");
            }

            SkipToEnd(reader);
            return response;
        });
    }

    /// <summary>Writes a methodCall with positional parameters.</summary>
    /// <exception cref="XmlRpcTypeException">A value cannot cross XML-RPC.</exception>
    public static byte[] WriteCall(string method, IReadOnlyList<object?> parameters) => Write(writer =>
    {
        writer.WriteStartElement("methodCall");
        writer.WriteElementString("methodName", method);
        writer.WriteStartElement("params");
        for (var i = 0; i < parameters.Count; i++)
        {
            writer.WriteStartElement("param");
            WriteValue(writer, parameters[i], "kwargs");
            writer.WriteEndElement();
        }

        writer.WriteEndElement();
        writer.WriteEndElement();
    });

    /// <summary>Writes a methodResponse holding one value.</summary>
    /// <exception cref="XmlRpcTypeException">The value cannot cross XML-RPC.</exception>
    public static byte[] WriteResult(object? value) => Write(writer =>
    {
        writer.WriteStartElement("methodResponse");
        writer.WriteStartElement("params");
        writer.WriteStartElement("param");
        WriteValue(writer, value, "the result");
        writer.WriteEndElement();
        writer.WriteEndElement();
        writer.WriteEndElement();
    });

    /// <summary>Writes a methodResponse holding a fault, as Python's <c>xmlrpc.client.Fault</c> reads it.</summary>
    public static byte[] WriteFault(int code, string faultString) => Write(writer =>
    {
        writer.WriteStartElement("methodResponse");
        writer.WriteStartElement("fault");
        WriteValue(writer, new Dictionary<string, object?> { ["faultCode"] = (long)code, ["faultString"] = XmlSafe(faultString) }, "the fault");
        writer.WriteEndElement();
        writer.WriteEndElement();
    });

    /// <summary>Writes a plain value (see the type remarks) as one MessagePack value.</summary>
    public static void WritePlain(ref MessagePackWriter writer, object? value)
    {
        switch (value)
        {
            case null:
                writer.WriteNil();
                break;
            case bool b:
                writer.Write(b);
                break;
            case long l:
                writer.Write(l);
                break;
            case double d:
                writer.Write(d);
                break;
            case string s:
                writer.Write(s);
                break;
            case byte[] bytes:
                writer.Write(bytes);
                break;
            case DateTime time:
                writer.Write(time);
                break;
            case object?[] array:
                writer.WriteArrayHeader(array.Length);
                foreach (var item in array)
                    WritePlain(ref writer, item);
                break;
            case Dictionary<string, object?> map:
                writer.WriteMapHeader(map.Count);
                foreach (var (key, item) in map)
                {
                    writer.Write(key);
                    WritePlain(ref writer, item);
                }

                break;
            default:
                throw new InvalidOperationException($"Not a value read from XML-RPC: {value.GetType()}.");
        }
    }

    private static T Parse<T>(ReadOnlyMemory<byte> body, Func<XmlReader, T> read)
    {
        try
        {
            using var stream = new MemoryStream(body.ToArray(), writable: false);
            using var reader = XmlReader.Create(stream, ReaderSettings(Math.Max(body.Length, 1)));
            return read(reader);
        }
        catch (Exception e) when (e is XmlException or DecoderFallbackException or FormatException or OverflowException or ArgumentException)
        {
            throw new XmlRpcFormatException($"The XML-RPC document cannot be read: {e.Message}", e);
        }
    }

    /// <summary>Moves to the next element and checks its name; the reader then stands on it.</summary>
    private static void Enter(XmlReader reader, string name)
    {
        if (reader.NodeType != XmlNodeType.Element)
            reader.MoveToContent();
        if (reader.NodeType != XmlNodeType.Element || reader.LocalName != name)
            throw new XmlRpcFormatException($"Expected <{name}>, found {Describe(reader)}.");
    }

    /// <summary>From a start element, moves to its first child element; false (past its end tag) when it has none.</summary>
    private static bool EnterChildren(XmlReader reader)
    {
        var empty = reader.IsEmptyElement;
        reader.Read();
        return !empty && NextSibling(reader);
    }

    /// <summary>
    /// From just past a child, moves to the next child element; false at the parent's end tag, which is then consumed.
    /// Only whitespace may stand between children.
    /// </summary>
    private static bool NextSibling(XmlReader reader)
    {
        while (true)
        {
            switch (reader.NodeType)
            {
                case XmlNodeType.Element:
                    return true;
                case XmlNodeType.EndElement:
                    reader.Read();
                    return false;
                case XmlNodeType.Whitespace or XmlNodeType.SignificantWhitespace:
                    reader.Read();
                    break;
                case XmlNodeType.None:
                    throw new XmlRpcFormatException("The document ends inside an element.");
                default:
                    throw new XmlRpcFormatException($"Unexpected {Describe(reader)}.");
            }
        }
    }

    /// <summary>From just past the last expected child, consumes the parent's end tag.</summary>
    private static void SkipToEnd(XmlReader reader)
    {
        if (NextSibling(reader))
            throw new XmlRpcFormatException($"Unexpected {Describe(reader)}.");
    }

    private static void ReadParams(XmlReader reader, List<object?> values, int maxDepth)
    {
        Enter(reader, "params");
        for (var more = EnterChildren(reader); more; more = NextSibling(reader))
        {
            Enter(reader, "param");
            if (!EnterChildren(reader))
                throw new XmlRpcFormatException("A param holds one value.");
            values.Add(ReadValue(reader, 0, maxDepth));
            SkipToEnd(reader);
        }
    }

    /// <summary>Reads the &lt;value&gt; the reader stands on, and moves past its end tag.</summary>
    private static object? ReadValue(XmlReader reader, int depth, int maxDepth)
    {
        Enter(reader, "value");
        if (depth > maxDepth)
            throw new XmlRpcFormatException($"Values are nested deeper than {maxDepth} levels.");
        if (reader.IsEmptyElement)
        {
            reader.Read();
            return "";
        }

        reader.Read();
        var text = new StringBuilder();
        while (reader.NodeType is XmlNodeType.Text or XmlNodeType.CDATA or XmlNodeType.Whitespace or XmlNodeType.SignificantWhitespace)
        {
            text.Append(reader.Value);
            reader.Read();
        }

        if (reader.NodeType == XmlNodeType.EndElement)
        {
            reader.Read();
            return text.ToString(); // no type element: a string, as XML-RPC says
        }

        if (reader.NodeType != XmlNodeType.Element || !string.IsNullOrWhiteSpace(text.ToString()))
            throw new XmlRpcFormatException($"A value holds text or one typed element, not {Describe(reader)}.");
        var value = ReadTyped(reader, depth, maxDepth);
        SkipToEnd(reader);
        return value;
    }

    private static object? ReadTyped(XmlReader reader, int depth, int maxDepth)
    {
        switch (reader.LocalName)
        {
            case "int" or "i4" or "i8" or "i1" or "i2":
                var integer = reader.ReadElementContentAsString().Trim();
                if (!long.TryParse(integer, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l))
                    throw new XmlRpcFormatException($"'{Shorten(integer)}' is not an integer of at most 64 bits.");
                return l;
            case "boolean":
                return reader.ReadElementContentAsString().Trim() switch
                {
                    "1" => true,
                    "0" => false,
                    var other => throw new XmlRpcFormatException($"'{Shorten(other)}' is not a boolean (0 or 1)."),
                };
            case "double" or "float":
                return ParseDouble(reader.ReadElementContentAsString().Trim());
            case "string":
                return reader.ReadElementContentAsString();
            case "base64":
                return Convert.FromBase64String(reader.ReadElementContentAsString());
            case "dateTime.iso8601":
                var time = reader.ReadElementContentAsString().Trim();
                if (!DateTime.TryParseExact(time, s_dateTimeFormats, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out var parsed))
                    throw new XmlRpcFormatException($"'{Shorten(time)}' is not a dateTime.iso8601 (yyyyMMddTHH:mm:ss).");
                return DateTime.SpecifyKind(parsed, DateTimeKind.Utc);
            case "nil":
                reader.Skip();
                return null;
            case "array":
                Enter(reader, "array");
                if (!EnterChildren(reader))
                    throw new XmlRpcFormatException("An array holds one data element.");
                Enter(reader, "data");
                var items = new List<object?>();
                for (var more = EnterChildren(reader); more; more = NextSibling(reader))
                    items.Add(ReadValue(reader, depth + 1, maxDepth));
                SkipToEnd(reader);
                return items.ToArray();
            case "struct":
                var map = new Dictionary<string, object?>(StringComparer.Ordinal);
                Enter(reader, "struct");
                for (var more = EnterChildren(reader); more; more = NextSibling(reader))
                {
                    Enter(reader, "member");
                    if (!EnterChildren(reader))
                        throw new XmlRpcFormatException("A struct member holds a name and a value.");
                    Enter(reader, "name");
                    var name = reader.ReadElementContentAsString();
                    if (!NextSibling(reader))
                        throw new XmlRpcFormatException($"Struct member '{Shorten(name)}' has no value.");
                    var item = ReadValue(reader, depth + 1, maxDepth);
                    if (!map.TryAdd(name, item))
                        throw new XmlRpcFormatException($"Struct member '{Shorten(name)}' appears twice.");
                    SkipToEnd(reader);
                }

                return map;
            default:
                throw new XmlRpcFormatException($"<{Shorten(reader.LocalName)}> is not an XML-RPC type.");
        }
    }

    private static double ParseDouble(string text) => text.ToLowerInvariant() switch
    {
        "inf" or "+inf" or "infinity" => double.PositiveInfinity,
        "-inf" or "-infinity" => double.NegativeInfinity,
        "nan" or "-nan" => double.NaN,
        _ => text.Length <= 400 && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d)
            ? d
            : throw new XmlRpcFormatException($"'{Shorten(text)}' is not a double."),
    };

    private static byte[] Write(Action<XmlWriter> write)
    {
        using var stream = new MemoryStream();
        var settings = new XmlWriterSettings { Encoding = s_utf8, CheckCharacters = true, Indent = false, CloseOutput = false };
        try
        {
            using (var writer = XmlWriter.Create(stream, settings))
            {
                writer.WriteStartDocument();
                write(writer);
                writer.WriteEndDocument();
            }
        }
        catch (ArgumentException e) when (e is not XmlRpcTypeException)
        {
            // XmlWriter refuses characters XML 1.0 cannot carry (NUL and most control characters, lone surrogates).
            throw new XmlRpcTypeException($"A string holds a character XML-RPC cannot carry: {e.Message} Send such data as byte[] (base64).", e);
        }

        return stream.ToArray();
    }

    /// <summary>Writes one value; <paramref name="path"/> names it in errors (<c>kwargs['x'][2]</c>).</summary>
    private static void WriteValue(XmlWriter writer, object? value, string path)
    {
        writer.WriteStartElement("value");
        switch (value)
        {
            case null:
                throw new XmlRpcTypeException($"{path} is null: XML-RPC without allow_none (the Python p2p-local) has no None. Leave the kwarg out or send a sentinel value.");
            case bool b:
                writer.WriteElementString("boolean", b ? "1" : "0");
                break;
            case long l:
                writer.WriteElementString("int", l is >= int.MinValue and <= int.MaxValue
                    ? l.ToString(CultureInfo.InvariantCulture)
                    : throw new XmlRpcTypeException($"{path} is {l}, an integer beyond 32 bits: XML-RPC (and the Python p2p-local) carries only int32. Send it as a string or a double."));
                break;
            case ulong u:
                throw new XmlRpcTypeException($"{path} is {u}, an integer beyond 32 bits: XML-RPC (and the Python p2p-local) carries only int32. Send it as a string.");
            case double d:
                writer.WriteElementString("double", double.IsFinite(d) ? d.ToString("R", CultureInfo.InvariantCulture) : double.IsNaN(d) ? "nan" : d > 0 ? "inf" : "-inf");
                break;
            case string s:
                writer.WriteElementString("string", s);
                break;
            case byte[] bytes:
                writer.WriteStartElement("base64");
                writer.WriteBase64(bytes, 0, bytes.Length);
                writer.WriteEndElement();
                break;
            case DateTime time:
                var utc = time.Kind == DateTimeKind.Local ? time.ToUniversalTime() : time;
                if (utc.Ticks % TimeSpan.TicksPerSecond != 0)
                    throw new XmlRpcTypeException($"{path} is {time:O}: XML-RPC dateTime.iso8601 carries whole seconds only. Round it first.");
                writer.WriteElementString("dateTime.iso8601", utc.ToString(DateTimeFormat, CultureInfo.InvariantCulture));
                break;
            case object?[] array:
                writer.WriteStartElement("array");
                writer.WriteStartElement("data");
                for (var i = 0; i < array.Length; i++)
                    WriteValue(writer, array[i], $"{path}[{i}]");
                writer.WriteEndElement();
                writer.WriteEndElement();
                break;
            case Dictionary<string, object?> map:
                writer.WriteStartElement("struct");
                foreach (var (key, item) in map)
                {
                    writer.WriteStartElement("member");
                    writer.WriteElementString("name", key);
                    WriteValue(writer, item, $"{path}['{key}']");
                    writer.WriteEndElement();
                }

                writer.WriteEndElement();
                break;
            case System.Collections.IDictionary:
                throw new XmlRpcTypeException($"{path} is a map whose keys are not all strings: an XML-RPC struct has string keys only.");
            default:
                throw new XmlRpcTypeException($"{path} is a {value.GetType().Name}, which XML-RPC cannot carry.");
        }

        writer.WriteEndElement();
    }

    private static string XmlSafe(string text)
    {
        var safe = new StringBuilder(text.Length);
        foreach (var c in text)
            safe.Append(XmlConvert.IsXmlChar(c) ? c : '?');
        return safe.ToString();
    }

    private static string Describe(XmlReader reader) => reader.NodeType switch
    {
        XmlNodeType.Element => $"<{Shorten(reader.LocalName)}>",
        XmlNodeType.EndElement => $"</{Shorten(reader.LocalName)}>",
        XmlNodeType.None => "the end of the document",
        var type => $"{type} '{Shorten(reader.Value)}'",
    };

    private static string Shorten(string text) => text.Length <= 40 ? text : text[..40] + "...";
}

/// <summary>An XML-RPC document that cannot be read (bad XML, a DTD, too deep, an unknown type).</summary>
internal sealed class XmlRpcFormatException(string message, Exception? inner = null) : FormatException(message, inner);

/// <summary>A value that cannot cross XML-RPC (null, an integer beyond 32 bits, a map with non-string keys, ...).</summary>
internal sealed class XmlRpcTypeException(string message, Exception? inner = null) : ArgumentException(message, inner);
