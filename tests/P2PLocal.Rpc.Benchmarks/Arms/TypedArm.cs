namespace P2PLocal.Rpc.Benchmarks.Arms;

/// <summary>The typed arm joins once the source generator lands; until then there is none.</summary>
public static class TypedArms
{
    public static IEnumerable<Func<IArm>> Factories => [];

    public static Func<Node, Task<string>>? FirstCall => null;
}
