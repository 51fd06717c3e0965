using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Protocol;
using P2PLocal.Rpc.Server;
using P2PLocal.Rpc.Testing;
using static P2PLocal.Rpc.UnitTests.NodeFacade.FacadeNodes;

namespace P2PLocal.Rpc.UnitTests.NodeFacade;

/// <summary>The registration rules of the facade: names, handlers, dispatchers, services, and what the node lists and finds.</summary>
[Collection(NodeFacadeGroup.Name)]
public sealed class NodeFacadeRegistrationTests
{
    [Fact]
    public async Task Every_register_form_refuses_a_null_handler_or_an_empty_name()
    {
        await using var node = Node.Create(Options("reg"));

        Assert.Equal("handler", Assert.Throws<ArgumentNullException>(() => node.Register("f", (Func<IReadOnlyDictionary<string, object?>, object?>)null!)).ParamName);
        Assert.Equal("handler", Assert.Throws<ArgumentNullException>(() => node.Register("f", (Func<IReadOnlyDictionary<string, object?>, CancellationToken, ValueTask<object?>>)null!)).ParamName);
        Assert.Equal("handler", Assert.Throws<ArgumentNullException>(() => node.Register("f", (Func<IReadOnlyDictionary<string, object?>, CallContext, CancellationToken, ValueTask<object?>>)null!)).ParamName);
        Assert.Equal("dispatcher", Assert.Throws<ArgumentNullException>(() => node.Register((IServiceDispatcher)null!)).ParamName);
        Assert.Equal("function", Assert.Throws<ArgumentNullException>(() => node.Register(null!, _ => null)).ParamName);
        Assert.Equal("function", Assert.Throws<ArgumentException>(() => node.Register("", _ => null)).ParamName);
        Assert.Equal("function", Assert.Throws<ArgumentException>(() => node.Register("", (_, _) => default)).ParamName);
        Assert.Empty(node.Functions);
    }

    [Fact]
    public async Task Names_starting_with_a_dollar_are_reserved_and_a_name_is_served_once()
    {
        await using var node = Node.Create(Options("bob"));
        node.Register("f", _ => null);

        var reserved = Assert.Throws<ArgumentException>(() => node.Register("$methods", _ => null));
        Assert.StartsWith("'$methods' is not a valid function name: names must be non-empty and must not start with '$'.", reserved.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => node.Register("$x", (_, _, _) => default));
        var duplicate = Assert.Throws<ArgumentException>(() => node.Register("f", _ => null));
        Assert.StartsWith("Node 'bob' already has a function 'f'.", duplicate.Message, StringComparison.Ordinal);
        Assert.Equal("dispatcher", duplicate.ParamName);
        var emptyInDispatcher = Assert.Throws<ArgumentException>(() => node.Register(new FixedAnswers("x", "")));
        Assert.StartsWith("'' is not a valid function name", emptyInDispatcher.Message, StringComparison.Ordinal);
        Assert.Equal(["f"], node.Functions.Select(f => f.Name));
    }

    [Fact]
    public async Task A_dispatcher_with_one_taken_name_registers_nothing()
    {
        await using var node = Node.Create(Options("bob"));
        node.Register("g", _ => null);

        Assert.Throws<ArgumentException>(() => node.Register(new FixedAnswers("x", "a", "g")));
        Assert.Throws<ArgumentException>(() => node.Register(new FixedAnswers("x", "b", "b")));

        Assert.Equal(["g"], node.Functions.Select(f => f.Name));
        Assert.Null(((IRequestHost)node).FindFunction("a"));
        Assert.Null(((IRequestHost)node).FindFunction("b"));
    }

    [Fact]
    public async Task Every_register_form_returns_the_node_for_chaining()
    {
        await using var node = Node.Create(Options("chain"));

        Assert.Same(node, node.Register("a", _ => null));
        Assert.Same(node, node.Register("b", (_, _) => default));
        Assert.Same(node, node.Register("c", (_, _, _) => default));
        Assert.Same(node, node.Register(new FixedAnswers("x", "d")));
        Assert.Same(node, node.RegisterStream("e", (_, _) => AsyncEnumerable.Empty<object?>()));
        Assert.Same(node, node.RegisterStream("f", (_, _, _) => AsyncEnumerable.Empty<object?>()));
        Assert.Equal(["a", "b", "c", "d", "e", "f"], node.Functions.Select(f => f.Name));
    }

    [Fact]
    public async Task Functions_are_listed_in_ordinal_order_each_under_the_dispatcher_that_serves_it_now()
    {
        await using var node = Node.Create(Options("list"));
        var two = new FixedAnswers("first", "g", "f");
        node.Register(two).Register("B", _ => null).Register("a", _ => null);
        Assert.Equal(["B", "a", "f", "g"], node.Functions.Select(f => f.Name));

        Assert.True(node.Unregister("f"));
        Assert.False(node.Unregister("f"));
        Assert.False(node.Unregister("never"));
        Assert.Equal(["B", "a", "g"], node.Functions.Select(f => f.Name));

        node.Register("f", _ => "second");
        Assert.Equal(["B", "a", "f", "g"], node.Functions.Select(f => f.Name));
        Assert.Equal("object", node.Functions.Single(f => f.Name == "f").ReturnType);
        IRequestHost host = node;
        Assert.Same(two, host.FindFunction("g"));
        Assert.NotSame(two, host.FindFunction("f"));
    }

    [Fact]
    public async Task The_methods_listing_is_built_in_and_lists_what_is_registered()
    {
        await using var pair = await PairAsync();
        IRequestHost host = pair.Bob;
        var builtIn = host.FindFunction(Messages.MethodsFunction);
        Assert.NotNull(builtIn);
        Assert.Null(host.FindFunction("nothing"));

        pair.Bob.Register("late", _ => null);

        Assert.Equal(["late"], await pair.Alice.GetMethodsAsync("bob").Within());
    }

    [Fact]
    public async Task Handlers_get_the_kwargs_the_token_and_who_is_calling()
    {
        await using var pair = await PairAsync();
        CallContext? seen = null;
        var tokenSeen = false;
        pair.Bob.Register("ctx", (kwargs, context, token) =>
        {
            seen = context;
            tokenSeen = token.CanBeCanceled;
            return new ValueTask<object?>(kwargs["v"]);
        });
        pair.Bob.Register("async", (kwargs, token) => new ValueTask<object?>(token.CanBeCanceled ? kwargs["v"] : "no token"));

        Assert.Equal(7L, await pair.Alice.RequestAsync("bob", "ctx", Kwargs(("v", 7))).Within());
        Assert.Equal("x", await pair.Alice.RequestAsync("bob", "async", Kwargs(("v", "x"))).Within());

        Assert.Equal(("alice", pair.Alice.InstanceId), (seen!.PeerName, seen.InstanceId));
        Assert.True(tokenSeen);
    }

    [Fact]
    public async Task A_service_registers_through_its_dispatcher_and_one_without_is_refused_with_the_fix()
    {
        await using var node = Node.Create(Options("svc"));
        ServiceRegistry.AddDispatcher<IFacadeProbeService>(_ => new FixedAnswers("probe", "probe.ping"));

        Assert.Equal("service", Assert.Throws<ArgumentNullException>(() => node.Register<IFacadeProbeService>(null!)).ParamName);
        Assert.Same(node, node.Register<IFacadeProbeService>(new ProbeService()));
        Assert.Same(node, node.Register(new HandWritten()));
        var none = Assert.Throws<InvalidOperationException>(() => node.Register(new NotAService()));

        Assert.Equal(["hand.written", "probe.ping"], node.Functions.Select(f => f.Name));
        Assert.StartsWith($"No generated dispatcher for '{typeof(NotAService)}' or '{typeof(NotAService)}'. Mark the class", none.Message, StringComparison.Ordinal);
        Assert.Contains("node.Register<IMyService>(implementation)", none.Message, StringComparison.Ordinal);
    }

    public interface IFacadeProbeService;

    private sealed class ProbeService : IFacadeProbeService;

    private sealed class NotAService;

    /// <summary>A hand-written dispatcher passed as its own type: binds to <c>Register&lt;TService&gt;</c>.</summary>
    private sealed class HandWritten : IServiceDispatcher
    {
        public IReadOnlyList<FunctionDescriptor> Functions { get; } = [FunctionDescriptor.Dynamic("hand.written")];

        public ValueTask InvokeAsync(FunctionCall request) => default;
    }
}
