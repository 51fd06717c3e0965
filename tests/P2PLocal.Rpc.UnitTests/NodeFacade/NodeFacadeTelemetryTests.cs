using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using P2PLocal.Rpc.Testing;
using static P2PLocal.Rpc.UnitTests.NodeFacade.FacadeNodes;

namespace P2PLocal.Rpc.UnitTests.NodeFacade;

/// <summary>The client span and duration of a call (Node.Telemetry.cs), through an <see cref="ActivityListener"/> and a <see cref="MeterListener"/>.</summary>
[Collection(NodeFacadeGroup.Name)]
public sealed class NodeFacadeTelemetryTests
{
    private sealed class Spans : IDisposable
    {
        private readonly ActivityListener _listener;
        private readonly ConcurrentQueue<Activity> _stopped = new();

        public Spans(ActivitySamplingResult sampling = ActivitySamplingResult.AllDataAndRecorded)
        {
            _listener = new ActivityListener
            {
                ShouldListenTo = source => source.Name == "P2PLocal.Rpc",
                Sample = (ref ActivityCreationOptions<ActivityContext> _) => sampling,
                ActivityStopped = _stopped.Enqueue,
            };
            ActivitySource.AddActivityListener(_listener);
        }

        public Activity Client(string function) => Assert.Single(_stopped, a => a.Kind == ActivityKind.Client && a.OperationName == function);

        public void Dispose() => _listener.Dispose();
    }

    private sealed class Durations : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly ConcurrentQueue<(double Value, Dictionary<string, object?> Tags)> _measurements = new();

        public Durations()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == "P2PLocal.Rpc" && instrument.Name == "rpc.client.call.duration")
                    listener.EnableMeasurementEvents(instrument);
            };
            _listener.SetMeasurementEventCallback<double>((_, value, tags, _) =>
                _measurements.Enqueue((value, tags.ToArray().ToDictionary(t => t.Key, t => t.Value))));
            _listener.Start();
        }

        public (double Value, Dictionary<string, object?> Tags) Of(string function) =>
            Assert.Single(_measurements, m => Equals(m.Tags.GetValueOrDefault("rpc.method"), function));

        public void Dispose() => _listener.Dispose();
    }

    [Fact]
    public async Task A_call_is_a_client_span_named_for_the_function_with_the_peer_and_its_address()
    {
        using var spans = new Spans();
        await using var pair = await PairAsync();
        pair.Bob.Register("traced.ok", _ => 1);

        await pair.Alice.RequestAsync("bob", "traced.ok").Within();

        var span = spans.Client("traced.ok");
        Assert.Equal("traced.ok", span.DisplayName);
        Assert.Equal("p2plocal", span.GetTagItem("rpc.system.name"));
        Assert.Equal("traced.ok", span.GetTagItem("rpc.method"));
        Assert.Equal("bob", span.GetTagItem("p2plocal.peer.name"));
        Assert.Equal("127.0.0.1", span.GetTagItem("server.address"));
        Assert.Equal(pair.Bob.ServiceEndPoint.Port, span.GetTagItem("server.port"));
        Assert.Equal("OK", span.GetTagItem("rpc.response.status_code"));
        Assert.Null(span.GetTagItem("error.type"));
        Assert.Equal(ActivityStatusCode.Unset, span.Status);
    }

    [Fact]
    public async Task A_call_the_peer_refuses_ends_its_span_with_the_wire_status_and_the_error()
    {
        using var spans = new Spans();
        await using var pair = await PairAsync();
        pair.Bob.Register("traced.throws", _ => throw new InvalidOperationException("no"));

        await Assert.ThrowsAsync<MethodNotFoundException>(() => pair.Alice.RequestAsync("bob", "traced.missing").Within());
        var failed = await Assert.ThrowsAsync<RemoteException>(() => pair.Alice.RequestAsync("bob", "traced.throws").Within());

        var missing = spans.Client("traced.missing");
        Assert.Equal("METHOD_NOT_FOUND", missing.GetTagItem("rpc.response.status_code"));
        Assert.Equal(typeof(MethodNotFoundException).FullName, missing.GetTagItem("error.type"));
        Assert.Equal(ActivityStatusCode.Error, missing.Status);
        var throws = spans.Client("traced.throws");
        Assert.Equal("HANDLER_FAILED", throws.GetTagItem("rpc.response.status_code"));
        Assert.Equal(failed.Message, throws.StatusDescription);
    }

    [Fact]
    public async Task A_call_that_fails_here_has_no_wire_status_and_no_address()
    {
        using var spans = new Spans();
        await using var node = await StartAsync("lonely");

        await Assert.ThrowsAsync<PeerNotFoundException>(() => node.RequestAsync("nobody", "traced.local"));

        var span = spans.Client("traced.local");
        Assert.Null(span.GetTagItem("rpc.response.status_code"));
        Assert.Null(span.GetTagItem("server.address"));
        Assert.Null(span.GetTagItem("server.port"));
        Assert.Equal("nobody", span.GetTagItem("p2plocal.peer.name"));
        Assert.Equal(typeof(PeerNotFoundException).FullName, span.GetTagItem("error.type"));
    }

    [Fact]
    public async Task A_span_sampled_for_propagation_only_gets_no_call_attributes()
    {
        using var spans = new Spans(ActivitySamplingResult.PropagationData);
        await using var pair = await PairAsync();
        pair.Bob.Register("traced.sparse", _ => 1);

        await pair.Alice.RequestAsync("bob", "traced.sparse").Within();

        var span = spans.Client("traced.sparse");
        Assert.Null(span.GetTagItem("rpc.method"));
        Assert.Null(span.GetTagItem("p2plocal.peer.name"));
        Assert.Null(span.GetTagItem("server.address"));
    }

    [Fact]
    public async Task A_call_records_its_duration_with_the_call_attributes_even_with_no_span_listener()
    {
        using var durations = new Durations();
        await using var pair = await PairAsync();
        pair.Bob.Register("timed.ok", _ => 1);

        await pair.Alice.RequestAsync("bob", "timed.ok").Within();
        await Assert.ThrowsAsync<MethodNotFoundException>(() => pair.Alice.RequestAsync("bob", "timed.missing").Within());
        await Assert.ThrowsAsync<PeerNotFoundException>(() => pair.Alice.RequestAsync("nobody", "timed.local"));

        var (value, tags) = durations.Of("timed.ok");
        Assert.InRange(value, 0.0, Patience.Limit.TotalSeconds);
        Assert.Equal("p2plocal", tags["rpc.system.name"]);
        Assert.Equal("OK", tags["rpc.response.status_code"]);
        Assert.Equal("127.0.0.1", tags["server.address"]);
        Assert.Equal(pair.Bob.ServiceEndPoint.Port, tags["server.port"]);
        Assert.False(tags.ContainsKey("error.type"));
        var missing = durations.Of("timed.missing").Tags;
        Assert.Equal("METHOD_NOT_FOUND", missing["rpc.response.status_code"]);
        Assert.Equal(typeof(MethodNotFoundException).FullName, missing["error.type"]);
        var local = durations.Of("timed.local").Tags;
        Assert.False(local.ContainsKey("rpc.response.status_code"));
        Assert.False(local.ContainsKey("server.address"));
        Assert.Equal(typeof(PeerNotFoundException).FullName, local["error.type"]);
    }

    [Fact]
    public async Task A_call_in_a_span_carries_its_trace_to_the_server_span()
    {
        using var spans = new Spans();
        await using var pair = await PairAsync();
        var serverTrace = new TaskCompletionSource<ActivityTraceId?>(TaskCreationOptions.RunContinuationsAsynchronously);
        pair.Bob.Register("traced.context", _ =>
        {
            serverTrace.TrySetResult(Activity.Current?.TraceId);
            return 1;
        });

        await pair.Alice.RequestAsync("bob", "traced.context").Within();

        Assert.Equal(spans.Client("traced.context").TraceId, await serverTrace.Task.Within());
    }

    [Fact]
    public async Task A_stream_is_one_client_span_with_its_item_count_and_one_duration()
    {
        using var spans = new Spans();
        using var durations = new Durations();
        await using var pair = await PairAsync();
        pair.Bob.RegisterStream("traced.stream", (_, token) => Items(3, token));
        pair.Bob.RegisterStream("traced.endless", (_, token) => Items(int.MaxValue, token));

        var read = new List<object?>();
        await foreach (var item in pair.Alice.RequestStreamAsync("bob", "traced.stream"))
            read.Add(item);
        await foreach (var _ in pair.Alice.RequestStreamAsync("bob", "traced.endless"))
            break; // a reader that leaves early ends the span as OK
        await Assert.ThrowsAsync<MethodNotFoundException>(async () =>
        {
            await foreach (var _ in pair.Alice.RequestStreamAsync("bob", "traced.nostream"))
            {
            }
        }).Within();

        Assert.Equal(3, read.Count);
        var span = spans.Client("traced.stream");
        Assert.Equal(3L, span.GetTagItem("p2plocal.stream.items"));
        Assert.Equal("OK", span.GetTagItem("rpc.response.status_code"));
        Assert.Equal("bob", span.GetTagItem("p2plocal.peer.name"));
        Assert.Equal(pair.Bob.ServiceEndPoint.Port, span.GetTagItem("server.port"));
        var left = spans.Client("traced.endless");
        Assert.Equal(1L, left.GetTagItem("p2plocal.stream.items"));
        Assert.Equal("OK", left.GetTagItem("rpc.response.status_code"));
        var missing = spans.Client("traced.nostream");
        Assert.Equal("METHOD_NOT_FOUND", missing.GetTagItem("rpc.response.status_code"));
        Assert.Equal(ActivityStatusCode.Error, missing.Status);
        Assert.Equal("OK", durations.Of("traced.stream").Tags["rpc.response.status_code"]);
        Assert.Equal("METHOD_NOT_FOUND", durations.Of("traced.nostream").Tags["rpc.response.status_code"]);
    }

    [Fact]
    public async Task A_stream_span_sampled_for_propagation_only_gets_no_item_count()
    {
        using var spans = new Spans(ActivitySamplingResult.PropagationData);
        await using var pair = await PairAsync();
        pair.Bob.RegisterStream("traced.sparse.stream", (_, token) => Items(2, token));

        await foreach (var _ in pair.Alice.RequestStreamAsync("bob", "traced.sparse.stream"))
        {
        }

        Assert.Null(spans.Client("traced.sparse.stream").GetTagItem("p2plocal.stream.items"));
    }

    [Fact]
    public async Task Without_listeners_a_stream_reads_the_same_and_records_nothing()
    {
        await using var pair = await PairAsync();
        pair.Bob.RegisterStream("quiet.stream", (_, token) => Items(2, token));

        var read = new List<object?>();
        await foreach (var item in pair.Alice.RequestStreamAsync("bob", "quiet.stream"))
            read.Add(item);

        Assert.Equal(new object?[] { 0L, 1L }, read);
    }

    private static async IAsyncEnumerable<object?> Items(int count, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken token = default)
    {
        for (var i = 0; i < count; i++)
        {
            await Task.Yield();
            token.ThrowIfCancellationRequested();
            yield return (long)i;
        }
    }

    [Fact]
    public async Task An_observed_call_posts_nothing_to_the_callers_context()
    {
        using var durations = new Durations();
        await using var pair = await PairAsync();
        pair.Bob.Register("timed.context", async (_, _) =>
        {
            await Task.Yield();
            return 1;
        });

        var (result, posted) = await CallerContext.RunAsync(() => pair.Alice.Request("bob", "timed.context")).Within();

        Assert.Equal(1L, result);
        Assert.True(posted.Count == 0, "posted to the caller's context from:\n" + string.Join("\n---\n", posted));
        Assert.Equal("OK", durations.Of("timed.context").Tags["rpc.response.status_code"]);
    }

    [Fact]
    public async Task The_peers_a_running_node_sees_are_counted_in_known_peers()
    {
        await using var node = await StartAsync("counter");
        var before = KnownPeers();

        FacadeNodes.Observe(node, "itecnet|p1|127.0.0.1:1|p2p1|0123456789abcdef|alive|3000|1");
        FacadeNodes.Observe(node, "itecnet|p2|127.0.0.1:2|p2p1|fedcba9876543210|alive|3000|1");

        Assert.Equal(before + 2, KnownPeers());
        await node.DisposeAsync();
        Assert.Equal(before, KnownPeers());
    }

    /// <summary>The current value of <c>p2plocal.known_peers</c> (summed over the nodes of this process).</summary>
    private static long KnownPeers()
    {
        long? observed = null;
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == "P2PLocal.Rpc" && instrument.Name == "p2plocal.known_peers")
                    l.EnableMeasurementEvents(instrument);
            },
        };
        listener.SetMeasurementEventCallback<long>((_, value, _, _) => observed = value);
        listener.Start();
        listener.RecordObservableInstruments();
        return observed ?? throw new InvalidOperationException("p2plocal.known_peers was not observed.");
    }
}
