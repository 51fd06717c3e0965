// A node in its own process, for tests that kill, restart or isolate a node (see tests/P2PLocal.Rpc.Reliability.Tests).
//
//   dotnet P2PLocal.Rpc.TestHost.dll --name NAME --port DISCOVERY_PORT [--scope loopback|lan]
//        [--functions echo,slow,throw,hang,whoami,jobs] [--interval-ms N] [--service-port N] [--ran-file PATH]
//
// Prints `READY <servicePort> <instanceId>` once it serves, then answers one command per stdin line:
//   wait <peer>                      -> SEEN <peer> <endpoint> <instance>
//   call <peer> <function> [value]   -> RESULT <value>   or   ERROR <exceptionType> <message>
//   peers                            -> PEERS <count> <name,name,...>
// Closing stdin shuts the node down gracefully (goodbye sent), prints BYE and exits 0.
using System.Globalization;
using P2PLocal.Rpc;

var settings = ParseArgs(args);
if (!settings.TryGetValue("name", out var name) || !settings.TryGetValue("port", out var portText))
{
    Console.Error.WriteLine("usage: --name NAME --port DISCOVERY_PORT [--scope loopback|lan] [--functions echo,slow,throw,hang,whoami] [--interval-ms N] [--service-port N] [--network-key-file PATH]");
    return 2;
}

var options = new NodeOptions
{
    Name = name,
    DiscoveryPort = int.Parse(portText, CultureInfo.InvariantCulture),
    // "lan" is used only by the LAN test, which runs this host inside network namespaces it created (ip netns exec).
    Scope = settings.GetValueOrDefault("scope", "loopback") == "lan" ? DiscoveryScope.Lan : DiscoveryScope.Loopback,
    AdvertiseInterval = TimeSpan.FromMilliseconds(int.Parse(settings.GetValueOrDefault("interval-ms", "1000"), CultureInfo.InvariantCulture)),
    ServicePort = int.Parse(settings.GetValueOrDefault("service-port", "0"), CultureInfo.InvariantCulture),
    ShutdownGracePeriod = TimeSpan.FromSeconds(2),
    // Secure mode (issue 10): the network key is read from a file, never passed on the command line.
    Security = settings.TryGetValue("network-key-file", out var keyFile) ? NodeSecurity.SharedKey(File.ReadAllText(keyFile).Trim()) : NodeSecurity.Open,
};

await using var node = await Node.StartAsync(options);
foreach (var function in settings.GetValueOrDefault("functions", "echo,whoami").Split(',', StringSplitOptions.RemoveEmptyEntries))
{
    switch (function)
    {
        case "echo":
            node.Register("echo", kwargs => kwargs.GetValueOrDefault("value"));
            break;
        case "whoami":
            node.Register("whoami", _ => $"{node.Name}/{node.InstanceId}");
            break;
        case "slow":
            node.Register("slow", async (kwargs, ct) =>
            {
                await Task.Delay(TimeSpan.FromMilliseconds(Convert.ToInt64(kwargs.GetValueOrDefault("ms") ?? 60_000L, CultureInfo.InvariantCulture)), ct);
                return node.InstanceId;
            });
            break;
        case "throw":
            node.Register("throw", kwargs => throw new InvalidOperationException($"thrown on purpose: {kwargs.GetValueOrDefault("value")}"));
            break;
        case "jobs":
            // Issue 14: a [P2PService] contract for Peers.Any<T>; every call is logged to --ran-file before it runs.
            node.Register<P2PLocal.Rpc.TestHost.Contracts.IKillableJobs>(new P2PLocal.Rpc.TestHost.KillableJobs(node.Name, settings["ran-file"]));
            break;
        case "hang":
            node.Register("hang", async (_, _) =>
            {
                await Task.Delay(Timeout.Infinite, CancellationToken.None);
                return null;
            });
            break;
        default:
            Console.Error.WriteLine($"unknown function set '{function}'");
            return 2;
    }
}

Console.WriteLine($"READY {node.ServiceEndPoint.Port} {node.InstanceId}");

// Commands run concurrently so a slow call does not block the next line.
var running = new List<Task>();
string? line;
while ((line = await Console.In.ReadLineAsync()) is not null)
{
    var parts = line.Split(' ', 4, StringSplitOptions.RemoveEmptyEntries);
    if (parts.Length == 0)
        continue;
    running.Add(Task.Run(() => RunCommandAsync(node, parts)));
}

await node.DisposeAsync();
Reply("BYE");
return 0;

static async Task RunCommandAsync(Node node, string[] parts)
{
    try
    {
        switch (parts[0])
        {
            case "wait" when parts.Length == 2:
                var peer = await node.Peers.WaitForAsync(parts[1]).WaitAsync(TimeSpan.FromSeconds(60));
                Reply($"SEEN {peer.Name} {peer.EndPoint} {peer.InstanceId}");
                break;
            case "call" when parts.Length >= 3:
                var kwargs = parts.Length == 4 ? new Dictionary<string, object?> { ["value"] = parts[3] } : null;
                var result = await node.RequestAsync(parts[1], parts[2], kwargs);
                Reply($"RESULT {result}");
                break;
            case "peers":
                var names = node.Peers.Select(p => p.Name).Order(StringComparer.Ordinal).ToList();
                Reply($"PEERS {names.Count} {string.Join(',', names)}");
                break;
            default:
                Reply($"ERROR ArgumentException unknown command '{string.Join(' ', parts)}'");
                break;
        }
    }
    catch (Exception e)
    {
        Reply($"ERROR {e.GetType().Name} {e.Message.ReplaceLineEndings(" ")}");
    }
}

static void Reply(string line)
{
    lock (Console.Out)
    {
        Console.Out.WriteLine(line);
        Console.Out.Flush();
    }
}

static Dictionary<string, string> ParseArgs(string[] args)
{
    var settings = new Dictionary<string, string>(StringComparer.Ordinal);
    for (var i = 0; i + 1 < args.Length; i += 2)
    {
        if (args[i].StartsWith("--", StringComparison.Ordinal))
            settings[args[i][2..]] = args[i + 1];
    }

    return settings;
}
