using MessagePack;

namespace P2PLocal.Rpc.Protocol;

/// <summary>
/// The one answer to "did this fail because the bytes a peer sent are malformed?", for every reader of untrusted
/// MessagePack: replies, kwargs, generated formatters, request extras, TLS hello extensions. A malformed input is the
/// sender's fault and is reported as such (an error reply, a refused value, a closed connection); anything else is a
/// bug or a failure of this side and propagates.
/// </summary>
internal static class MalformedInput
{
    /// <summary>
    /// True for what MessagePack readers and formatters throw on bad data: <see cref="MessagePackSerializationException"/>,
    /// <see cref="EndOfStreamException"/> (truncated), <see cref="InvalidDataException"/> (our own protocol checks),
    /// <see cref="InvalidOperationException"/> (a token of the wrong type), <see cref="OverflowException"/> (a number out of
    /// range), <see cref="ArgumentException"/> (<see cref="MessagePackReader"/> reads a 32-bit length of 2^31 or more as
    /// negative; a timestamp out of <see cref="DateTime"/>'s range) and <see cref="InsufficientExecutionStackException"/> (nesting).
    /// </summary>
    public static bool IsMalformed(Exception error) =>
        error is MessagePackSerializationException or EndOfStreamException or InvalidDataException or InvalidOperationException
            or OverflowException or ArgumentException or InsufficientExecutionStackException;
}
