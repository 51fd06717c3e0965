using System.Buffers;
using MessagePack;
using P2PLocal.Rpc.Dispatch;

namespace P2PLocal.Rpc.Tests;

/// <summary>The <c>$methods</c> shape (PROTOCOL.md, "Built-in functions" and "Object values"): what is written, and what a reader skips.</summary>
public class MethodsDescriptorTests
{
    private static readonly ObjectTypeDescriptor s_point = new("Geo.Point", false,
        [new ObjectMemberDescriptor("X", "double", false) { IntKey = 0 }, new("Y", "double", false) { IntKey = 1 }]);

    private static readonly ObjectTypeDescriptor s_report = new("Geo.Report", true,
        [new ObjectMemberDescriptor("Label", "string", true) { StringKey = "label" }, new("At", "Geo.Point", false) { StringKey = "at" }]);

    private static byte[] Write(params FunctionDescriptor[] functions)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(buffer);
        BuiltInFunctions.WriteDescriptors(ref writer, functions);
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    private static IReadOnlyList<FunctionDescriptor> Read(byte[] bytes)
    {
        var reader = new MessagePackReader(bytes);
        return BuiltInFunctions.ReadDescriptors(ref reader);
    }

    [Fact]
    public void Object_types_travel_with_their_layout_keys_member_types_and_required_members()
    {
        var report = new FunctionDescriptor("Report", [new ParameterDescriptor("at", "Geo.Point", false)], "Geo.Report", "0123456789abcdef")
        {
            Contract = "Geo.IGeo",
            Signature = "Report(at:Geo.Point,)->Geo.Report;",
            ObjectTypes = [s_point, s_report],
        };

        var read = Assert.Single(Read(Write(report)));

        Assert.Equal(["Geo.Point", "Geo.Report"], read.ObjectTypes.Select(t => t.Name));
        Assert.False(read.ObjectTypes[0].IsMap);
        Assert.Equal(s_point.Members, read.ObjectTypes[0].Members);
        Assert.True(read.ObjectTypes[1].IsMap);
        Assert.Equal(s_report.Members, read.ObjectTypes[1].Members);
        Assert.Equal(report.Signature, read.Signature);
    }

    [Fact]
    public void A_function_without_object_types_is_written_as_before_without_a_types_key()
    {
        var add = new FunctionDescriptor("Add", [new ParameterDescriptor("a", "int", false)], "int", "0123456789abcdef") { Contract = "C.I", Signature = "Add(a:int,)->int;" };

        var reader = new MessagePackReader(Write(add, FunctionDescriptor.Dynamic("echo")));

        Assert.Equal(2, reader.ReadArrayHeader());
        Assert.Equal(6, reader.ReadMapHeader()); // name, params, returns, fingerprint, contract, signature
        for (var i = 0; i < 6; i++)
        {
            Assert.NotEqual("types", reader.ReadString());
            reader.Skip();
        }

        Assert.Equal(4, reader.ReadMapHeader()); // a dynamic function: name, params, returns, fingerprint
    }

    [Fact]
    public void A_reader_skips_keys_it_does_not_know_at_every_level_and_members_whose_key_it_cannot_use()
    {
        var bytes = Pack((ref MessagePackWriter w) =>
        {
            w.WriteArrayHeader(1);
            w.WriteMapHeader(4);
            w.Write("name");
            w.Write("F");
            w.Write("future");
            w.WriteArrayHeader(1);
            w.Write(1);
            w.Write("types");
            w.WriteMapHeader(2);
            w.Write("Geo.Point");
            w.WriteMapHeader(3);
            w.Write("layout");
            w.Write("array");
            w.Write("since");
            w.WriteMapHeader(1);
            w.Write("v");
            w.Write(2);
            w.Write("members");
            w.WriteArrayHeader(3);
            Member(ref w, key: 0, extra: true);
            w.WriteMapHeader(2); // a key of another kind (a float): left out
            w.Write("name");
            w.Write("Odd");
            w.Write("key");
            w.Write(1.5);
            Member(ref w, key: 2, extra: false);
            w.Write("Geo.Empty");
            w.WriteMapHeader(0);
            w.Write("signature");
            w.Write("F()->void;");
        });

        var function = Assert.Single(Read(bytes));

        Assert.Equal("F()->void;", function.Signature);
        var point = function.ObjectTypes[0];
        Assert.Equal([0, 2], point.Members.Select(m => m.IntKey!.Value));
        Assert.All(point.Members, m => Assert.Equal(("M", "int", true), (m.Name, m.Type, m.IsRequired)));
        Assert.Equal(("Geo.Empty", false, 0), (function.ObjectTypes[1].Name, function.ObjectTypes[1].IsMap, function.ObjectTypes[1].Members.Count));

        static void Member(ref MessagePackWriter w, int key, bool extra)
        {
            w.WriteMapHeader(extra ? 5 : 4);
            w.Write("name");
            w.Write("M");
            w.Write("key");
            w.Write(key);
            if (extra)
            {
                w.Write("default");
                w.WriteNil();
            }

            w.Write("type");
            w.Write("int");
            w.Write("required");
            w.Write(true);
        }
    }

    private delegate void Build(ref MessagePackWriter writer);

    private static byte[] Pack(Build build)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(buffer);
        build(ref writer);
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }
}
