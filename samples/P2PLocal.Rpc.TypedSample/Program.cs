// Typed calls: a [P2PService] class served by one node and called by another through the generated proxy,
// in one process, in loopback scope (nothing leaves 127.0.0.0/8).
//   dotnet run --project samples/P2PLocal.Rpc.TypedSample [discovery-port]
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using P2PLocal.Rpc;
using P2PLocal.Rpc.TypedSample;

var port = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : FreeUdpPort();
NodeOptions Options(string name) => new() { Name = name, Scope = DiscoveryScope.Loopback, DiscoveryPort = port };

await using var bob = await Node.StartAsync(Options("bob"));
bob.Register(new Greeter());                                     // every public method of Greeter, via the generated dispatcher

await using var alice = await Node.StartAsync(Options("alice"));
await alice.Peers.WaitForAsync("bob");
Console.WriteLine($"discovery port {port}: alice sees bob at {bob.ServiceEndPoint}");

var greeter = alice.Peers.Get<IGreeter>("bob");                  // the generated proxy of the generated interface
Console.WriteLine($"Greet(\"Ann\")                 -> {greeter.Greet("Ann")}");
Console.WriteLine($"await AddAsync(2)             -> {await greeter.AddAsync(2)}   (b took its default, 1)");
Console.WriteLine($"await AddAsync(2, 3)          -> {await greeter.AddAsync(2, 3)}");
var route = await greeter.PlanAsync(new Trip { From = "Oslo", To = "Bergen", Stops = ["Geilo"] });
Console.WriteLine($"await PlanAsync(trip)         -> {string.Join(" > ", route)}");

// The same functions by name, as any language would call them.
var dynamicSum = await alice.RequestAsync("bob", "AddAsync", new Dictionary<string, object?> { ["a"] = 40, ["b"] = 2 });
Console.WriteLine($"RequestAsync(\"AddAsync\", a=40, b=2) -> {dynamicSum}");

// Cancellation reaches the handler on bob.
using var soon = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
try
{
    await greeter.WaitAsync(soon.Token);
}
catch (OperationCanceledException)
{
    Console.WriteLine($"WaitAsync cancelled by alice  -> bob's handler saw it: {await Greeter.Cancelled.WaitAsync(TimeSpan.FromSeconds(10))}");
}

// A remote exception keeps its type and message.
try
{
    greeter.Greet("");
}
catch (RemoteException e)
{
    Console.WriteLine($"Greet(\"\")                    -> {e.RemoteType}: {e.RemoteMessage}");
}

foreach (var function in await alice.GetFunctionsAsync("bob"))
    Console.WriteLine($"  bob serves {function.Name}({string.Join(", ", function.Parameters.Select(p => $"{p.Name}: {p.Type}{(p.IsOptional ? " (optional)" : "")}"))}) -> {function.ReturnType}  [{function.Fingerprint}]");
return 0;

static int FreeUdpPort()
{
    using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
    socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
    return ((IPEndPoint)socket.LocalEndPoint!).Port;
}
