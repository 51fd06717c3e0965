namespace P2PLocal.Rpc.Benchmarks.Arms;

/// <summary>
/// The benchmark's contract, served and called through generated code. Its wire names differ from the dynamic
/// arm's <c>Greet</c>/<c>Echo</c> because the allocation split serves both on one bob.
/// </summary>
[P2PService]
public interface IBenchService
{
    [P2PFunction(Name = "TypedGreet")]
    ValueTask<string> GreetAsync(string name);

    [P2PFunction(Name = "TypedEcho")]
    ValueTask<Payload> EchoAsync(Payload payload);
}

public sealed class BenchService : IBenchService
{
    public ValueTask<string> GreetAsync(string name) => ValueTask.FromResult("Hello, " + name);

    public ValueTask<Payload> EchoAsync(Payload payload) => ValueTask.FromResult(payload);
}

/// <summary><c>node.Peers.Get&lt;IBenchService&gt;("bob").GreetAsync(name)</c>: generated proxy and dispatcher.</summary>
public sealed class TypedArm : P2PArm
{
    public override string Name => "typed";

    protected override void Register(Node bob) => TypedArms.Register!(bob);

    public override Task<ICaller> CreateCallerAsync() => Task.FromResult<ICaller>(new Caller(Alice.Peers.Get<IBenchService>("bob")));

    private sealed class Caller(IBenchService bob) : ICaller
    {
        public ValueTask<string> GreetAsync(string name) => bob.GreetAsync(name);

        public ValueTask<Payload> EchoAsync(Payload payload) => bob.EchoAsync(payload);
    }
}
