using System.Runtime.CompilerServices;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Testing;
using static P2PLocal.Rpc.UnitTests.NodeFacade.FacadeNodes;

namespace P2PLocal.Rpc.UnitTests.NodeFacade;

/// <summary>The streams facade (Node.Streams.cs): registering producers, reading streams, the checks made now and at the first item.</summary>
[Collection(NodeFacadeGroup.Name)]
public sealed class NodeFacadeStreamTests
{
    private static async IAsyncEnumerable<object?> Count(long to, Action<CancellationToken>? seeToken = null, [EnumeratorCancellation] CancellationToken token = default)
    {
        seeToken?.Invoke(token);
        for (var i = 1L; i <= to; i++)
        {
            await Task.Yield();
            token.ThrowIfCancellationRequested();
            yield return i;
        }
    }

    private static async Task<List<T>> ReadAllAsync<T>(IAsyncEnumerable<T> items)
    {
        var list = new List<T>();
        await foreach (var item in items)
            list.Add(item);
        return list;
    }

    [Fact]
    public async Task A_stream_returns_its_items_in_order_as_plain_values_or_typed()
    {
        await using var pair = await PairAsync();
        pair.Bob.RegisterStream("count", (kwargs, token) => Count((long)kwargs["to"]!, token: token));

        Assert.Equal(new object?[] { 1L, 2L, 3L }, await ReadAllAsync(pair.Alice.RequestStreamAsync("bob", "count", Kwargs(("to", 3)))).Within());
        Assert.Equal([1, 2, 3, 4], await ReadAllAsync(pair.Alice.RequestStreamAsync<int>("bob", "count", Kwargs(("to", 4)))).Within());
        Assert.Equal("stream<object>", Assert.Single(pair.Bob.Functions).ReturnType);
    }

    [Fact]
    public async Task A_producer_registered_with_the_caller_context_learns_who_reads()
    {
        await using var pair = await PairAsync();
        CallContext? reader = null;
        pair.Bob.RegisterStream("who", (_, context, token) =>
        {
            reader = context;
            return Count(1, token: token);
        });

        Assert.Equal(new object?[] { 1L }, await ReadAllAsync(pair.Alice.RequestStreamAsync("bob", "who")).Within());
        Assert.Equal("alice", reader!.PeerName);
    }

    [Fact]
    public async Task Stream_arguments_are_checked_when_the_stream_is_asked_for_and_the_peer_when_it_is_read()
    {
        await using var node = Node.Create(Options("reader"));

        Assert.Throws<ArgumentNullException>(() => node.RequestStreamAsync(null!, "f"));
        Assert.Equal("target", Assert.Throws<ArgumentException>(() => node.RequestStreamAsync("", "f")).ParamName);
        Assert.Equal("function", Assert.Throws<ArgumentException>(() => node.RequestStreamAsync<int>("bob", "")).ParamName);
        Assert.Throws<ArgumentNullException>(() => node.RequestStreamAsync<int>("bob", null!));

        var stream = node.RequestStreamAsync("bob", "f"); // nothing is checked against the peer table yet
        var early = await Assert.ThrowsAsync<InvalidOperationException>(() => ReadAllAsync(stream));
        Assert.Contains("has not started", early.Message, StringComparison.Ordinal);
        await node.StartAsync();
        await Assert.ThrowsAsync<PeerNotFoundException>(() => ReadAllAsync(node.RequestStreamAsync("bob", "f")));
        await Assert.ThrowsAsync<PeerNotFoundException>(() => ReadAllAsync(node.RequestStreamAsync("reader", "f")));
    }

    [Fact]
    public async Task Registering_a_stream_refuses_a_null_handler_an_empty_or_reserved_name_and_a_taken_one()
    {
        await using var node = Node.Create(Options("bob"));
        node.Register("f", _ => null);

        Assert.Equal("handler", Assert.Throws<ArgumentNullException>(() => node.RegisterStream("s", (Func<IReadOnlyDictionary<string, object?>, CancellationToken, IAsyncEnumerable<object?>>)null!)).ParamName);
        Assert.Equal("handler", Assert.Throws<ArgumentNullException>(() => node.RegisterStream("s", (Func<IReadOnlyDictionary<string, object?>, CallContext, CancellationToken, IAsyncEnumerable<object?>>)null!)).ParamName);
        Assert.Equal("function", Assert.Throws<ArgumentException>(() => node.RegisterStream("", (_, token) => Count(1, token: token))).ParamName);
        Assert.Throws<ArgumentNullException>(() => node.RegisterStream(null!, (_, _, token) => Count(1, token: token)));
        Assert.Throws<ArgumentException>(() => node.RegisterStream("$s", (_, token) => Count(1, token: token)));
        Assert.Throws<ArgumentException>(() => node.RegisterStream("f", (_, token) => Count(1, token: token)));
        Assert.Equal(["f"], node.Functions.Select(f => f.Name));
    }

    [Fact]
    public async Task Leaving_a_stream_early_cancels_the_producer_and_the_callers_token_ends_it()
    {
        await using var pair = await PairAsync();
        var producerToken = new TaskCompletionSource<CancellationToken>(TaskCreationOptions.RunContinuationsAsynchronously);
        pair.Bob.RegisterStream("endless", (_, token) => Count(long.MaxValue, t => producerToken.TrySetResult(t), token));

        await foreach (var item in pair.Alice.RequestStreamAsync("bob", "endless").WithCancellation(default))
        {
            Assert.Equal(1L, item);
            break;
        }

        var token = await producerToken.Task.Within();
        await Patience.Until(() => token.IsCancellationRequested);

        using var stop = new CancellationTokenSource();
        var read = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var _ in pair.Alice.RequestStreamAsync("bob", "endless", cancellationToken: stop.Token))
            {
                if (++read == 2)
                    await stop.CancelAsync();
            }
        }).Within();
        Assert.Equal(2, read);
    }

    [Fact]
    public async Task A_legacy_peer_cannot_stream_and_nothing_is_sent_to_it()
    {
        await using var node = await Node.StartAsync(new NodeOptions(Options("streamer")) { LegacyInterop = true });
        await using var python = new FakeXmlRpcPeer(_ => FakeXmlRpcPeer.Value("<int>1</int>"));
        IntroduceLegacy(node, "py", python.Port);

        var error = await Assert.ThrowsAsync<NotSupportedException>(() => ReadAllAsync(node.RequestStreamAsync("py", "f")));

        Assert.Equal("Peer 'py' is a Python p2p-local node (XML-RPC), which cannot stream results; 'f' was not sent.", error.Message);
        Assert.Empty(python.Requests);
    }
}
