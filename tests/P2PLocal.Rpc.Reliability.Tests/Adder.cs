namespace P2PLocal.Rpc.Reliability.Tests;

/// <summary>add(a: long, b: long), served through the dispatcher the source generator emits.</summary>
[P2PService]
public partial class Adder
{
    /// <summary>The sum.</summary>
    [P2PFunction(Name = "add")]
    public long Add(long a, long b) => a + b;
}
