using MessagePack;
using P2PLocal.Rpc.Protocol;
using static P2PLocal.Rpc.UnitTests.Bytes;

namespace P2PLocal.Rpc.UnitTests;

/// <summary>Stream message shapes, the mapping between wire errors and exceptions, and what counts as malformed input.</summary>
public class ProtocolErrorTests
{
    [Fact]
    public void Stream_messages_have_their_exact_shapes()
    {
        Assert.Equal(Pack((ref MessagePackWriter w) => { w.WriteArrayHeader(5); w.Write(7); w.Write(3u); w.Write("ticks"); }),
            Pack((ref MessagePackWriter w) => StreamMessages.WriteRequestHeader(ref w, 3, "ticks", withExtras: false)));
        Assert.Equal(Pack((ref MessagePackWriter w) => { w.WriteArrayHeader(6); w.Write(7); w.Write(3u); w.Write("ticks"); }),
            Pack((ref MessagePackWriter w) => StreamMessages.WriteRequestHeader(ref w, 3, "ticks", withExtras: true)));
        Assert.Equal(Pack((ref MessagePackWriter w) => { w.WriteArrayHeader(3); w.Write(5); w.Write(4u); }),
            Pack((ref MessagePackWriter w) => StreamMessages.WriteItemHeader(ref w, 4)));
        Assert.Equal(Pack((ref MessagePackWriter w) => { w.WriteArrayHeader(3); w.Write(6); w.Write(4u); w.Write(16u); }),
            Pack((ref MessagePackWriter w) => StreamMessages.WriteCredit(ref w, 4, 16)));
        Assert.Equal(Pack((ref MessagePackWriter w) => w.Write(32u)), Pack((ref MessagePackWriter w) => StreamMessages.WriteWindow(ref w, 32)));
    }

    [Fact]
    public void Stream_readers_take_their_sizes_and_refuse_others_and_a_window_of_zero()
    {
        var id = Pack((ref MessagePackWriter w) => { w.Write(9u); w.Write(2u); });
        var reader = new MessagePackReader(id);
        Assert.Equal(9u, StreamMessages.ReadRequestId(ref reader, 5));
        reader = new MessagePackReader(id);
        Assert.Equal(9u, StreamMessages.ReadRequestId(ref reader, 6));
        reader = new MessagePackReader(id);
        Assert.Equal((9u, 2u), StreamMessages.ReadCredit(ref reader, 3));
        reader = new MessagePackReader(Pack((ref MessagePackWriter w) => w.Write(1u)));
        Assert.Equal(1u, StreamMessages.ReadWindow(ref reader));

        Assert.Equal("A stream request has 5 elements (6 with extras), not 4.", Refused(r => StreamMessages.ReadRequestId(ref r, 4)));
        Assert.Equal("A stream request has 5 elements (6 with extras), not 7.", Refused(r => StreamMessages.ReadRequestId(ref r, 7)));
        Assert.Equal("A stream credit has 3 elements, not 4.", Refused(r => StreamMessages.ReadCredit(ref r, 4)));
        Assert.Equal("A stream credit has 3 elements, not 2.", Refused(r => StreamMessages.ReadCredit(ref r, 2)));
        var zero = Assert.Throws<InvalidDataException>(() =>
        {
            var r = new MessagePackReader(Pack((ref MessagePackWriter w) => w.Write(0u)));
            StreamMessages.ReadWindow(ref r);
        });
        Assert.Equal("A stream request's window must be at least 1.", zero.Message);

        static string Refused(Func<MessagePackReader, object> read) =>
            Assert.Throws<InvalidDataException>(() => read(new MessagePackReader(Pack((ref MessagePackWriter w) => { w.Write(1u); w.Write(1u); })))).Message;
    }

    [Fact]
    public void Wire_errors_become_the_exception_of_their_code()
    {
        var notFound = Assert.IsType<MethodNotFoundException>(WireErrors.ToException(ErrorCode.MethodNotFound, "T", "no such function", "bob", "f"));
        Assert.Equal(("no such function", "f", "bob"), (notFound.Message, notFound.Function, notFound.PeerName));
        var kwargs = Assert.IsType<InvalidKwargsException>(WireErrors.ToException(ErrorCode.InvalidKwargs, "T", "bad", "bob", "f"));
        Assert.Equal(("'bob'.f: bad", "T", "bad", "bob"), (kwargs.Message, kwargs.RemoteType, kwargs.RemoteMessage, kwargs.PeerName));
        var busy = Assert.IsType<PeerBusyException>(WireErrors.ToException(ErrorCode.Busy, "T", "full", "bob", "f"));
        Assert.Equal(("full", "bob"), (busy.Message, busy.PeerName));
        var large = Assert.IsType<FrameTooLargeException>(WireErrors.ToException(ErrorCode.FrameTooLarge, "T", "big", "bob", "f"));
        Assert.Equal(("big", "bob"), (large.Message, large.PeerName));
        // A PeerConnectionException that says the request did not run (the subclass lets Any<T> send it elsewhere).
        var closing = Assert.IsType<PeerShuttingDownException>(WireErrors.ToException(ErrorCode.ShuttingDown, "T", "x", "bob", "f"));
        Assert.Equal(("Peer 'bob' is shutting down.", "bob"), (closing.Message, closing.PeerName));
        Assert.Equal("Peer 'bob' cancelled 'f'.", Assert.IsType<OperationCanceledException>(WireErrors.ToException(ErrorCode.Canceled, "T", "x", "bob", "f")).Message);
        foreach (var code in new[] { ErrorCode.HandlerFailed, ErrorCode.BadRequest, (ErrorCode)99 })
        {
            var remote = Assert.IsType<RemoteException>(WireErrors.ToException(code, "Type", "msg", "bob", "f"));
            Assert.Equal(("'bob'.f failed: Type: msg", "Type", "msg", "bob"), (remote.Message, remote.RemoteType, remote.RemoteMessage, remote.PeerName));
        }
    }

    [Fact]
    public void Handler_failures_are_sent_with_their_code_type_and_message()
    {
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.Equal((ErrorCode.Canceled, "OperationCanceledException", "The request was cancelled."),
            WireErrors.FromException(new OperationCanceledException(), "f", cancelled.Token));
        // A handler's own cancellation, with the request's token not cancelled, is a handler failure.
        Assert.Equal((ErrorCode.HandlerFailed, "System.OperationCanceledException", "mine"),
            WireErrors.FromException(new OperationCanceledException("mine"), "f", CancellationToken.None));
        Assert.Equal((ErrorCode.FrameTooLarge, "FrameTooLargeException", "The result of 'f' is too large: 9 bytes"),
            WireErrors.FromException(new FrameTooLargeException("9 bytes"), "f", CancellationToken.None));
        Assert.Equal((ErrorCode.InvalidKwargs, "InvalidKwargsException", "bad kwarg"),
            WireErrors.FromException(new InvalidKwargsException("bad kwarg"), "f", CancellationToken.None));
        Assert.Equal((ErrorCode.MethodNotFound, "MethodNotFound", "not a stream"),
            WireErrors.FromException(new StreamShapeException("not a stream"), "f", CancellationToken.None));
        Assert.Equal((ErrorCode.HandlerFailed, "System.IO.IOException", "disk"),
            WireErrors.FromException(new IOException("disk"), "f", CancellationToken.None));
    }

    [Fact]
    public void Exceptions_map_back_to_codes_and_codes_to_status_names()
    {
        Assert.Equal(ErrorCode.MethodNotFound, WireErrors.CodeOf(new MethodNotFoundException("x")));
        Assert.Equal(ErrorCode.InvalidKwargs, WireErrors.CodeOf(new InvalidKwargsException("x")));
        Assert.Equal(ErrorCode.HandlerFailed, WireErrors.CodeOf(new RemoteException("x")));
        Assert.Equal(ErrorCode.Busy, WireErrors.CodeOf(new PeerBusyException("x")));
        Assert.Null(WireErrors.CodeOf(new IOException()));

        Assert.Equal(
            ["HANDLER_FAILED", "METHOD_NOT_FOUND", "INVALID_KWARGS", "BUSY", "CANCELLED", "FRAME_TOO_LARGE", "SHUTTING_DOWN", "BAD_REQUEST", "UNKNOWN"],
            new[] { 1, 2, 3, 4, 5, 6, 7, 8, 99 }.Select(c => WireErrors.StatusName((ErrorCode)c)));
    }

    [Fact]
    public void Malformed_input_is_the_readers_errors_and_nothing_else()
    {
        foreach (var error in new Exception[] { new MessagePackSerializationException(), new EndOfStreamException(), new InvalidDataException(),
                     new InvalidOperationException(), new OverflowException(), new ArgumentException(), new ArgumentOutOfRangeException(), new InsufficientExecutionStackException() })
            Assert.True(MalformedInput.IsMalformed(error), error.GetType().Name);
        foreach (var error in new Exception[] { new IOException(), new TimeoutException(), new KeyNotFoundException(), new OperationCanceledException() })
            Assert.False(MalformedInput.IsMalformed(error), error.GetType().Name);
    }
}
