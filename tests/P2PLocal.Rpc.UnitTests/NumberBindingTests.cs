using MessagePack;
using P2PLocal.Rpc.Dispatch;
using static P2PLocal.Rpc.UnitTests.Bytes;

namespace P2PLocal.Rpc.UnitTests;

/// <summary>
/// How generated dispatchers bind numbers sent by other languages: integers in range, integral floats, and nothing
/// that would lose a digit. Each refusal is checked by its message, at both sides of each boundary.
/// </summary>
public class NumberBindingTests
{
    private delegate T Read<T>(ref MessagePackReader reader);

    private static T Bind<T>(Read<T> read, Write write)
    {
        var reader = new MessagePackReader(Pack(write));
        var value = read(ref reader);
        Assert.True(reader.End);
        return value;
    }

    private static string Refused<T>(Read<T> read, Write write) =>
        Assert.Throws<OverflowException>(() => Bind(read, write)).Message;

    [Fact]
    public void Each_integer_width_takes_its_range_and_refuses_one_past_each_end()
    {
        Assert.Equal(sbyte.MinValue, Bind(GeneratedKwargs.ReadSByte, (ref MessagePackWriter w) => w.Write(-128)));
        Assert.Equal(sbyte.MaxValue, Bind(GeneratedKwargs.ReadSByte, (ref MessagePackWriter w) => w.Write(127)));
        Assert.Equal("128 is out of range (-128 to 127).", Refused(GeneratedKwargs.ReadSByte, (ref MessagePackWriter w) => w.Write(128)));
        Assert.Equal("-129 is out of range (-128 to 127).", Refused(GeneratedKwargs.ReadSByte, (ref MessagePackWriter w) => w.Write(-129)));

        Assert.Equal(byte.MaxValue, Bind(GeneratedKwargs.ReadByte, (ref MessagePackWriter w) => w.Write(255)));
        Assert.Equal(byte.MinValue, Bind(GeneratedKwargs.ReadByte, (ref MessagePackWriter w) => w.Write(0)));
        Assert.Equal("256 is out of range (0 to 255).", Refused(GeneratedKwargs.ReadByte, (ref MessagePackWriter w) => w.Write(256)));
        Assert.Equal("-1 is out of range (0 to 255).", Refused(GeneratedKwargs.ReadByte, (ref MessagePackWriter w) => w.Write(-1)));

        Assert.Equal(short.MinValue, Bind(GeneratedKwargs.ReadInt16, (ref MessagePackWriter w) => w.Write(-32768)));
        Assert.Equal(short.MaxValue, Bind(GeneratedKwargs.ReadInt16, (ref MessagePackWriter w) => w.Write(32767)));
        Assert.Equal("32768 is out of range (-32768 to 32767).", Refused(GeneratedKwargs.ReadInt16, (ref MessagePackWriter w) => w.Write(32768)));

        Assert.Equal(ushort.MaxValue, Bind(GeneratedKwargs.ReadUInt16, (ref MessagePackWriter w) => w.Write(65535)));
        Assert.Equal("65536 is out of range (0 to 65535).", Refused(GeneratedKwargs.ReadUInt16, (ref MessagePackWriter w) => w.Write(65536)));

        Assert.Equal(int.MinValue, Bind(GeneratedKwargs.ReadInt32, (ref MessagePackWriter w) => w.Write(int.MinValue)));
        Assert.Equal(int.MaxValue, Bind(GeneratedKwargs.ReadInt32, (ref MessagePackWriter w) => w.Write(int.MaxValue)));
        Assert.Equal("2147483648 is out of range (-2147483648 to 2147483647).", Refused(GeneratedKwargs.ReadInt32, (ref MessagePackWriter w) => w.Write(2147483648L)));
        Assert.Equal("-2147483649 is out of range (-2147483648 to 2147483647).", Refused(GeneratedKwargs.ReadInt32, (ref MessagePackWriter w) => w.Write(-2147483649L)));

        Assert.Equal(uint.MaxValue, Bind(GeneratedKwargs.ReadUInt32, (ref MessagePackWriter w) => w.Write(uint.MaxValue)));
        Assert.Equal("4294967296 is out of range (0 to 4294967295).", Refused(GeneratedKwargs.ReadUInt32, (ref MessagePackWriter w) => w.Write(4294967296L)));

        Assert.Equal(long.MinValue, Bind(GeneratedKwargs.ReadInt64, (ref MessagePackWriter w) => w.Write(long.MinValue)));
        Assert.Equal(long.MaxValue, Bind(GeneratedKwargs.ReadInt64, (ref MessagePackWriter w) => w.Write(long.MaxValue)));
    }

    [Fact]
    public void Integral_floats_bind_to_integers_and_fractions_do_not()
    {
        Assert.Equal(2, Bind(GeneratedKwargs.ReadInt32, (ref MessagePackWriter w) => w.Write(2.0)));
        Assert.Equal(-7, Bind(GeneratedKwargs.ReadSByte, (ref MessagePackWriter w) => w.Write(-7.0f)));
        Assert.Equal(long.MinValue, Bind(GeneratedKwargs.ReadInt64, (ref MessagePackWriter w) => w.Write(-9223372036854775808.0)));
        Assert.Equal(9223372036854774784L, Bind(GeneratedKwargs.ReadInt64, (ref MessagePackWriter w) => w.Write(9223372036854774784.0))); // the largest double below 2^63

        Assert.Equal("2.5 is not an integer, so it does not bind to an integer parameter without loss.", Refused(GeneratedKwargs.ReadInt32, (ref MessagePackWriter w) => w.Write(2.5)));
        Assert.Equal("-0.5 is not an integer, so it does not bind to an integer parameter without loss.", Refused(GeneratedKwargs.ReadInt64, (ref MessagePackWriter w) => w.Write(-0.5)));
        Assert.Equal("NaN is not an integer, so it does not bind to an integer parameter without loss.", Refused(GeneratedKwargs.ReadInt64, (ref MessagePackWriter w) => w.Write(double.NaN)));
        Assert.Equal("Infinity is not an integer, so it does not bind to an integer parameter without loss.", Refused(GeneratedKwargs.ReadInt64, (ref MessagePackWriter w) => w.Write(double.PositiveInfinity)));
        Assert.Equal("9.223372036854776E+18 is out of the range of long.", Refused(GeneratedKwargs.ReadInt64, (ref MessagePackWriter w) => w.Write(9223372036854775808.0)));
        Assert.Equal("-9.223372036854778E+18 is out of the range of long.", Refused(GeneratedKwargs.ReadInt64, (ref MessagePackWriter w) => w.Write(-9223372036854777856.0)));
        Assert.Equal("1E+19 is out of the range of integer.", Refused(GeneratedKwargs.ReadInt32, (ref MessagePackWriter w) => w.Write(1e19)));
        Assert.Equal("10000000000 is out of range (-2147483648 to 2147483647).", Refused(GeneratedKwargs.ReadInt32, (ref MessagePackWriter w) => w.Write(1e10)));
    }

    [Fact]
    public void Unsigned_64_bit_takes_the_whole_range_and_integral_floats_below_2_to_the_64()
    {
        Assert.Equal(ulong.MaxValue, Bind(GeneratedKwargs.ReadUInt64, (ref MessagePackWriter w) => w.Write(ulong.MaxValue)));
        Assert.Equal(3UL, Bind(GeneratedKwargs.ReadUInt64, (ref MessagePackWriter w) => w.Write(3.0)));
        Assert.Equal(0UL, Bind(GeneratedKwargs.ReadUInt64, (ref MessagePackWriter w) => w.Write(0.0)));
        Assert.Equal(18446744073709549568UL, Bind(GeneratedKwargs.ReadUInt64, (ref MessagePackWriter w) => w.Write(18446744073709549568.0)));
        Assert.Equal("1.8446744073709552E+19 is out of the range of ulong.", Refused(GeneratedKwargs.ReadUInt64, (ref MessagePackWriter w) => w.Write(18446744073709551616.0)));
        Assert.Equal("-1 is out of the range of ulong.", Refused(GeneratedKwargs.ReadUInt64, (ref MessagePackWriter w) => w.Write(-1.0)));
        Assert.Equal("0.5 is not an integer, so it does not bind to an integer parameter without loss.", Refused(GeneratedKwargs.ReadUInt64, (ref MessagePackWriter w) => w.Write(0.5)));
        Assert.Throws<OverflowException>(() => Bind(GeneratedKwargs.ReadUInt64, (ref MessagePackWriter w) => w.Write(-1)));
    }

    [Fact]
    public void Doubles_take_floats_and_only_integers_they_hold_exactly()
    {
        Assert.Equal(1.25, Bind(GeneratedKwargs.ReadDouble, (ref MessagePackWriter w) => w.Write(1.25)));
        Assert.Equal(1.5, Bind(GeneratedKwargs.ReadDouble, (ref MessagePackWriter w) => w.Write(1.5f)));
        Assert.Equal(9007199254740992.0, Bind(GeneratedKwargs.ReadDouble, (ref MessagePackWriter w) => w.Write(9007199254740992L)));
        Assert.Equal(-9007199254740992.0, Bind(GeneratedKwargs.ReadDouble, (ref MessagePackWriter w) => w.Write(-9007199254740992L)));
        Assert.Equal("The integer 9007199254740993 cannot be held exactly by a double.", Refused(GeneratedKwargs.ReadDouble, (ref MessagePackWriter w) => w.WriteInt64(9007199254740993L)));
        Assert.Equal("The integer -9007199254740993 cannot be held exactly by a double.", Refused(GeneratedKwargs.ReadDouble, (ref MessagePackWriter w) => w.Write(-9007199254740993L)));
        Assert.Equal("The integer 9223372036854775807 cannot be held exactly by a double.", Refused(GeneratedKwargs.ReadDouble, (ref MessagePackWriter w) => w.WriteInt64(long.MaxValue)));
        Assert.Equal(long.MinValue, Bind(GeneratedKwargs.ReadDouble, (ref MessagePackWriter w) => w.WriteInt64(long.MinValue)));

        Assert.Equal(9223372036854775808.0, Bind(GeneratedKwargs.ReadDouble, (ref MessagePackWriter w) => w.WriteUInt64(9223372036854775808UL)));
        Assert.Equal(18446744073709549568.0, Bind(GeneratedKwargs.ReadDouble, (ref MessagePackWriter w) => w.WriteUInt64(18446744073709549568UL)));
        Assert.Equal("The integer 18446744073709551615 cannot be held exactly by a double.", Refused(GeneratedKwargs.ReadDouble, (ref MessagePackWriter w) => w.WriteUInt64(ulong.MaxValue)));
        Assert.Equal("The integer 9223372036854775809 cannot be held exactly by a double.", Refused(GeneratedKwargs.ReadDouble, (ref MessagePackWriter w) => w.WriteUInt64(9223372036854775809UL)));
        Assert.Equal(5.0, Bind(GeneratedKwargs.ReadDouble, (ref MessagePackWriter w) => w.WriteUInt64(5)));
    }

    [Fact]
    public void Floats_take_floats_in_range_and_only_integers_they_hold_exactly()
    {
        Assert.Equal(1.5f, Bind(GeneratedKwargs.ReadSingle, (ref MessagePackWriter w) => w.Write(1.5)));
        Assert.Equal(0.1f, Bind(GeneratedKwargs.ReadSingle, (ref MessagePackWriter w) => w.Write(0.1))); // rounded as a cast would
        Assert.Equal(float.PositiveInfinity, Bind(GeneratedKwargs.ReadSingle, (ref MessagePackWriter w) => w.Write(double.PositiveInfinity)));
        Assert.Equal(float.MaxValue, Bind(GeneratedKwargs.ReadSingle, (ref MessagePackWriter w) => w.Write((double)float.MaxValue)));
        Assert.Equal("1E+39 is beyond the range of a float.", Refused(GeneratedKwargs.ReadSingle, (ref MessagePackWriter w) => w.Write(1e39)));
        Assert.Equal("-1E+39 is beyond the range of a float.", Refused(GeneratedKwargs.ReadSingle, (ref MessagePackWriter w) => w.Write(-1e39)));

        Assert.Equal(16777216f, Bind(GeneratedKwargs.ReadSingle, (ref MessagePackWriter w) => w.Write(16777216)));
        Assert.Equal(-16777216f, Bind(GeneratedKwargs.ReadSingle, (ref MessagePackWriter w) => w.Write(-16777216)));
        Assert.Equal("The integer 16777217 cannot be held exactly by a float.", Refused(GeneratedKwargs.ReadSingle, (ref MessagePackWriter w) => w.Write(16777217)));
        Assert.Equal("The integer 9223372036854775807 cannot be held exactly by a float.", Refused(GeneratedKwargs.ReadSingle, (ref MessagePackWriter w) => w.WriteInt64(long.MaxValue)));
        Assert.Equal(-9223372036854775808f, Bind(GeneratedKwargs.ReadSingle, (ref MessagePackWriter w) => w.WriteInt64(long.MinValue)));
    }

    [Fact]
    public void Kwargs_maps_and_keys_are_checked_with_the_function_named()
    {
        var reader = new MessagePackReader(Pack((ref MessagePackWriter w) => { w.WriteMapHeader(2); w.Write("k\u00e9y"); }));
        Assert.Equal(2, GeneratedKwargs.ReadMapHeader(ref reader, "f"));
        Assert.Equal("k\u00e9y"u8.ToArray(), GeneratedKwargs.ReadKey(ref reader, "f").ToArray());

        Assert.Equal("The kwargs of 'f' must be a map from parameter name to value, not Array.",
            Assert.Throws<InvalidKwargsException>(() => { var r = new MessagePackReader(Pack((ref MessagePackWriter w) => w.WriteArrayHeader(0))); GeneratedKwargs.ReadMapHeader(ref r, "f"); }).Message);
        Assert.Equal("The kwargs keys of 'f' must be strings, not Integer.",
            Assert.Throws<InvalidKwargsException>(() => { var r = new MessagePackReader(Pack((ref MessagePackWriter w) => w.Write(1))); GeneratedKwargs.ReadKey(ref r, "f"); }).Message);
        Assert.Equal("The kwargs keys of 'f' must be strings, not Nil.",
            Assert.Throws<InvalidKwargsException>(() => { var r = new MessagePackReader(Pack((ref MessagePackWriter w) => w.WriteNil())); GeneratedKwargs.ReadKey(ref r, "f"); }).Message);
    }

    [Fact]
    public void A_key_split_across_segments_is_read_whole_and_nil_reads_as_no_bytes()
    {
        var bytes = Pack((ref MessagePackWriter w) => w.Write("abcdef"));
        var reader = new MessagePackReader(Split(bytes, 3));
        Assert.Equal("abcdef"u8.ToArray(), GeneratedKwargs.ReadKey(ref reader, "f").ToArray());

        var nil = new MessagePackReader(Pack((ref MessagePackWriter w) => w.WriteNil()));
        Assert.True(GeneratedKwargs.ReadUtf8(ref nil).IsEmpty);
        Assert.True(nil.End);
    }

    [Fact]
    public void Kwargs_errors_name_the_function_the_kwarg_and_the_signature()
    {
        Assert.Equal("'f' got an unexpected kwarg 'z\u00e9'; it takes (a: int).", GeneratedKwargs.Unknown("f", "z\u00e9"u8, "(a: int)").Message);
        Assert.Equal("'f' got kwarg 'a' twice.", GeneratedKwargs.Duplicate("f", "a").Message);
        Assert.Equal("'f' is missing the required kwarg 'a'; it takes (a: int).", GeneratedKwargs.Missing("f", "a", "(a: int)").Message);
        var cause = new EndOfStreamException("cut");
        var malformed = GeneratedKwargs.Malformed("f", cause);
        Assert.Equal("The kwargs of 'f' are not valid MessagePack: cut", malformed.Message);
        Assert.Same(cause, malformed.InnerException);
        var bad = GeneratedKwargs.BadValue("f", "a", "int", cause);
        Assert.Equal("Kwarg 'a' of 'f' is not a valid int: cut", bad.Message);
        Assert.Same(cause, bad.InnerException);
        Assert.Throws<ArgumentNullException>(() => GeneratedKwargs.Malformed("f", null!));
        Assert.Throws<ArgumentNullException>(() => GeneratedKwargs.BadValue("f", "a", "int", null!));
        Assert.Throws<ArgumentNullException>(() => GeneratedKwargs.CannotSerialize("m", "T", null!));
    }

    [Fact]
    public void Read_errors_are_told_apart_from_handler_errors()
    {
        foreach (var error in new Exception[] { new MessagePackSerializationException(), new EndOfStreamException(), new InvalidOperationException(),
                     new OverflowException(), new InsufficientExecutionStackException(), new ArgumentException(), new ArgumentOutOfRangeException() })
            Assert.True(GeneratedKwargs.IsReadError(error), error.GetType().Name);
        foreach (var error in new Exception[] { new IOException(), new KeyNotFoundException(), new TimeoutException(), new FormatException() })
            Assert.False(GeneratedKwargs.IsReadError(error), error.GetType().Name);
    }

    [Fact]
    public void Formatter_errors_are_a_missing_formatter_not_data_that_does_not_fit()
    {
        Assert.True(GeneratedKwargs.IsFormatterError(new FormatterNotRegisteredException("x")));
        Assert.True(GeneratedKwargs.IsFormatterError(new TypeInitializationException("T", null)));
        Assert.True(GeneratedKwargs.IsFormatterError(new NotSupportedException()));
        Assert.True(GeneratedKwargs.IsFormatterError(new MessagePackSerializationException("x", new NotSupportedException())));
        Assert.True(GeneratedKwargs.IsFormatterError(new MessagePackSerializationException("x", new MessagePackSerializationException("y", new TypeInitializationException("T", null)))));
        Assert.False(GeneratedKwargs.IsFormatterError(new MessagePackSerializationException("x")));
        Assert.False(GeneratedKwargs.IsFormatterError(new MessagePackSerializationException("x", new EndOfStreamException())));
        Assert.False(GeneratedKwargs.IsFormatterError(new EndOfStreamException("x", new NotSupportedException())));
        Assert.False(GeneratedKwargs.IsFormatterError(new ArgumentException()));
    }

    [Fact]
    public void Write_errors_exclude_cancellation_memory_and_our_own_errors()
    {
        Assert.True(GeneratedKwargs.IsWriteError(new InvalidOperationException()));
        Assert.True(GeneratedKwargs.IsWriteError(new MessagePackSerializationException()));
        Assert.False(GeneratedKwargs.IsWriteError(new OperationCanceledException()));
        Assert.False(GeneratedKwargs.IsWriteError(new TaskCanceledException()));
        Assert.False(GeneratedKwargs.IsWriteError(new InsufficientMemoryException())); // an OutOfMemoryException
        Assert.False(GeneratedKwargs.IsWriteError(new PeerBusyException()));
    }

    [Fact]
    public void A_serialization_failure_names_the_member_the_type_and_the_fix_and_unwraps_the_cause()
    {
        var cause = new NotSupportedException("no formatter");
        var wrapped = new MessagePackSerializationException("outer", cause);
        var error = GeneratedKwargs.CannotSerialize("kwarg 'p' of 'Move'", "Shop.Point", wrapped);
        Assert.Equal("The kwarg 'p' of 'Move' has type Shop.Point, which cannot be serialized here: no formatter " +
            "Mark the type [MessagePackObject] with [Key] on each member (or [Union] on an interface), or register a formatter in NodeOptions.SerializerOptions.", error.Message);
        Assert.Equal("Shop.Point", error.TypeName);
        Assert.Equal("kwarg 'p' of 'Move'", error.Member);
        Assert.Same(wrapped, error.InnerException);

        Assert.Contains("here: init failed ", GeneratedKwargs.CannotSerialize("m", "T", new TypeInitializationException("T", new InvalidOperationException("init failed"))).Message, StringComparison.Ordinal);
        Assert.Contains("here: plain ", GeneratedKwargs.CannotSerialize("m", "T", new InvalidOperationException("plain", new IOException("inner"))).Message, StringComparison.Ordinal);
        Assert.Contains("here: outer only ", GeneratedKwargs.CannotSerialize("m", "T", new MessagePackSerializationException("outer only")).Message, StringComparison.Ordinal);
    }
}
