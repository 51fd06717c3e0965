using MessagePack;

// A public type of the Dispatch namespace since it shipped; it lives in Protocol, the layer that writes requests and reads replies.
namespace P2PLocal.Rpc.Dispatch;

/// <summary>Reads the result of one call from the reply frame.</summary>
public delegate TResult ResultReader<out TResult>(ref MessagePackReader reader, MessagePackSerializerOptions options);
