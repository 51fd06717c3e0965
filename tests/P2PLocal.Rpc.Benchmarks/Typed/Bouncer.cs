namespace P2PLocal.Rpc.Benchmarks.Typed;

/// <summary>Sends bytes back as they came: the payload-size figures of the cost growth table.</summary>
[P2PService]
public partial class Bouncer
{
    [P2PFunction(Name = "Bounce")]
    public ValueTask<byte[]> BounceAsync(byte[] data) => new(data);
}
