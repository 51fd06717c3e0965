using MessagePack;
using P2PLocal.Rpc.Protocol;

namespace P2PLocal.Rpc.Tests;

/// <summary>The one "this input is malformed" predicate (issue 9), which five readers had each spelled differently.</summary>
public sealed class MalformedInputTests
{
    public static TheoryData<Exception> Malformed() =>
    [
        new MessagePackSerializationException("bad"),
        new EndOfStreamException(),
        new InvalidDataException(),
        new InvalidOperationException(), // a token of the wrong type
        new OverflowException(),
        new ArgumentOutOfRangeException("length"), // a 32-bit length of 2^31 or more
        new ArgumentException("duplicate key"),
        new InsufficientExecutionStackException(),
    ];

    public static TheoryData<Exception> NotMalformed() =>
    [
        new OperationCanceledException(),
        new IOException("connection reset"),
        new KeyNotFoundException(),
        new UnauthorizedAccessException(),
        new TimeoutException(),
    ];

    [Theory]
    [MemberData(nameof(Malformed))]
    public void ReadErrorsAreMalformed(Exception error)
    {
        Assert.True(MalformedInput.IsMalformed(error));
        Assert.True(Dispatch.GeneratedKwargs.IsReadError(error)); // generated dispatchers ask the same question
    }

    [Theory]
    [MemberData(nameof(NotMalformed))]
    public void OtherFailuresAreNot(Exception error) => Assert.False(MalformedInput.IsMalformed(error));

    [Fact]
    public void AReplyOfTheWrongTypeIsReportedAsUnreadable()
    {
        // Before the one predicate, the reply reader missed InvalidOperationException, which MessagePack throws for a
        // token of the wrong type in some readers; the predicate now covers every reader alike.
        Assert.True(MalformedInput.IsMalformed(new InvalidOperationException("Unexpected msgpack code")));
    }
}
