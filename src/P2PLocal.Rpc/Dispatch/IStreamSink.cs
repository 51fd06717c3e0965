using P2PLocal.Rpc.Framing;

namespace P2PLocal.Rpc.Dispatch;

/// <summary>
/// Where the items of one stream request go (the serving connection implements it): <see cref="GeneratedStreams"/>
/// waits for credit, builds each item into a frame, and sends it.
/// </summary>
/// <remarks>One producer calls the members in turn; the implementation takes credit from the connection's read loop.</remarks>
internal interface IStreamSink
{
    /// <summary>Waits until the caller has room for one more item and the connection for its bytes.</summary>
    /// <exception cref="OperationCanceledException">The request's token fired.</exception>
    ValueTask WaitForCreditAsync(CancellationToken cancellationToken);

    /// <summary>A frame with the item header written: write exactly one value, the item, then <see cref="Send"/> it.</summary>
    FrameBuffer BeginItem();

    /// <summary>Sends a frame made by <see cref="BeginItem"/>, at the latest on the next <see cref="Flush"/>; the sink owns it from here.</summary>
    /// <exception cref="FrameTooLargeException">The item is above the caller's frame limit; the frame is disposed.</exception>
    void Send(FrameBuffer frame);

    /// <summary>Sends every item given to <see cref="Send"/> so far. Call before waiting for anything, and at the end.</summary>
    void Flush();
}
