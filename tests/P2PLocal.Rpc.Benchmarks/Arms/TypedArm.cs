namespace P2PLocal.Rpc.Benchmarks.Arms;

/// <summary>The typed arm joins once the source generator lands; until then there is none.</summary>
public static class TypedArms
{
    public static IEnumerable<Func<IArm>> Factories => [];

    public static Func<Node, Task<string>>? FirstCall => null;

    /// <summary>Registers the typed service on bob, when there is one.</summary>
    public static Action<Node>? Register => null;

    /// <summary>Typed Greet calls for the allocation split, by arm name.</summary>
    public static IEnumerable<KeyValuePair<string, Func<Node, Func<ValueTask>>>> SplitCallers => [];
}
