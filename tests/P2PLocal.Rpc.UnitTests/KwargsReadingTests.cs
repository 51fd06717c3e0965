using System.Buffers;
using MessagePack;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Protocol;
using static P2PLocal.Rpc.UnitTests.Bytes;

namespace P2PLocal.Rpc.UnitTests;

/// <summary>What the dynamic side reads from kwargs and values, what it refuses, and the decode budget.</summary>
public class KwargsReadingTests
{
    internal static readonly MessagePackSerializerOptions s_node =
        MessagePackSerializerOptions.Standard.WithSecurity(new UntrustedInputSecurity(maxKwargsElements: 10));

    private static readonly MessagePackSerializerOptions s_untrusted = MessagePackSerializerOptions.Standard.WithSecurity(MessagePackSecurity.UntrustedData);

    private static object? Value(Write write, MessagePackSerializerOptions? options = null)
    {
        var reader = new MessagePackReader(Pack(write));
        var value = KwargsCodec.ReadValue(ref reader, options ?? s_untrusted);
        Assert.True(reader.End);
        return value;
    }

    private static Dictionary<string, object?> Kwargs(Write write, MessagePackSerializerOptions? options = null) =>
        KwargsCodec.ReadKwargs(Pack(write), options ?? s_untrusted);

    private static string Refused(Write write, MessagePackSerializerOptions? options = null) =>
        Assert.Throws<InvalidKwargsException>(() => Kwargs(write, options)).Message;

    [Fact]
    public void Each_MessagePack_type_reads_as_its_plain_dotnet_value()
    {
        Assert.Null(Value((ref MessagePackWriter w) => w.WriteNil()));
        Assert.Equal(true, Value((ref MessagePackWriter w) => w.Write(true)));
        Assert.Equal(-5L, Value((ref MessagePackWriter w) => w.Write(-5)));
        Assert.Equal(200L, Value((ref MessagePackWriter w) => w.Write((byte)200)));
        Assert.Equal(long.MaxValue, Value((ref MessagePackWriter w) => w.WriteUInt64(long.MaxValue)));
        Assert.Equal((ulong)long.MaxValue + 1, Value((ref MessagePackWriter w) => w.WriteUInt64((ulong)long.MaxValue + 1)));
        Assert.Equal(ulong.MaxValue, Value((ref MessagePackWriter w) => w.WriteUInt64(ulong.MaxValue)));
        Assert.Equal(1.5, Value((ref MessagePackWriter w) => w.Write(1.5)));
        Assert.Equal(2.5, Value((ref MessagePackWriter w) => w.Write(2.5f)));
        Assert.Equal("h\u00e9", Value((ref MessagePackWriter w) => w.Write("h\u00e9")));
        Assert.Equal(new byte[] { 1, 2 }, Value((ref MessagePackWriter w) => w.Write(new byte[] { 1, 2 })));
        var time = new DateTime(2026, 11, 27, 12, 0, 0, DateTimeKind.Utc);
        Assert.Equal(time, Value((ref MessagePackWriter w) => w.Write(time)));
        Assert.Equal(new object?[] { 1L, "a", null }, Value((ref MessagePackWriter w) => { w.WriteArrayHeader(3); w.Write(1); w.Write("a"); w.WriteNil(); }));
    }

    [Fact]
    public void Maps_with_string_keys_read_as_string_dictionaries_and_other_maps_as_object_dictionaries()
    {
        var strings = Assert.IsType<Dictionary<string, object?>>(Value((ref MessagePackWriter w) => { w.WriteMapHeader(2); w.Write("a"); w.Write(1); w.Write("b"); w.WriteNil(); }));
        Assert.Equal(new Dictionary<string, object?> { ["a"] = 1L, ["b"] = null }, strings);

        var mixed = Assert.IsType<Dictionary<object, object?>>(Value((ref MessagePackWriter w) => { w.WriteMapHeader(2); w.Write("a"); w.Write(1); w.Write(2); w.Write("two"); }));
        Assert.Equal("two", mixed[2L]);
        Assert.Equal(1L, mixed["a"]);

        var empty = Assert.IsType<Dictionary<string, object?>>(Value((ref MessagePackWriter w) => w.WriteMapHeader(0)));
        Assert.Empty(empty);
    }

    [Fact]
    public void A_nil_or_repeated_key_in_a_nested_map_is_refused()
    {
        var nil = Assert.Throws<MessagePackSerializationException>(() => Value((ref MessagePackWriter w) => { w.WriteMapHeader(1); w.WriteNil(); w.Write(1); }));
        Assert.Equal("A map key is nil.", nil.Message);
        var twice = Assert.Throws<MessagePackSerializationException>(() => Value((ref MessagePackWriter w) => { w.WriteMapHeader(2); w.Write(1); w.Write(1); w.Write(1); w.Write(2); }));
        Assert.Equal("Map key '1' appears twice.", twice.Message);
        Assert.Contains("appears twice", Refused((ref MessagePackWriter w) => { w.WriteMapHeader(1); w.Write("m"); w.WriteMapHeader(2); w.Write("x"); w.Write(1); w.Write("x"); w.Write(2); }), StringComparison.Ordinal);
    }

    [Fact]
    public void Kwargs_read_as_a_dictionary_of_their_values()
    {
        var kwargs = Kwargs((ref MessagePackWriter w) => { w.WriteMapHeader(2); w.Write("name"); w.Write("Ann"); w.Write("n"); w.Write(3); });
        Assert.Equal(new Dictionary<string, object?> { ["name"] = "Ann", ["n"] = 3L }, kwargs);
        Assert.Empty(Kwargs((ref MessagePackWriter w) => w.WriteMapHeader(0)));
    }

    [Fact]
    public void Kwargs_that_are_not_a_string_keyed_map_are_refused_with_the_reason()
    {
        Assert.Equal("Kwargs must be a map from parameter name to value, not Array.", Refused((ref MessagePackWriter w) => w.WriteArrayHeader(0)));
        Assert.Equal("Kwargs keys must be strings; key 1 is Integer.", Refused((ref MessagePackWriter w) => { w.WriteMapHeader(2); w.Write("a"); w.Write(1); w.Write(7); w.Write(2); }));
        Assert.Equal("Kwarg 'a' appears twice.", Refused((ref MessagePackWriter w) => { w.WriteMapHeader(2); w.Write("a"); w.Write(1); w.Write("a"); w.Write(2); }));
        Assert.StartsWith("The kwargs are not valid MessagePack: ", Refused((ref MessagePackWriter w) => { w.WriteMapHeader(1); w.Write("a"); w.WriteExtensionFormat(new ExtensionResult(42, new byte[] { 1 })); }), StringComparison.Ordinal);
        Assert.Contains("MessagePack extension type 42 is not supported.", Refused((ref MessagePackWriter w) => { w.WriteMapHeader(1); w.Write("a"); w.WriteExtensionFormat(new ExtensionResult(42, new byte[] { 1 })); }), StringComparison.Ordinal);
    }

    [Fact]
    public void A_timestamp_out_of_DateTime_range_is_invalid_kwargs_not_a_crash()
    {
        // Timestamp 96 whose seconds are far past year 9999.
        var message = Refused((ref MessagePackWriter w) =>
        {
            w.WriteMapHeader(1);
            w.Write("t");
            w.WriteExtensionFormat(new ExtensionResult(-1, new byte[] { 0, 0, 0, 0, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF }));
        });
        Assert.StartsWith("The kwargs are not valid MessagePack: ", message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_budget_counts_every_value_and_refuses_one_more_than_the_limit()
    {
        // A map of 4 entries is 1 + 8 = 9 values; 5 entries are 11, over a budget of 10.
        Assert.Equal(4, Kwargs(KwargsOf(4), s_node).Count);
        Assert.Equal(
            "The kwargs are refused: it holds more than 10 MessagePack values (NodeOptions.MaxKwargsElements of the node that reads it); send less, or raise that limit.",
            Refused(KwargsOf(5), s_node));

        // Nested containers count too: {a: [1, 2, 3, 4, 5, 6, 7]} is 1 + 1 + 1 + 7 = 10.
        Assert.Single(Kwargs(ArrayKwarg(7), s_node));
        Assert.Contains("more than 10", Refused(ArrayKwarg(8), s_node), StringComparison.Ordinal);
    }

    private static Write KwargsOf(int count) => (ref MessagePackWriter w) =>
    {
        w.WriteMapHeader(count);
        for (var i = 0; i < count; i++)
        {
            w.Write("k" + i);
            w.Write(i);
        }
    };

    private static Write ArrayKwarg(int count) => (ref MessagePackWriter w) =>
    {
        w.WriteMapHeader(1);
        w.Write("a");
        w.WriteArrayHeader(count);
        for (var i = 0; i < count; i++)
            w.Write(i);
    };

    [Fact]
    public void Scan_counts_values_and_reports_the_first_problem()
    {
        var bytes = Pack(ArrayKwarg(3));
        var reader = new MessagePackReader(bytes);
        Assert.Null(MessagePackValues.Scan(ref reader, 6, out var elements));
        Assert.Equal(6, elements);
        Assert.True(reader.End);

        reader = new MessagePackReader(bytes);
        Assert.StartsWith("it holds more than 5 MessagePack values", MessagePackValues.Scan(ref reader, 5, out elements), StringComparison.Ordinal);
        Assert.Equal(0, elements);

        var badUtf8 = Pack((ref MessagePackWriter w) => { w.WriteMapHeader(1); w.Write("a"); w.WriteString(new byte[] { 0x61, 0xFF }); });
        reader = new MessagePackReader(badUtf8);
        Assert.Equal("a string in it is not valid UTF-8", MessagePackValues.Scan(ref reader, 100, out _));
        Assert.Equal("The kwargs are refused: a string in it is not valid UTF-8.", Assert.Throws<InvalidKwargsException>(() => KwargsCodec.ReadKwargs(badUtf8, s_untrusted)).Message);
    }

    [Fact]
    public void A_header_that_promises_more_than_the_budget_fails_before_reading_the_rest()
    {
        var bytes = Pack((ref MessagePackWriter w) => { w.WriteMapHeader(1); w.Write("a"); w.WriteArrayHeader(20); for (var i = 0; i < 20; i++) w.Write(i); });
        var reader = new MessagePackReader(bytes);
        Assert.NotNull(MessagePackValues.Scan(ref reader, 10, out _));
        Assert.Equal(6, reader.Consumed); // map, key "a", array16 header: not one element of the array read

        var lying = Pack((ref MessagePackWriter w) => { w.WriteMapHeader(1); w.Write("a"); w.WriteArrayHeader(int.MaxValue); });
        Assert.StartsWith("The kwargs are not valid MessagePack: The value is truncated: ", Assert.Throws<InvalidKwargsException>(() => KwargsCodec.ReadKwargs(lying, s_node)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_string_length_of_2_GiB_or_more_is_a_truncated_value_not_an_argument_error()
    {
        var bytes = new byte[] { 0x81, 0xA1, (byte)'a', 0xDB, 0x80, 0, 0, 0, 1, 2 };
        var error = Assert.Throws<EndOfStreamException>(() =>
        {
            var reader = new MessagePackReader(bytes);
            KwargsCodec.SkipValue(ref reader);
        });
        Assert.Equal("A length header claims more bytes than the data holds.", error.Message);
        Assert.StartsWith("The kwargs are not valid MessagePack: ", Refused((ref MessagePackWriter w) => w.WriteRaw(bytes)), StringComparison.Ordinal);
    }

    [Fact]
    public void Strings_split_across_segments_are_checked_for_UTF8_too()
    {
        var good = Pack((ref MessagePackWriter w) => w.Write("h\u00e9llo w\u00f6rld"));
        var bad = Pack((ref MessagePackWriter w) => w.WriteString(new byte[] { 0x61, 0x62, 0x63, 0xC3, 0x28, 0x64 }));
        Assert.Null(ScanSplit(good));
        Assert.Equal("a string in it is not valid UTF-8", ScanSplit(bad));

        static string? ScanSplit(byte[] bytes)
        {
            var reader = new MessagePackReader(Split(bytes, 3));
            return MessagePackValues.Scan(ref reader, 10, out _);
        }
    }

    [Fact]
    public void ReadValue_refuses_a_value_over_the_budget_and_a_truncated_one()
    {
        var big = Pack((ref MessagePackWriter w) => { w.WriteArrayHeader(20); for (var i = 0; i < 20; i++) w.Write(i); });
        var error = Assert.Throws<MessagePackSerializationException>(() =>
        {
            var reader = new MessagePackReader(big);
            KwargsCodec.ReadValue(ref reader, s_node);
        });
        Assert.StartsWith("The value is refused: it holds more than 10", error.Message, StringComparison.Ordinal);

        var truncated = Assert.Throws<MessagePackSerializationException>(() =>
        {
            var reader = new MessagePackReader(big.AsMemory(0, 5));
            KwargsCodec.ReadValue(ref reader, s_untrusted);
        });
        Assert.StartsWith("The value is truncated: ", truncated.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Skipping_a_value_does_not_check_its_strings_and_reads_past_all_of_it()
    {
        var bytes = Pack((ref MessagePackWriter w) => { w.WriteArrayHeader(2); w.WriteString(new byte[] { 0xFF }); w.Write(1); w.Write(77); });
        var reader = new MessagePackReader(bytes);
        KwargsCodec.SkipValue(ref reader);
        Assert.Equal(77, reader.ReadInt32());
    }

    [Fact]
    public void Reading_a_value_needs_options()
    {
        Assert.Throws<ArgumentNullException>(() =>
        {
            var reader = new MessagePackReader(Pack((ref MessagePackWriter w) => w.Write(1)));
            KwargsCodec.ReadValue(ref reader, null!);
        });
    }

    [Fact]
    public void A_node_security_carries_its_budget_and_its_object_key_comparer()
    {
        var security = new UntrustedInputSecurity(7);
        Assert.Equal(7, security.MaxKwargsElements);
        Assert.NotNull(security.ObjectKeys);
        Assert.True(security.HashCollisionResistant);
        Assert.Equal(7, UntrustedInputSecurity.MaxElementsOf(MessagePackSerializerOptions.Standard.WithSecurity(security)));
    }

    [Fact]
    public void Options_without_a_node_budget_use_the_default_budget()
    {
        Assert.Equal(NodeOptions.DefaultMaxKwargsElements, UntrustedInputSecurity.MaxElementsOf(s_untrusted));
        Assert.Equal(10, UntrustedInputSecurity.MaxElementsOf(s_node));
        // The budget survives the copies MessagePack makes of the security (here: a depth change).
        Assert.Equal(10, UntrustedInputSecurity.MaxElementsOf(s_node.WithSecurity(s_node.Security.WithMaximumObjectGraphDepth(20))));
    }

    [Fact]
    public void Depth_is_limited_for_untrusted_data_and_a_skip_does_not_recurse()
    {
        var deep = Pack((ref MessagePackWriter w) =>
        {
            w.WriteMapHeader(1);
            w.Write("a");
            for (var i = 0; i < 600; i++)
                w.WriteArrayHeader(1);
            w.WriteNil();
        });
        Assert.StartsWith("The kwargs are not valid MessagePack", Refused((ref MessagePackWriter w) => w.WriteRaw(deep)), StringComparison.Ordinal);
        var reader = new MessagePackReader(deep);
        KwargsCodec.SkipValue(ref reader);
        Assert.True(reader.End);

        var deepMaps = Pack((ref MessagePackWriter w) =>
        {
            w.WriteMapHeader(1);
            w.Write("a");
            for (var i = 0; i < 600; i++)
            {
                w.WriteMapHeader(1);
                w.Write("k");
            }

            w.WriteNil();
        });
        Assert.StartsWith("The kwargs are not valid MessagePack", Refused((ref MessagePackWriter w) => w.WriteRaw(deepMaps)), StringComparison.Ordinal);

        // Depth is given back after each container: many shallow siblings are fine.
        var wide = Kwargs((ref MessagePackWriter w) =>
        {
            w.WriteMapHeader(1);
            w.Write("a");
            w.WriteArrayHeader(600);
            for (var i = 0; i < 600; i++)
            {
                w.WriteMapHeader(1);
                w.Write("k");
                w.WriteArrayHeader(0);
            }
        });
        Assert.Equal(600, Assert.IsType<object?[]>(wide["a"]).Length);
    }

    [Fact]
    public void Kwargs_are_written_as_one_map_and_null_as_an_empty_map()
    {
        Assert.Equal(Pack((ref MessagePackWriter w) => w.WriteMapHeader(0)), Pack((ref MessagePackWriter w) => KwargsCodec.WriteKwargs(ref w, null, s_untrusted)));

        var expected = Pack((ref MessagePackWriter w) => { w.WriteMapHeader(2); w.Write("a"); w.WriteInt32(1); w.Write("b"); w.Write("x"); }); // a boxed int keeps its width
        var dictionary = new Dictionary<string, object?> { ["a"] = 1, ["b"] = "x" };
        Assert.Equal(expected, Pack((ref MessagePackWriter w) => KwargsCodec.WriteKwargs(ref w, dictionary, s_untrusted)));
        var sorted = new SortedDictionary<string, object?> { ["a"] = 1, ["b"] = "x" };
        Assert.Equal(expected, Pack((ref MessagePackWriter w) => KwargsCodec.WriteKwargs(ref w, new ReadOnlyDictionary(sorted), s_untrusted)));
        Assert.Throws<ArgumentNullException>(() => Pack((ref MessagePackWriter w) => KwargsCodec.WriteKwargs(ref w, dictionary, null!)));
        Assert.Throws<ArgumentNullException>(() => KwargsCodec.ReadKwargs(Pack((ref MessagePackWriter w) => w.WriteMapHeader(0)), null!));
    }

    private sealed class ReadOnlyDictionary(SortedDictionary<string, object?> inner) : IReadOnlyDictionary<string, object?>
    {
        public object? this[string key] => inner[key];

        public IEnumerable<string> Keys => inner.Keys;

        public IEnumerable<object?> Values => inner.Values;

        public int Count => inner.Count;

        public bool ContainsKey(string key) => inner.ContainsKey(key);

        public IEnumerator<KeyValuePair<string, object?>> GetEnumerator() => inner.GetEnumerator();

        public bool TryGetValue(string key, out object? value) => inner.TryGetValue(key, out value);

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }

    [Fact]
    public void Object_keys_hash_alike_when_equal_and_use_the_node_comparer()
    {
        var security = (UntrustedInputSecurity)s_node.Security;
        var keys = security.ObjectKeys;
        Assert.Same(keys, UntrustedInputSecurity.ObjectKeysOf(security));
        Assert.NotSame(EqualityComparer<object>.Default, UntrustedInputSecurity.ObjectKeysOf(MessagePackSecurity.UntrustedData));
        Assert.IsType<DynamicKeyComparer>(UntrustedInputSecurity.ObjectKeysOf(MessagePackSecurity.UntrustedData));
        Assert.Same(EqualityComparer<object>.Default, UntrustedInputSecurity.ObjectKeysOf(MessagePackSecurity.TrustedData));
        Assert.Same(keys, security.GetEqualityComparer<object>());

        var time = DateTime.UnixEpoch;
        var guid = Guid.NewGuid();
        foreach (var key in new object[] { "k", 5L, 5UL, 1.5, 1.5f, time, new DateTimeOffset(time), guid, (short)3, true })
        {
            var copy = key switch { string s => new string(s.AsSpan()), _ => key };
            Assert.Equal(keys.GetHashCode(key), keys.GetHashCode(copy));
            Assert.True(keys.Equals(key, copy));
        }

        Assert.False(keys.Equals(5L, 5UL));
        Assert.Equal(0, keys.GetHashCode(null!));
        Assert.True(((System.Collections.IEqualityComparer)keys).Equals("a", "a"));
    }
}
