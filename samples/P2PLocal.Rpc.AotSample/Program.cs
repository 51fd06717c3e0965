// Two of these, started with each other's names, find each other on loopback and call each other typed:
//   P2PLocal.Rpc.AotSample <name> <peer> <discovery port>
using System.Globalization;
using AotSample;
using P2PLocal.Rpc;

if (args.Length != 3)
{
    Console.Error.WriteLine("usage: P2PLocal.Rpc.AotSample <name> <peer> <discovery port>");
    return 2;
}

var (name, peer, port) = (args[0], args[1], int.Parse(args[2], CultureInfo.InvariantCulture));
var patience = TimeSpan.FromSeconds(60);
var inventory = new Inventory(name);
await using var node = Node.Create(new NodeOptions { Name = name, Scope = DiscoveryScope.Loopback, DiscoveryPort = port });
node.Register(inventory);
await node.StartAsync();
await node.Peers.WaitForAsync(peer, patience);

var remote = node.Peers.Get<IInventory>(peer);
var stock = remote.Restock([new Item("tea", 2, Unit.Piece), new Item("rice", 5, Unit.Kilogram)], Unit.Kilogram);
var found = await remote.Find(stock.Items, "rice");
// A dynamic call: under Native AOT its kwargs must be plain values (numbers, strings, bools, byte[], DateTime).
var made = await node.RequestAsync<Item>(peer, "Make", new Dictionary<string, object?> { ["name"] = "salt", ["count"] = 3 });
remote.Done();
var doneBy = await inventory.PeerDone.WaitAsync(patience); // stay until the peer has made its calls too

Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"OK {name}: {stock.Owner} has {string.Join(", ", stock.Items.Select(i => $"{i.Count} {i.Unit} {i.Name}"))}; " +
    $"rice costs {stock.Prices["rice"]}; found {found?.Name}; made {made.Count} {made.Name}; {doneBy} is done"));
return 0;
