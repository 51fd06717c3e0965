// Three nodes on this host, in loopback scope: they find each other, call each other by name with kwargs,
// show the errors a caller sees, and leave with a goodbye. Nothing leaves 127.0.0.0/8.
//   dotnet run --project samples/P2PLocal.Rpc.Sample [discovery-port]
// One node per process instead (run it in several terminals, then call it from another):
//   dotnet run --project samples/P2PLocal.Rpc.Sample serve <name> <discovery-port>
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using P2PLocal.Rpc;
using P2PLocal.Rpc.Sample;

if (args is ["serve", var serveName, var servePort])
    return await ServeAsync(serveName, int.Parse(servePort, CultureInfo.InvariantCulture));

var port = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : FreeUdpPort();
var clock = Stopwatch.StartNew();
void Say(string what) => Console.WriteLine($"[{clock.ElapsedMilliseconds,5} ms] {what}");

NodeOptions Options(string name) => new()
{
    Name = name,
    Scope = DiscoveryScope.Loopback, // serve on 127.0.0.1, beacon to 127.255.255.255
    DiscoveryPort = port,
    AdvertiseInterval = TimeSpan.FromSeconds(1),
};

Say($"discovery port {port}, loopback scope");
await using var bob = await Node.StartAsync(Options("bob"));
bob.Register("greet", kwargs => $"Hello, {kwargs["name"]}!");
bob.Register("add", kwargs => (long)kwargs["a"]! + (long)kwargs["b"]!);
var slowCancelled = new TaskCompletionSource();
bob.Register("slow", async (kwargs, cancellationToken) =>
{
    using var _ = cancellationToken.Register(() => slowCancelled.TrySetResult());
    await Task.Delay(TimeSpan.FromSeconds(30), cancellationToken);
    return "never";
});
Say($"bob serves on {bob.ServiceEndPoint}");

await using var carol = await Node.StartAsync(Options("carol"));
carol.Register("whoami", _ => "carol");
carol.Register(new Calculator()); // typed: the source generator made ICalculator, its dispatcher and its proxy
Say($"carol serves on {carol.ServiceEndPoint}");

var alice = await Node.StartAsync(Options("alice"));
alice.Peers.Joined += (_, peer) => Say($"alice sees {peer.Name} at {peer.EndPoint}");
alice.Peers.Left += (_, peer) => Say($"alice no longer sees {peer.Name}");
await alice.Peers.WaitForAsync("bob");
await alice.Peers.WaitForAsync("carol");
Say("alice found bob and carol");

Say($"bob's functions: {string.Join(", ", await alice.GetMethodsAsync("bob"))}");
Say($"greet(name=Ann) -> {await alice.RequestAsync("bob", "greet", new Dictionary<string, object?> { ["name"] = "Ann" })}");
Say($"add(a=2, b=3) -> {await alice.RequestAsync<int>("bob", "add", new Dictionary<string, object?> { ["a"] = 2, ["b"] = 3 })}");
Say($"carol.whoami() -> {await bob.RequestAsync("carol", "whoami")}");
var calculator = alice.Peers.Get<ICalculator>("carol");
Say($"typed: carol.Multiply(6, 7) -> {calculator.Multiply(6, 7)}");
Say($"typed: carol.SumAsync([1, 2, 3]) -> {await calculator.SumAsync([1, 2, 3])}");
Say($"dynamic call of the same typed function: {await alice.RequestAsync("carol", "Multiply", new Dictionary<string, object?> { ["a"] = 2, ["b"] = 21 })}");

try
{
    await alice.RequestAsync("dave", "greet");
}
catch (PeerNotFoundException e)
{
    Say($"unknown peer: {e.Message}");
}

try
{
    await alice.RequestAsync("bob", "fly");
}
catch (MethodNotFoundException e)
{
    Say($"unknown function: {e.Message}");
}

using (var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(200)))
{
    try
    {
        await alice.RequestAsync("bob", "slow", cancellationToken: cancel.Token);
    }
    catch (OperationCanceledException)
    {
        Say("slow() cancelled by alice after 200 ms");
        await slowCancelled.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Say("bob's handler saw the cancellation");
    }
}

var left = new TaskCompletionSource();
bob.Peers.Left += (_, peer) => { if (peer.Name == "alice") left.TrySetResult(); };
await alice.DisposeAsync();
await left.Task.WaitAsync(TimeSpan.FromSeconds(10));
Say("alice shut down; bob saw her goodbye");
return 0;

// Serves greet/add/whoami/slow and the typed Calculator until standard input closes, then leaves with a goodbye.
static async Task<int> ServeAsync(string name, int discoveryPort)
{
    await using var node = await Node.StartAsync(new NodeOptions
    {
        Name = name,
        Scope = DiscoveryScope.Loopback,
        DiscoveryPort = discoveryPort,
        AdvertiseInterval = TimeSpan.FromSeconds(1),
    });
    node.Register("greet", kwargs => $"Hello, {kwargs["name"]}!");
    node.Register("add", kwargs => (long)kwargs["a"]! + (long)kwargs["b"]!);
    node.Register("whoami", _ => new Dictionary<string, object?> { ["name"] = name, ["pid"] = Environment.ProcessId });
    node.Register("slow", async (kwargs, cancellationToken) =>
    {
        await Task.Delay(TimeSpan.FromMilliseconds(Convert.ToInt64(kwargs.GetValueOrDefault("ms") ?? 30_000L, CultureInfo.InvariantCulture)), cancellationToken);
        return "done";
    });
    node.Register(new Calculator()); // typed: Multiply, SumAsync (samples/python/example.py calls them from Python)
    node.Register(new Geometry()); // typed, with object kwargs and result: Measure
    Console.WriteLine($"READY {node.ServiceEndPoint.Port} {node.InstanceId}");
    await Console.In.ReadToEndAsync();
    return 0;
}

static int FreeUdpPort()
{
    using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
    socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
    return ((IPEndPoint)socket.LocalEndPoint!).Port;
}
