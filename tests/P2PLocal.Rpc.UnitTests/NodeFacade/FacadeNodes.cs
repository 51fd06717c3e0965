using System.Collections.Concurrent;
using System.Net;
using System.Text;
using MessagePack;
using Microsoft.Extensions.Logging;
using P2PLocal.Rpc.Discovery;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Testing;

namespace P2PLocal.Rpc.UnitTests.NodeFacade;

/// <summary>
/// The facade tests run alone, one after another (about 5 s in all): their nodes feed process-wide spans and meters
/// (beacons sent, requests refused) that other classes count through listeners of their own, and the telemetry tests
/// here listen to everything.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class NodeFacadeGroup
{
    public const string Name = "node facade (runs alone)";
}

/// <summary>
/// Nodes for the facade tests: loopback scope, each on its own OS-picked discovery port, no name-check wait. A caller
/// learns of a callee from a beacon handed straight to its peer table (<see cref="Introduce"/>), so no test waits for
/// the network to deliver one.
/// </summary>
internal static class FacadeNodes
{
    public static NodeOptions Options(string name, int? discoveryPort = null) => new(LoopbackNodes.Options(name, discoveryPort ?? LoopbackPorts.FreeUdpPort()))
    {
        NameCheckWindow = TimeSpan.Zero,
    };

    public static Task<Node> StartAsync(string name) => Node.StartAsync(Options(name));

    /// <summary>Puts <paramref name="callee"/> in <paramref name="caller"/>'s peer table, as its beacon would.</summary>
    public static PeerInfo Introduce(Node caller, Node callee)
    {
        var started = callee.SelfInfo.StartedAt.ToUnixTimeMilliseconds();
        Observe(caller, $"{callee.Options.Protocol}|{callee.Name}|127.0.0.1:{callee.ServiceEndPoint.Port}|p2p1|{callee.InstanceId}|alive|3000|{started}");
        Assert.True(caller.Peers.TryGet(callee.Name, out var peer));
        return peer;
    }

    /// <summary>Puts a Python p2p-local node (<c>protocol|name|ip:port</c>) in <paramref name="caller"/>'s peer table.</summary>
    public static PeerInfo IntroduceLegacy(Node caller, string name, int port)
    {
        Observe(caller, $"{caller.Options.Protocol}|{name}|127.0.0.1:{port}");
        Assert.True(caller.Peers.TryGet(name, out var peer));
        Assert.True(peer.IsLegacy);
        return peer;
    }

    public static void Observe(Node node, string beaconText)
    {
        Assert.True(Beacon.TryParse(Encoding.UTF8.GetBytes(beaconText), out var beacon));
        var endPoint = IPEndPoint.Parse(beaconText.Split('|')[2]);
        node.Peers.Observe(beacon!, endPoint, node.Now, TimeSpan.FromSeconds(3));
    }

    /// <summary>Two started nodes, "alice" calling "bob"; disposes both.</summary>
    public static async Task<Pair> PairAsync(Func<NodeOptions, NodeOptions>? alice = null, Func<NodeOptions, NodeOptions>? bob = null)
    {
        var a = await Node.StartAsync((alice ?? (o => o))(Options("alice")));
        var b = await Node.StartAsync((bob ?? (o => o))(Options("bob")));
        Introduce(a, b);
        return new Pair(a, b);
    }

    /// <summary>A call to one peer instance (the path of <c>Peers.Any</c>), with dynamic kwargs and result.</summary>
    public static Task<object?> CallOnAsync(Node caller, PeerInfo peer, string function, IReadOnlyDictionary<string, object?>? kwargs = null,
        CancellationToken cancellationToken = default) =>
        caller.InvokeOnAsync<IReadOnlyDictionary<string, object?>?, object?>(peer, function, kwargs, KwargsCodec.WriteKwargs, KwargsCodec.ReadValue, cancellationToken);

    public static Dictionary<string, object?> Kwargs(params (string Key, object? Value)[] pairs) => pairs.ToDictionary(p => p.Key, p => p.Value);

    internal sealed record Pair(Node Alice, Node Bob) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await Alice.DisposeAsync();
            await Bob.DisposeAsync();
        }
    }
}

/// <summary>A hand-written dispatcher serving the given names, each answering with <paramref name="answer"/>.</summary>
internal sealed class FixedAnswers(string answer, params string[] names) : IServiceDispatcher
{
    public IReadOnlyList<FunctionDescriptor> Functions { get; } = [.. names.Select(n => new FunctionDescriptor(n, [], "string"))];

    public ValueTask InvokeAsync(FunctionCall request)
    {
        var writer = new MessagePackWriter(request.Result);
        writer.Write(answer);
        writer.Flush();
        return default;
    }
}

/// <summary>Keeps every message logged through it, formatted, with its event name.</summary>
internal sealed class CapturedLogs : ILoggerFactory
{
    private readonly ConcurrentQueue<(string Category, string EventName, LogLevel Level, string Message)> _entries = new();

    public IReadOnlyList<(string Category, string EventName, LogLevel Level, string Message)> Entries => [.. _entries];

    public bool Has(string eventName) => _entries.Any(e => e.EventName == eventName);

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void AddProvider(ILoggerProvider provider)
    {
    }

    public void Dispose()
    {
    }

    private sealed class Logger(CapturedLogs logs, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            logs._entries.Enqueue((category, eventId.Name ?? "", logLevel, formatter(state, exception)));
    }
}
