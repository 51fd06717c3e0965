using System.Runtime.CompilerServices;
using P2PLocal.Rpc.Benchmarks.Typed;

namespace P2PLocal.Rpc.Benchmarks.Arms;

/// <summary>
/// The generated proxy: <c>await alice.Peers.Get&lt;IGreeter&gt;("bob").GreetAsync(name)</c>. The async form, so the
/// in-flight loops do not block pool threads; on the wire it is the same <c>Greet</c> request as the other P2P arms.
/// </summary>
public class TypedArm : P2PArm
{
    public override string Name => "typed";

    protected override void Register(Node bob) => TypedArms.Register(bob);

    public override Task<ICaller> CreateCallerAsync() => Task.FromResult<ICaller>(new Caller(Alice.Peers.Get<IGreeter>("bob")));

    private sealed class Caller(IGreeter greeter) : ICaller
    {
        public ValueTask<string> GreetAsync(string name) => greeter.GreetAsync(name);

        public ValueTask<Payload> EchoAsync(Payload payload) => greeter.EchoAsync(payload);
    }
}

/// <summary>The typed arm with bob's functions opted in to run inline on his read loop (<c>[P2PFunction(Inline = true)]</c>).
/// With <c>completions</c>, alice also resumes her callers on her read loop (<see cref="NodeOptions.InlineCompletions"/>).</summary>
public sealed class TypedInlineArm(bool completions) : P2PArm
{
    public override string Name => completions ? "typed-inline" : "typed-inline-hop";

    protected override NodeOptions AliceOptions(NodeOptions options) => new(options) { InlineCompletions = completions };

    protected override void Register(Node bob) => bob.Register(new InlineGreeter());

    public override Task<ICaller> CreateCallerAsync() => Task.FromResult<ICaller>(new Caller(Alice.Peers.Get<IInlineGreeter>("bob")));

    private sealed class Caller(IInlineGreeter greeter) : ICaller
    {
        public ValueTask<string> GreetAsync(string name) => greeter.GreetAsync(name);

        public ValueTask<Payload> EchoAsync(Payload payload) => greeter.EchoAsync(payload);
    }
}

/// <summary>The typed arm's hooks into the run: its factory, bob's registration, the first-call and split callers.</summary>
public static class TypedArms
{
    public static IEnumerable<Func<IArm>> Factories => [() => new TypedArm(), () => new TypedInlineArm(completions: false), () => new TypedInlineArm(completions: true)];

    /// <summary>The first call a freshly started node makes in the discovery figures.</summary>
    public static Func<Node, Task<string>>? FirstCall => static async node => await node.Peers.Get<IGreeter>("bob").GreetAsync("bench");

    /// <summary>Registers the typed service on bob, beside the dynamic functions (it serves Greet and Echo itself).</summary>
    public static Action<Node> Register => static bob => bob.Register(new Greeter());

    /// <summary>Typed Greet calls for the allocation split, by arm name.</summary>
    public static IEnumerable<KeyValuePair<string, Func<Node, Func<ValueTask>>>> SplitCallers =>
    [
        new("typed", static alice =>
        {
            var greeter = alice.Peers.Get<IGreeter>(AllocationSplit.TypedBob);
            return [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))] async ValueTask () => await greeter.GreetAsync("bench");
        }),
    ];
}
