using MessagePack;

namespace P2PLocal.Rpc.Dispatch;

/// <summary>A function registered as a delegate over a kwargs dictionary, as in the Python p2p-local.</summary>
internal sealed class DynamicFunction : IServiceDispatcher
{
    private readonly Func<IReadOnlyDictionary<string, object?>, CallContext, CancellationToken, ValueTask<object?>> _handler;

    public DynamicFunction(string name, Func<IReadOnlyDictionary<string, object?>, CallContext, CancellationToken, ValueTask<object?>> handler)
    {
        _handler = handler;
        Functions = [FunctionDescriptor.Dynamic(name)];
    }

    public IReadOnlyList<FunctionDescriptor> Functions { get; }

    public ValueTask InvokeAsync(FunctionCall call)
    {
        // Only the server makes a FunctionCall, after scanning its kwargs against the budget and for UTF-8.
        var kwargs = KwargsCodec.ReadKwargs(call.Kwargs, call.Options, scanned: true);
        var pending = _handler(kwargs, call.Context, call.CancellationToken);
        if (pending.IsCompletedSuccessfully)
        {
            WriteResult(call, pending.Result);
            return default;
        }

        return AwaitAndWriteAsync(call, pending);
    }

    private static async ValueTask AwaitAndWriteAsync(FunctionCall call, ValueTask<object?> pending)
    {
        var result = await pending.ConfigureAwait(false);
        WriteResult(call, result);
    }

    private static void WriteResult(FunctionCall call, object? result)
    {
        var writer = new MessagePackWriter(call.Result);
        MessagePackSerializer.Serialize(ref writer, result, call.Options);
        writer.Flush();
    }
}

/// <summary>The functions every node serves by itself.</summary>
internal sealed class BuiltInFunctions(Func<IReadOnlyList<FunctionDescriptor>> listFunctions) : IServiceDispatcher
{
    private static readonly MessagePackSerializerOptions s_plainValues = MessagePackSerializerOptions.Standard.WithSecurity(MessagePackSecurity.UntrustedData);

    public IReadOnlyList<FunctionDescriptor> Functions { get; } = [FunctionDescriptor.Dynamic(Protocol.Messages.MethodsFunction)];

    public ValueTask InvokeAsync(FunctionCall call)
    {
        var writer = new MessagePackWriter(call.Result);
        WriteDescriptors(ref writer, listFunctions());
        writer.Flush();
        return default;
    }

    /// <summary>Writes the <c>$methods</c> result: an array of maps (see PROTOCOL.md).</summary>
    internal static void WriteDescriptors(ref MessagePackWriter writer, IReadOnlyList<FunctionDescriptor> functions)
    {
        writer.WriteArrayHeader(functions.Count);
        foreach (var function in functions)
        {
            // "contract", "signature" and "types" came later; readers skip keys they do not know (PROTOCOL.md).
            var typed = function.Contract is not null;
            var described = function.ObjectTypes.Count > 0;
            writer.WriteMapHeader((typed ? 6 : 4) + (described ? 1 : 0));
            writer.Write("name");
            writer.Write(function.Name);
            writer.Write("params");
            writer.WriteArrayHeader(function.Parameters.Count);
            foreach (var parameter in function.Parameters)
            {
                var hasDefault = parameter.IsOptional && parameter.DefaultValue is not null;
                writer.WriteMapHeader(hasDefault ? 4 : 3);
                writer.Write("name");
                writer.Write(parameter.Name);
                writer.Write("type");
                writer.Write(parameter.Type);
                writer.Write("optional");
                writer.Write(parameter.IsOptional);
                if (hasDefault)
                {
                    writer.Write("default");
                    WriteConstant(ref writer, parameter.DefaultValue);
                }
            }

            writer.Write("returns");
            writer.Write(function.ReturnType);
            writer.Write("fingerprint");
            writer.Write(function.Fingerprint);
            if (typed)
            {
                writer.Write("contract");
                writer.Write(function.Contract);
                writer.Write("signature");
                writer.Write(function.Signature);
            }

            if (described)
            {
                writer.Write("types");
                WriteObjectTypes(ref writer, function.ObjectTypes);
            }
        }
    }

    /// <summary>Writes <c>types</c>: a map from type name to <c>{"layout": "array"|"map", "members": [...]}</c>.</summary>
    private static void WriteObjectTypes(ref MessagePackWriter writer, IReadOnlyList<ObjectTypeDescriptor> types)
    {
        writer.WriteMapHeader(types.Count);
        foreach (var type in types)
        {
            writer.Write(type.Name);
            writer.WriteMapHeader(2);
            writer.Write("layout");
            writer.Write(type.IsMap ? "map" : "array");
            writer.Write("members");
            writer.WriteArrayHeader(type.Members.Count);
            foreach (var member in type.Members)
            {
                writer.WriteMapHeader(4);
                writer.Write("name");
                writer.Write(member.Name);
                writer.Write("key");
                if (member.StringKey is not null)
                    writer.Write(member.StringKey);
                else
                    writer.Write(member.IntKey ?? 0);
                writer.Write("type");
                writer.Write(member.Type);
                writer.Write("required");
                writer.Write(member.IsRequired);
            }
        }
    }

    /// <summary>Writes a default value as a plain MessagePack value; an enum as its number, anything else unknown as nil.</summary>
    private static void WriteConstant(ref MessagePackWriter writer, object? value)
    {
        switch (value)
        {
            case string text: writer.Write(text); break;
            case bool flag: writer.Write(flag); break;
            case char c: writer.Write(c.ToString()); break;
            case double d: writer.Write(d); break;
            case float f: writer.Write(f); break;
            case decimal m: writer.Write((double)m); break;
            case ulong u: writer.Write(u); break;
            case Enum e: writer.Write(Convert.ToInt64(e, System.Globalization.CultureInfo.InvariantCulture)); break;
            case IConvertible number when number.GetTypeCode() is >= TypeCode.SByte and <= TypeCode.Int64:
                writer.Write(number.ToInt64(System.Globalization.CultureInfo.InvariantCulture));
                break;
            default: writer.WriteNil(); break;
        }
    }

    /// <summary>Reads a <c>$methods</c> result; unknown map keys are skipped so the shape can grow.</summary>
    internal static IReadOnlyList<FunctionDescriptor> ReadDescriptors(ref MessagePackReader reader)
    {
        var count = reader.ReadArrayHeader();
        var list = new List<FunctionDescriptor>(count);
        for (var i = 0; i < count; i++)
        {
            string name = "", returns = "object";
            string? fingerprint = null, contract = null, signature = null;
            var parameters = new List<ParameterDescriptor>();
            IReadOnlyList<ObjectTypeDescriptor> objectTypes = [];
            var fields = reader.ReadMapHeader();
            for (var f = 0; f < fields; f++)
            {
                switch (reader.ReadString())
                {
                    case "name": name = reader.ReadString() ?? ""; break;
                    case "returns": returns = reader.ReadString() ?? "object"; break;
                    case "fingerprint": fingerprint = reader.ReadString(); break;
                    case "contract": contract = reader.ReadString(); break;
                    case "signature": signature = reader.ReadString(); break;
                    case "types" when reader.NextMessagePackType == MessagePackType.Map: objectTypes = ReadObjectTypes(ref reader); break;
                    case "params":
                        var n = reader.ReadArrayHeader();
                        for (var p = 0; p < n; p++)
                            parameters.Add(ReadParameter(ref reader));
                        break;
                    default: KwargsCodec.SkipValue(ref reader); break;
                }
            }

            list.Add(new FunctionDescriptor(name, parameters, returns, fingerprint) { Contract = contract, Signature = signature, ObjectTypes = objectTypes });
        }

        return list;
    }

    /// <summary>Reads <c>types</c>; unknown keys are skipped, and a member whose key is neither an integer nor a string is left out.</summary>
    private static List<ObjectTypeDescriptor> ReadObjectTypes(ref MessagePackReader reader)
    {
        var count = reader.ReadMapHeader();
        var types = new List<ObjectTypeDescriptor>(Math.Min(count, 64));
        for (var t = 0; t < count; t++)
        {
            var name = reader.ReadString() ?? "";
            var isMap = false;
            var members = new List<ObjectMemberDescriptor>();
            var fields = reader.ReadMapHeader();
            for (var f = 0; f < fields; f++)
            {
                switch (reader.ReadString())
                {
                    case "layout": isMap = reader.ReadString() == "map"; break;
                    case "members":
                        var n = reader.ReadArrayHeader();
                        for (var m = 0; m < n; m++)
                        {
                            if (ReadMember(ref reader) is { } member)
                                members.Add(member);
                        }

                        break;
                    default: KwargsCodec.SkipValue(ref reader); break;
                }
            }

            types.Add(new ObjectTypeDescriptor(name, isMap, members));
        }

        return types;
    }

    private static ObjectMemberDescriptor? ReadMember(ref MessagePackReader reader)
    {
        string name = "", type = "object";
        var required = false;
        int? intKey = null;
        string? stringKey = null;
        var fields = reader.ReadMapHeader();
        for (var f = 0; f < fields; f++)
        {
            switch (reader.ReadString())
            {
                case "name": name = reader.ReadString() ?? ""; break;
                case "type": type = reader.ReadString() ?? "object"; break;
                case "required": required = reader.ReadBoolean(); break;
                case "key" when reader.NextMessagePackType == MessagePackType.Integer: intKey = reader.ReadInt32(); break;
                case "key" when reader.NextMessagePackType == MessagePackType.String: stringKey = reader.ReadString(); break;
                default: KwargsCodec.SkipValue(ref reader); break;
            }
        }

        return intKey is null && stringKey is null ? null : new ObjectMemberDescriptor(name, type, required) { IntKey = intKey, StringKey = stringKey };
    }

    private static ParameterDescriptor ReadParameter(ref MessagePackReader reader)
    {
        string name = "", type = "object";
        var optional = false;
        object? defaultValue = null;
        var fields = reader.ReadMapHeader();
        for (var f = 0; f < fields; f++)
        {
            switch (reader.ReadString())
            {
                case "name": name = reader.ReadString() ?? ""; break;
                case "type": type = reader.ReadString() ?? "object"; break;
                case "optional": optional = reader.ReadBoolean(); break;
                case "default" when reader.NextMessagePackType is not (MessagePackType.Array or MessagePackType.Map):
                    defaultValue = KwargsCodec.ReadValue(ref reader, s_plainValues);
                    break;
                default: KwargsCodec.SkipValue(ref reader); break;
            }
        }

        return new ParameterDescriptor(name, type, optional) { DefaultValue = defaultValue };
    }
}
