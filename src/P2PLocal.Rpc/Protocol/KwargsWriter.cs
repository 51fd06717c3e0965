using MessagePack;

// A public type of the Dispatch namespace since it shipped; it lives in Protocol, the layer that writes requests and reads replies.
namespace P2PLocal.Rpc.Dispatch;

/// <summary>Writes the kwargs of one call as a single MessagePack map, straight into the request frame.</summary>
/// <typeparam name="TState">The arguments, usually a value tuple, so that no closure is allocated.</typeparam>
public delegate void KwargsWriter<in TState>(ref MessagePackWriter writer, TState state, MessagePackSerializerOptions options);
