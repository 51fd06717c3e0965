using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace P2PLocal.Rpc.Hosting.Tests;

/// <summary>Loopback-scope nodes and hosts, each test on its own port (<see cref="LoopbackPorts"/>; waits: <see cref="Patience"/>).</summary>
public static class TestNetwork
{
    public static NodeOptions Options(string name, int discoveryPort) => LoopbackNodes.Options(name, discoveryPort);

    public static Task<Node> StartNodeAsync(string name, int discoveryPort) => Node.StartAsync(Options(name, discoveryPort));

    /// <summary>A host whose node is configured from an in-memory "P2PLocal" section.</summary>
    public static HostApplicationBuilder HostBuilder(IDictionary<string, string?> settings)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(settings);
        return builder;
    }

    public static Dictionary<string, string?> Settings(string name, int discoveryPort) => new()
    {
        ["P2PLocal:Name"] = name,
        ["P2PLocal:Scope"] = "Loopback",
        ["P2PLocal:DiscoveryPort"] = discoveryPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["P2PLocal:ShutdownGracePeriod"] = "00:00:05",
    };

    public static P2PNodeBuilder AddNode(this HostApplicationBuilder builder) =>
        builder.Services.AddP2PNode(builder.Configuration.GetSection("P2PLocal"));
}
