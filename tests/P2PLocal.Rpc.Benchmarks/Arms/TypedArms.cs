namespace P2PLocal.Rpc.Benchmarks.Arms;

/// <summary>The typed arm and its hooks into the discovery and allocation-split measurements.</summary>
public static class TypedArms
{
    public static IEnumerable<Func<IArm>> Factories => [() => new TypedArm()];

    /// <summary>A typed first call: it includes the proxy's one-off contract check ($methods) before Greet.</summary>
    public static Func<Node, Task<string>>? FirstCall => static node => node.Peers.Get<IBenchService>("bob").GreetAsync("bench").AsTask();

    /// <summary>Registers the typed service on bob.</summary>
    public static Action<Node>? Register => static bob => bob.Register<IBenchService>(new BenchService());

    /// <summary>Typed Greet calls for the allocation split, by arm name.</summary>
    public static IEnumerable<KeyValuePair<string, Func<Node, Func<ValueTask>>>> SplitCallers =>
    [
        new("typed", static alice =>
        {
            var bob = alice.Peers.Get<IBenchService>("bob");
            return async () => await bob.GreetAsync("bench");
        }),
    ];
}
