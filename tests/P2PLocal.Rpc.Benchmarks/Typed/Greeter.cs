namespace P2PLocal.Rpc.Benchmarks.Typed;

/// <summary>
/// The typed service: the generator adds <c>IGreeter</c>, its dispatcher and its proxy. Async methods with the
/// wire names the other arms call, so every P2P arm sends the same bytes.
/// </summary>
[P2PService]
public partial class Greeter
{
    [P2PFunction(Name = "Greet")]
    public ValueTask<string> GreetAsync(string name) => new("Hello, " + name);

    [P2PFunction(Name = "Echo")]
    public ValueTask<Payload> EchoAsync(Payload payload) => new(payload);
}

/// <summary>
/// <see cref="Greeter"/> with both functions opted in to run on bob's read loop (<c>Inline = true</c>, issue 16):
/// they return at once, so the thread hop per call buys nothing.
/// </summary>
[P2PService]
public partial class InlineGreeter
{
    [P2PFunction(Name = "Greet", Inline = true)]
    public ValueTask<string> GreetAsync(string name) => new("Hello, " + name);

    [P2PFunction(Name = "Echo", Inline = true)]
    public ValueTask<Payload> EchoAsync(Payload payload) => new(payload);
}
