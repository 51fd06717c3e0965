using System.Diagnostics;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;
using P2PLocal.Rpc;
using P2PLocal.Rpc.Diagnostics;

namespace P2PLocal.Rpc.Hosting.Tests;

/// <summary>
/// OpenTelemetry's in-memory exporters over two real nodes. Listeners are process-wide and other tests run at the
/// same time, so every assertion picks its own spans and points by unique function names.
/// </summary>
public class TelemetryTests
{
    private static readonly ActivitySource s_test = new("P2PLocal.Rpc.Hosting.Tests");

    [Fact]
    public async Task One_trace_spans_the_caller_and_the_serving_node()
    {
        var spans = new List<Activity>();
        using var tracing = Sdk.CreateTracerProviderBuilder()
            .AddSource(NodeTelemetry.ActivitySourceName, s_test.Name)
            .AddInMemoryExporter(spans)
            .Build();
        var port = LoopbackPorts.FreeUdpPort();
        await using var bob = await TestNetwork.StartNodeAsync("bob", port);
        ActivityTraceId seenByHandler = default;
        bob.Register("traced_call", _ =>
        {
            seenByHandler = Activity.Current?.TraceId ?? default;
            return "ok";
        });
        await using var alice = await TestNetwork.StartNodeAsync("alice", port);
        await alice.Peers.WaitForAsync("bob").Within();

        ActivityTraceId traceId;
        using (var parent = s_test.StartActivity("work"))
        {
            traceId = parent!.TraceId;
            Assert.Equal("ok", await alice.RequestAsync<string>("bob", "traced_call").Within());
        }

        Activity[] mine;
        lock (spans)
            mine = [.. spans.Where(s => s.TraceId == traceId)];
        var client = Assert.Single(mine, s => s.Kind == ActivityKind.Client);
        var server = Assert.Single(mine, s => s.Kind == ActivityKind.Server);
        Assert.Equal("traced_call", client.DisplayName);
        Assert.Equal("traced_call", server.DisplayName);
        Assert.Equal(client.SpanId, server.ParentSpanId);          // the W3C context crossed the wire
        Assert.Equal(traceId, seenByHandler);                      // and the handler runs inside the server span
        Assert.Equal("p2plocal", client.GetTagItem("rpc.system.name"));
        Assert.Equal("traced_call", client.GetTagItem("rpc.method"));
        Assert.Equal("127.0.0.1", client.GetTagItem("server.address"));
        Assert.Equal(bob.ServiceEndPoint.Port, client.GetTagItem("server.port"));
        Assert.Equal("p2plocal", server.GetTagItem("rpc.system.name"));
        Assert.Equal("traced_call", server.GetTagItem("rpc.method"));
        Assert.Equal("OK", server.GetTagItem("rpc.response.status_code"));
        Assert.Equal("alice", server.GetTagItem("p2plocal.caller.name"));
    }

    [Fact]
    public async Task Call_duration_is_recorded_on_both_sides_with_the_conventional_attributes()
    {
        var metrics = new List<Metric>();
        using var metering = Sdk.CreateMeterProviderBuilder()
            .AddMeter(NodeTelemetry.MeterName)
            .AddInMemoryExporter(metrics)
            .Build();
        var port = LoopbackPorts.FreeUdpPort();
        await using var bob = await TestNetwork.StartNodeAsync("bob", port);
        bob.Register("measured_call", _ => 1);
        bob.Register("broken_call", _ => throw new InvalidOperationException("no"));
        await using var alice = await TestNetwork.StartNodeAsync("alice", port);
        await alice.Peers.WaitForAsync("bob").Within();

        await alice.RequestAsync("bob", "measured_call").Within();
        await Assert.ThrowsAsync<RemoteException>(() => alice.RequestAsync("bob", "broken_call").Within());
        metering.ForceFlush();

        var clientOk = Point(metrics, "rpc.client.call.duration", "measured_call");
        Assert.Equal("s", clientOk.Unit);
        Assert.Equal("p2plocal", clientOk.Tags["rpc.system.name"]);
        Assert.Equal("OK", clientOk.Tags["rpc.response.status_code"]);
        Assert.False(clientOk.Tags.ContainsKey("error.type"));
        Assert.Equal("127.0.0.1", clientOk.Tags["server.address"]);
        Assert.True(clientOk.Count >= 1);

        var serverOk = Point(metrics, "rpc.server.call.duration", "measured_call");
        Assert.Equal("OK", serverOk.Tags["rpc.response.status_code"]);

        var clientFailed = Point(metrics, "rpc.client.call.duration", "broken_call");
        Assert.Equal(typeof(RemoteException).FullName, clientFailed.Tags["error.type"]);
        Assert.Equal("HANDLER_FAILED", clientFailed.Tags["rpc.response.status_code"]);
        var serverFailed = Point(metrics, "rpc.server.call.duration", "broken_call");
        Assert.Equal(typeof(InvalidOperationException).FullName, serverFailed.Tags["error.type"]);
        Assert.Equal("HANDLER_FAILED", serverFailed.Tags["rpc.response.status_code"]);

        // The library's own instruments report too.
        var names = metrics.Select(m => m.Name).ToHashSet();
        Assert.Contains("p2plocal.active_connections", names);
        Assert.Contains("p2plocal.beacons.sent", names);
        Assert.Contains("p2plocal.beacons.received", names);
        Assert.Contains("p2plocal.network.io", names);
        Assert.Contains("p2plocal.known_peers", names);
    }

    [Fact]
    public async Task A_refused_request_is_counted_by_reason()
    {
        var metrics = new List<Metric>();
        using var metering = Sdk.CreateMeterProviderBuilder().AddMeter(NodeTelemetry.MeterName).AddInMemoryExporter(metrics).Build();
        var port = LoopbackPorts.FreeUdpPort();
        await using var bob = await TestNetwork.StartNodeAsync("bob", port);
        await using var alice = await TestNetwork.StartNodeAsync("alice", port);
        await alice.Peers.WaitForAsync("bob").Within();

        await Assert.ThrowsAsync<MethodNotFoundException>(() => alice.RequestAsync("bob", "no_such_function").Within());
        metering.ForceFlush();

        var refused = metrics.Where(m => m.Name == "p2plocal.refused_requests").SelectMany(Points).ToList();
        Assert.Contains(refused, p => (string?)p.Tags["p2plocal.refusal.reason"] == "method_not_found" && p.Sum >= 1);
    }

    internal sealed record PointView(string Unit, Dictionary<string, object?> Tags, long Count, double Sum);

    [Fact]
    public async Task A_stream_is_one_client_span_from_request_to_last_item_with_its_duration_and_item_count()
    {
        var spans = new List<Activity>();
        var metrics = new List<Metric>();
        using var tracing = Sdk.CreateTracerProviderBuilder()
            .AddSource(NodeTelemetry.ActivitySourceName, s_test.Name)
            .AddInMemoryExporter(spans)
            .Build();
        using var metering = Sdk.CreateMeterProviderBuilder().AddMeter(NodeTelemetry.MeterName).AddInMemoryExporter(metrics).Build();
        var port = LoopbackPorts.FreeUdpPort();
        await using var bob = await TestNetwork.StartNodeAsync("bob", port);
        bob.RegisterStream("traced_stream", (_, ct) => Items(3, fail: false, ct));
        bob.RegisterStream("broken_stream", (_, ct) => Items(2, fail: true, ct));
        await using var alice = await TestNetwork.StartNodeAsync("alice", port);
        await alice.Peers.WaitForAsync("bob").Within();

        ActivityTraceId traceId;
        using (var parent = s_test.StartActivity("work"))
        {
            traceId = parent!.TraceId;
            var items = await alice.RequestStreamAsync<int>("bob", "traced_stream").ToListAsync().AsTask().Within();
            Assert.Equal([0, 1, 2], items);
            Assert.Same(parent, Activity.Current); // the stream's span never leaked into the reader's context
        }

        var received = new List<int>();
        var failed = await Assert.ThrowsAsync<RemoteException>(async () =>
        {
            await foreach (var item in alice.RequestStreamAsync<int>("bob", "broken_stream").WithCancellation(CancellationToken.None))
                received.Add(item);
        }).Within();
        Assert.Equal([0, 1], received);
        metering.ForceFlush();

        Activity[] mine;
        lock (spans)
            mine = [.. spans.Where(s => s.TraceId == traceId)];
        Assert.True(mine.Length == 3, "spans of the trace: " + string.Join(", ", mine.Select(s => $"{s.Kind} {s.DisplayName}")));
        var client = Assert.Single(mine, s => s.Kind == ActivityKind.Client);
        var server = Assert.Single(mine, s => s.Kind == ActivityKind.Server);
        Assert.Equal("traced_stream", client.DisplayName);
        Assert.Equal(client.SpanId, server.ParentSpanId);
        Assert.Equal(3L, client.GetTagItem("p2plocal.stream.items"));
        Assert.Equal("OK", client.GetTagItem("rpc.response.status_code"));
        Assert.Equal(bob.ServiceEndPoint.Port, client.GetTagItem("server.port"));

        var clientOk = Point(metrics, "rpc.client.call.duration", "traced_stream");
        Assert.Equal("OK", clientOk.Tags["rpc.response.status_code"]);
        var clientFailed = Point(metrics, "rpc.client.call.duration", "broken_stream");
        Assert.Equal(typeof(RemoteException).FullName, clientFailed.Tags["error.type"]);
        Assert.Equal("HANDLER_FAILED", clientFailed.Tags["rpc.response.status_code"]);
        Assert.Contains("no more", failed.Message);
    }

    private static async IAsyncEnumerable<object?> Items(int count, bool fail, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        for (var i = 0; i < count; i++)
        {
            await Task.Yield();
            cancellationToken.ThrowIfCancellationRequested();
            yield return i;
        }

        if (fail)
            throw new InvalidOperationException("no more");
    }

    private static PointView Point(List<Metric> metrics, string name, string method)
    {
        var points = metrics.Where(m => m.Name == name).SelectMany(Points).Where(p => Equals(p.Tags.GetValueOrDefault("rpc.method"), method)).ToList();
        Assert.True(points.Count > 0, $"No {name} point for {method}; instruments seen: {string.Join(", ", metrics.Select(m => m.Name).Distinct())}");
        return points[^1];
    }

    private static List<PointView> Points(Metric metric)
    {
        var points = new List<PointView>();
        foreach (ref readonly var point in metric.GetMetricPoints())
        {
            var tags = new Dictionary<string, object?>();
            foreach (var tag in point.Tags)
                tags[tag.Key] = tag.Value;
            var (count, sum) = metric.MetricType switch
            {
                MetricType.Histogram => (point.GetHistogramCount(), point.GetHistogramSum()),
                MetricType.LongSum or MetricType.LongSumNonMonotonic => (1L, (double)point.GetSumLong()),
                _ => (1L, 0d),
            };
            points.Add(new PointView(metric.Unit, tags, count, sum));
        }

        return points;
    }
}
