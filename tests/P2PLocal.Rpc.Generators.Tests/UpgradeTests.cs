using System.Reflection;

namespace P2PLocal.Rpc.Generators.Tests;

/// <summary>
/// Rolling upgrades: two versions of one contract, each compiled on its own (as two releases of a service would be),
/// call each other both ways. Only calls to a function that changed incompatibly fail, each with
/// <see cref="ContractMismatchException"/> naming that function.
/// </summary>
public sealed class UpgradeTests
{
    private const string Driver = """
        public static class Driver
        {
            public static Task Serve(Node node)
            {
                node.Register<IShop>(new Shop());
                return Task.CompletedTask;
            }

            /// <summary>Runs one call through the typed proxy; returns its result or the error's type and message.</summary>
            public static async Task<string> Call(Node node, string call)
            {
                var shop = node.Peers.Get<IShop>("bob");
                try
                {
                    return await Task.Run(() => Calls.Run(shop, call));
                }
                catch (Exception e)
                {
                    return e.GetType().Name + ": " + e.Message;
                }
            }
        }
        """;

    private const string Version1 = """
        using System;
        using System.Threading.Tasks;
        using P2PLocal.Rpc;

        namespace Shop;

        [P2PService]
        public interface IShop
        {
            int Price(string item);
            string Describe(string item);
            int Stock(string item);
            int Weigh(string item);
            string Order(string item, int count);
        }

        public sealed class Shop : IShop
        {
            public int Price(string item) => item.Length;
            public string Describe(string item) => "v1 " + item;
            public int Stock(string item) => 7;
            public int Weigh(string item) => item.Length * 100;
            public string Order(string item, int count) => $"v1 {count} {item}";
        }

        public static partial class Calls
        {
            public static string Run(IShop shop, string call) => call switch
            {
                "Price" => shop.Price("tea").ToString(),
                "Describe" => shop.Describe("tea"),
                "Stock" => shop.Stock("tea").ToString(),
                "Weigh" => shop.Weigh("tea").ToString(),
                "Order" => shop.Order("tea", 2),
                _ => throw new ArgumentException(call),
            };
        }

        """ + DriverUsingCalls;

    private const string Version2 = """
        using System;
        using System.Threading.Tasks;
        using P2PLocal.Rpc;

        namespace Shop;

        [P2PService]
        public interface IShop
        {
            int Price(string item, string currency = "EUR");   // an optional kwarg added: safe
            string Describe(string item);                       // unchanged
                                                                // Stock removed: breaks only Stock
            int Weigh(int grams);                               // a kwarg's name and type changed: breaks only Weigh
            string Order(string item);                          // a required kwarg removed: breaks only Order
            string Discount(string item);                       // a function added: safe
        }

        public sealed class Shop : IShop
        {
            public int Price(string item, string currency = "EUR") => currency == "EUR" ? item.Length : item.Length * 2;
            public string Describe(string item) => "v2 " + item;
            public int Weigh(int grams) => grams;
            public string Order(string item) => "v2 " + item;
            public string Discount(string item) => "none";
        }

        public static partial class Calls
        {
            public static string Run(IShop shop, string call) => call switch
            {
                "Price" => shop.Price("tea").ToString(),
                "PriceInUsd" => shop.Price("tea", "USD").ToString(),
                "Describe" => shop.Describe("tea"),
                "Weigh" => shop.Weigh(300).ToString(),
                "Order" => shop.Order("tea"),
                "Discount" => shop.Discount("tea"),
                _ => throw new ArgumentException(call),
            };
        }

        """ + DriverUsingCalls;

    private const string DriverUsingCalls = Driver;

    private static readonly Lazy<Assembly> s_v1 = new(() => GeneratorHarness.CompileAndLoad("ShopV1", Version1));
    private static readonly Lazy<Assembly> s_v2 = new(() => GeneratorHarness.CompileAndLoad("ShopV2", Version2));

    private static async Task<Func<string, Task<string>>> ServeAsync(Assembly server, Assembly client, List<IAsyncDisposable> nodes)
    {
        var port = TestNetwork.FreeUdpPort();
        var bob = Node.Create(TestNetwork.Options("bob", port));
        nodes.Add(bob);
        await GeneratorHarness.CallAsync(server, "Shop.Driver", "Serve", bob);
        await bob.StartAsync();
        var alice = await TestNetwork.StartAsync("alice", port);
        nodes.Add(alice);
        await alice.Peers.WaitForAsync("bob").Within();
        return async call => (string)(await GeneratorHarness.CallAsync(client, "Shop.Driver", "Call", alice, call))!;
    }

    private static async Task DisposeAllAsync(List<IAsyncDisposable> nodes)
    {
        foreach (var node in nodes)
            await node.DisposeAsync();
    }

    [Fact]
    public async Task An_old_client_calls_a_new_server_and_only_changed_functions_fail_naming_themselves()
    {
        var nodes = new List<IAsyncDisposable>();
        try
        {
            var call = await ServeAsync(s_v2.Value, s_v1.Value, nodes);

            Assert.Equal("3", await call("Price"));          // the server's new optional kwarg takes its default
            Assert.Equal("v2 tea", await call("Describe"));

            var stock = await call("Stock");
            Assert.StartsWith("ContractMismatchException: ", stock, StringComparison.Ordinal);
            Assert.Contains("does not serve 'Stock'", stock, StringComparison.Ordinal);
            Assert.Contains("it has no function 'Stock'", stock, StringComparison.Ordinal);

            var weigh = await call("Weigh");
            Assert.Contains("does not serve 'Weigh'", weigh, StringComparison.Ordinal);
            Assert.Contains("'Weigh' is (item: string) -> int here but (grams: int) -> int there", weigh, StringComparison.Ordinal);

            var order = await call("Order");
            Assert.Contains("does not serve 'Order'", order, StringComparison.Ordinal);

            // Unchanged functions keep working after the failures.
            Assert.Equal("v2 tea", await call("Describe"));
        }
        finally
        {
            await DisposeAllAsync(nodes);
        }
    }

    [Fact]
    public async Task A_new_client_calls_an_old_server_and_only_changed_functions_fail_naming_themselves()
    {
        var nodes = new List<IAsyncDisposable>();
        try
        {
            var call = await ServeAsync(s_v1.Value, s_v2.Value, nodes);

            Assert.Equal("3", await call("Price"));          // the new optional kwarg is left at its default, so not sent
            Assert.Equal("v1 tea", await call("Describe"));

            var usd = await call("PriceInUsd");
            Assert.StartsWith("ContractMismatchException: ", usd, StringComparison.Ordinal);
            Assert.Contains("does not serve 'Price'", usd, StringComparison.Ordinal);
            Assert.Contains("without kwarg 'currency'", usd, StringComparison.Ordinal);

            var discount = await call("Discount");
            Assert.Contains("it has no function 'Discount'", discount, StringComparison.Ordinal);

            var weigh = await call("Weigh");
            Assert.Contains("does not serve 'Weigh'", weigh, StringComparison.Ordinal);

            var order = await call("Order");                  // the old server still requires 'count'
            Assert.Contains("does not serve 'Order'", order, StringComparison.Ordinal);
            Assert.Contains("(item: string, count: int) -> string there", order, StringComparison.Ordinal);

            Assert.Equal("3", await call("Price"));
        }
        finally
        {
            await DisposeAllAsync(nodes);
        }
    }
}
