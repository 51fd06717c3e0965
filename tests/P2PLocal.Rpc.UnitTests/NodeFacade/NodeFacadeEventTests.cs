using System.Buffers;
using MessagePack;
using P2PLocal.Rpc.Protocol;
using P2PLocal.Rpc.Testing;
using static P2PLocal.Rpc.UnitTests.NodeFacade.FacadeNodes;

namespace P2PLocal.Rpc.UnitTests.NodeFacade;

/// <summary>The events facade (Node.Events.cs): the checks of publish and subscribe, the size limit at its boundary, delivery in every handler form.</summary>
[Collection(NodeFacadeGroup.Name)]
public sealed class NodeFacadeEventTests
{
    [Fact]
    public async Task Publishing_checks_the_topic_the_token_and_the_node_state()
    {
        await using var node = Node.Create(Options("pub"));

        var empty = Assert.Throws<ArgumentException>(() => { _ = node.PublishAsync("", 1); });
        Assert.Equal(("topic", "A topic must be a non-empty string. (Parameter 'topic')"), (empty.ParamName, empty.Message));
        Assert.Throws<ArgumentException>(() => { _ = node.PublishAsync<int>(null!, 1); });
        Assert.Throws<ArgumentException>(() => { _ = node.PublishAsync(new string('t', EventOptions.MaxTopicBytes + 1), 1); });
        var early = Assert.Throws<InvalidOperationException>(() => { _ = node.PublishAsync("t", 1); });
        Assert.Equal("Node 'pub' has not started: call StartAsync before publishing.", early.Message);

        await node.StartAsync();
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();
        Assert.Throws<OperationCanceledException>(() => { _ = node.PublishAsync("t", 1, cancelled.Token); });
        Assert.True(node.PublishAsync(new string('t', EventOptions.MaxTopicBytes), 1).IsCompletedSuccessfully);

        await node.DisposeAsync();
        Assert.Throws<ObjectDisposedException>(() => { _ = node.PublishAsync("t", 1); });
    }

    [Fact]
    public async Task An_event_is_refused_above_MaxEventSize_at_the_exact_limit()
    {
        var value = new string('v', 200);
        await using var probe = Node.Create(Options("probe"));
        var size = EventSize(probe, "t", value) + 4; // the frame: its length prefix and the message
        await using var fits = await Node.StartAsync(new NodeOptions(Options("fits")) { Events = new EventOptions { MaxEventSize = size } });
        await using var tooSmall = await Node.StartAsync(new NodeOptions(Options("small")) { Events = new EventOptions { MaxEventSize = size - 1 } });

        await fits.PublishAsync("t", value);
        var error = Assert.Throws<FrameTooLargeException>(() => { _ = tooSmall.PublishAsync("t", value); });

        Assert.Equal($"The event on topic 't' is {size} bytes, above Events.MaxEventSize ({size - 1}); send a smaller value, or raise the option on every node.", error.Message);
    }

    private static int EventSize<T>(Node node, string topic, T value)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(buffer);
        EventMessages.WriteEvent(ref writer, topic, MessagePackSerializer.Serialize(value, node.SerializerOptions));
        writer.Flush();
        return buffer.WrittenCount;
    }

    [Fact]
    public async Task A_value_that_cannot_be_serialized_fails_naming_the_topic_and_type()
    {
        await using var node = await StartAsync("pub");

        var error = Assert.Throws<SerializationFailedException>(() => { _ = node.PublishAsync("t", new NotSerializable()); });

        Assert.StartsWith($"The value published on topic 't' ({typeof(NotSerializable)}) cannot be serialized: ", error.Message, StringComparison.Ordinal);
        Assert.IsType<MessagePackSerializationException>(error.InnerException);
    }

    public sealed class NotSerializable
    {
        public int Value { get; set; }
    }

    [Fact]
    public async Task Subscribing_checks_the_handler_the_topic_and_the_node_state()
    {
        await using var node = Node.Create(Options("sub"));

        Assert.Equal("handler", Assert.Throws<ArgumentNullException>(() => node.Subscribe("t", (Action<int>)null!)).ParamName);
        Assert.Equal("handler", Assert.Throws<ArgumentNullException>(() => node.Subscribe("t", (Action<int, PeerInfo>)null!)).ParamName);
        Assert.Equal("handler", Assert.Throws<ArgumentNullException>(() => node.Subscribe("t", (Func<int, PeerInfo, CancellationToken, Task>)null!)).ParamName);
        Assert.Equal("topic", Assert.Throws<ArgumentException>(() => node.Subscribe<int>("", _ => { })).ParamName);
        Assert.Equal(default(EventStatistics), node.GetEventStatistics());
        using (node.Subscribe<int>("before-start", _ => { }))
        {
        }

        await node.DisposeAsync();
        Assert.Throws<ObjectDisposedException>(() => node.Subscribe<int>("t", _ => { }));
    }

    [Fact]
    public async Task Every_handler_form_gets_the_value_as_its_type_and_the_publisher()
    {
        await using var pair = await PairAsync();
        var plain = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var withSender = new TaskCompletionSource<(string, PeerInfo)>(TaskCreationOptions.RunContinuationsAsynchronously);
        var viaTask = new TaskCompletionSource<(int, string)>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var a = pair.Bob.Subscribe<int>("n", plain.SetResult);
        using var b = pair.Bob.Subscribe<string>("s", (value, sender) => withSender.SetResult((value, sender)));
        using var c = pair.Bob.Subscribe<int>("n", (value, sender, _) =>
        {
            viaTask.SetResult((value, sender.Name));
            return Task.CompletedTask;
        });

        await pair.Alice.PublishAsync("n", 42);
        await pair.Alice.PublishAsync("s", "hello");

        Assert.Equal(42, await plain.Task.Within());
        var (text, publisher) = await withSender.Task.Within();
        Assert.Equal(("hello", "alice", pair.Alice.InstanceId), (text, publisher.Name, publisher.InstanceId));
        Assert.Equal((42, "alice"), await viaTask.Task.Within());
        await Patience.Until(() => pair.Alice.GetEventStatistics().Sent == 2 && pair.Bob.GetEventStatistics().Received == 2);
    }

    [Fact]
    public async Task A_value_read_as_the_wrong_type_counts_as_a_failed_handler()
    {
        await using var pair = await PairAsync();
        var good = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var wrong = pair.Bob.Subscribe<string>("n", _ => { });
        using var right = pair.Bob.Subscribe<int>("n", good.SetResult);

        await pair.Alice.PublishAsync("n", 7);

        Assert.Equal(7, await good.Task.Within());
        await Patience.Until(() => pair.Bob.GetEventStatistics().HandlerFailures == 1);
    }

    [Fact]
    public async Task Shutting_down_fires_the_token_of_a_running_async_handler()
    {
        await using var pair = await PairAsync();
        var entered = new TaskCompletionSource<CancellationToken>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var slow = pair.Bob.Subscribe<int>("n", async (_, _, token) =>
        {
            entered.TrySetResult(token);
            await Task.Delay(Timeout.Infinite, token);
        });
        await pair.Alice.PublishAsync("n", 1);
        var token = await entered.Task.Within();
        Assert.False(token.IsCancellationRequested);

        await pair.Bob.DisposeAsync();

        Assert.True(token.IsCancellationRequested);
    }
}
