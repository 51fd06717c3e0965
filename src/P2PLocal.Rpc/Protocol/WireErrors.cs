namespace P2PLocal.Rpc.Protocol;

/// <summary>
/// The wire error &lt;-&gt; exception mapping, both ways, in one place: the exception a caller sees for an error
/// message (<see cref="ToException"/>), the error a server sends for a failed handler (<see cref="FromException"/>),
/// and the status names spans and metrics report (<see cref="StatusName"/>).
/// </summary>
/// <remarks>Thread-safe (stateless).</remarks>
internal static class WireErrors
{
    /// <summary>The exception a caller sees for an error reply (also for the faults of legacy XML-RPC peers).</summary>
    public static Exception ToException(ErrorCode code, string type, string message, string peerName, string function) => code switch
    {
        ErrorCode.MethodNotFound => new MethodNotFoundException(message) { Function = function, PeerName = peerName },
        ErrorCode.InvalidKwargs => new InvalidKwargsException($"'{peerName}'.{function}: {message}") { RemoteType = type, RemoteMessage = message, PeerName = peerName },
        ErrorCode.Busy => new PeerBusyException(message) { PeerName = peerName },
        ErrorCode.FrameTooLarge => new FrameTooLargeException(message) { PeerName = peerName },
        ErrorCode.ShuttingDown => new PeerShuttingDownException($"Peer '{peerName}' is shutting down.") { PeerName = peerName }, // not run: Any<T> tries another peer
        ErrorCode.Canceled => new OperationCanceledException($"Peer '{peerName}' cancelled '{function}'."),
        _ => new RemoteException($"'{peerName}'.{function} failed: {type}: {message}") { RemoteType = type, RemoteMessage = message, PeerName = peerName },
    };

    /// <summary>
    /// The error a server answers a failed handler of <paramref name="function"/> with: cancelled (when the request's
    /// own token fired), frame too large (its result), invalid kwargs, or the handler's failure with its type's name.
    /// </summary>
    public static (ErrorCode Code, string Type, string Message) FromException(Exception failure, string function, CancellationToken cancellationToken) => failure switch
    {
        OperationCanceledException when cancellationToken.IsCancellationRequested => (ErrorCode.Canceled, nameof(OperationCanceledException), "The request was cancelled."),
        FrameTooLargeException => (ErrorCode.FrameTooLarge, nameof(FrameTooLargeException), $"The result of '{function}' is too large: {failure.Message}"),
        InvalidKwargsException => (ErrorCode.InvalidKwargs, nameof(InvalidKwargsException), failure.Message),
        StreamShapeException => (ErrorCode.MethodNotFound, "MethodNotFound", failure.Message),
        _ => (ErrorCode.HandlerFailed, failure.GetType().FullName ?? failure.GetType().Name, failure.Message),
    };

    /// <summary>The error code a peer answered with, read back from the exception <see cref="ToException"/> made; null for a local failure.</summary>
    public static ErrorCode? CodeOf(Exception failure) => failure switch
    {
        MethodNotFoundException => ErrorCode.MethodNotFound,
        InvalidKwargsException => ErrorCode.InvalidKwargs,
        RemoteException => ErrorCode.HandlerFailed,
        PeerBusyException => ErrorCode.Busy,
        _ => null,
    };

    /// <summary>The <c>rpc.response.status_code</c> value of a wire error code: its name in upper snake case.</summary>
    public static string StatusName(ErrorCode code) => code switch
    {
        ErrorCode.HandlerFailed => "HANDLER_FAILED",
        ErrorCode.MethodNotFound => "METHOD_NOT_FOUND",
        ErrorCode.InvalidKwargs => "INVALID_KWARGS",
        ErrorCode.Busy => "BUSY",
        ErrorCode.Canceled => "CANCELLED",
        ErrorCode.FrameTooLarge => "FRAME_TOO_LARGE",
        ErrorCode.ShuttingDown => "SHUTTING_DOWN",
        ErrorCode.BadRequest => "BAD_REQUEST",
        _ => "UNKNOWN",
    };
}
