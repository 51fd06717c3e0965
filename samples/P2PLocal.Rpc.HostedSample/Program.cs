// A node inside the .NET Generic Host: options from appsettings.json (loopback scope), a [P2PService] built by
// dependency injection, and a function given as a delegate. A second, plain node calls both, then the host stops
// (goodbye sent, calls drained). Pass --serve to keep serving until Ctrl+C. Nothing leaves 127.0.0.0/8.
//   dotnet run --project samples/P2PLocal.Rpc.HostedSample [--serve] [--P2PLocal:DiscoveryPort=47481]
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using P2PLocal.Rpc;
using P2PLocal.Rpc.HostedSample;
using P2PLocal.Rpc.Hosting;

// appsettings.json is copied beside the program, so it is found whatever the current directory.
var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.Services.AddSingleton(TimeProvider.System);
builder.Services.AddSingleton<ForecastSource>();
builder.Services.AddP2PNode(builder.Configuration.GetSection("P2PLocal"))
    .AddService<Forecaster>()
    .AddFunction("echo", kwargs => kwargs["text"]);

using var host = builder.Build();
await host.StartAsync();                                   // returns once the node serves both functions
var node = host.Services.GetRequiredService<Node>();
Console.WriteLine($"'{node.Name}' serves {string.Join(", ", node.Functions.Select(f => f.Name))} on {node.ServiceEndPoint}");

if (args.Contains("--serve"))
{
    await host.WaitForShutdownAsync();
    return;
}

// A caller in the same process, on the same loopback discovery port.
var options = host.Services.GetRequiredService<IOptions<P2PNodeOptions>>().Value;
await using (var caller = await Node.StartAsync(new NodeOptions { Name = "caller", Scope = DiscoveryScope.Loopback, DiscoveryPort = options.DiscoveryPort }))
{
    await caller.Peers.WaitForAsync(node.Name).WaitAsync(TimeSpan.FromSeconds(10));
    var forecaster = caller.Peers.Get<IForecaster>(node.Name);
    Console.WriteLine($"Forecast(\"Oslo\")      -> {forecaster.Forecast("Oslo")}");
    Console.WriteLine($"Forecast(\"Bergen\", 3) -> {forecaster.Forecast("Bergen", 3)}");
    Console.WriteLine($"echo(text=\"hi\")       -> {await caller.RequestAsync("weather", "echo", new Dictionary<string, object?> { ["text"] = "hi" })}");
}

await host.StopAsync();
Console.WriteLine("host stopped: goodbye sent");
