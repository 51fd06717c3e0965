using P2PLocal.Rpc.Protocol;

namespace P2PLocal.Rpc.Tests;

/// <summary>The wire error &lt;-&gt; exception mapping (issue 9): both ways in Protocol, and the peer's name on every P2PException.</summary>
public sealed class WireErrorsTests
{
    [Theory]
    [InlineData((int)ErrorCode.MethodNotFound, typeof(MethodNotFoundException))]
    [InlineData((int)ErrorCode.InvalidKwargs, typeof(InvalidKwargsException))]
    [InlineData((int)ErrorCode.Busy, typeof(PeerBusyException))]
    [InlineData((int)ErrorCode.FrameTooLarge, typeof(FrameTooLargeException))]
    [InlineData((int)ErrorCode.ShuttingDown, typeof(PeerShuttingDownException))] // a PeerConnectionException that says the request did not run (Any<T> tries another peer)
    [InlineData((int)ErrorCode.HandlerFailed, typeof(RemoteException))]
    public void AnErrorReplyBecomesItsExceptionWithThePeersName(int code, Type expected)
    {
        var error = WireErrors.ToException((ErrorCode)code, "System.InvalidOperationException", "boom", "bob", "Greet");
        Assert.IsType(expected, error);
        Assert.Equal("bob", ((P2PException)error).PeerName);
    }

    [Fact]
    public void ACancelledReplyIsACancellation() =>
        Assert.IsType<OperationCanceledException>(WireErrors.ToException(ErrorCode.Canceled, "", "", "bob", "Greet"));

    [Fact]
    public void AHandlerFailureTravelsBackAsTheSameCode()
    {
        // Server side, then the caller's side: what the client reads back names the code the server sent.
        foreach (var failure in new Exception[] { new InvalidKwargsException("x"), new FrameTooLargeException("x"), new InvalidOperationException("x") })
        {
            var (code, type, message) = WireErrors.FromException(failure, "Greet", CancellationToken.None);
            var back = WireErrors.ToException(code, type, message, "bob", "Greet");
            Assert.Equal(code == ErrorCode.FrameTooLarge ? null : code, WireErrors.CodeOf(back));
        }
    }

    [Fact]
    public void ACancellationCountsOnlyWhenTheRequestsOwnTokenFired()
    {
        using var cts = new CancellationTokenSource();
        Assert.Equal(ErrorCode.HandlerFailed, WireErrors.FromException(new OperationCanceledException(), "f", cts.Token).Code);
        cts.Cancel();
        Assert.Equal(ErrorCode.Canceled, WireErrors.FromException(new OperationCanceledException(), "f", cts.Token).Code);
    }

    [Fact]
    public void ExceptionsOfOneNameCarryItOnTheBase()
    {
        P2PException notFound = new PeerNotFoundException("x") { PeerName = "carol" };
        Assert.Equal("carol", notFound.PeerName);
        Assert.Equal("carol", ((PeerNotFoundException)notFound).PeerName);
    }
}
