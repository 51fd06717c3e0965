using System.Diagnostics;
using System.Globalization;
using P2PLocal.Rpc;
using P2PLocal.Rpc.Benchmarks;
using P2PLocal.Rpc.Benchmarks.Arms;

// Usage: dotnet run -c Release --project tests/P2PLocal.Rpc.Benchmarks -- [--load ARM [--seconds S] [--in-flight N]] [--quick] [--arms raw,dynamic,...] [--out DIR] [--no-discovery] [--no-split] [--no-streams] [--rounds N]
if (Option("--serve-bob") is { } bobPort)
{
    await AllocationSplit.ServeBobAsync(int.Parse(bobPort, CultureInfo.InvariantCulture));
    return 0;
}

var quick = args.Contains("--quick");
if (Option("--load") is { } loaded)
{
    // For a CPU profiler: keep 64 Greet calls (or --in-flight N) in flight on one arm for the given seconds.
    await using var loadedArm = AllArms().Select(f => f()).First(a => a.Name == loaded);
    await loadedArm.StartAsync();
    var seconds = double.Parse(Option("--seconds") ?? "10", CultureInfo.InvariantCulture);
    var inFlight = int.Parse(Option("--in-flight") ?? "64", CultureInfo.InvariantCulture);
    var perSecond = await Runner.LoadAsync(loadedArm, inFlight, TimeSpan.FromSeconds(seconds));
    Console.WriteLine($"{loaded}: {perSecond:#,0} calls/s with {inFlight} in flight for {seconds} s");
    return 0;
}

if (Option("--ceiling") is { } ceilingRounds)
{
    // Issue 16: typed arms against the raw pipelined ceiling, interleaved; --arms picks the arms (raw-pipelined first).
    var names = Option("--arms")?.Split(',') ?? ["raw-pipelined", "typed", "typed-inline"];
    var arms = names.Select(n => AllArms().Select(f => f()).First(a => a.Name == n)).ToList();
    var slice = TimeSpan.FromMilliseconds(double.Parse(Option("--slice-ms") ?? "300", CultureInfo.InvariantCulture));
    var loadBefore = Report.LoadAverage();
    var figures = await Ceiling.RunAsync(arms, [64, 256], int.Parse(ceilingRounds, CultureInfo.InvariantCulture), slice);
    var floor = CodecFloor.MeasureCpuUsPerCall(TimeSpan.FromSeconds(2));
    var ceilingText = Ceiling.Markdown(figures, int.Parse(ceilingRounds, CultureInfo.InvariantCulture), slice, loadBefore, Report.LoadAverage(), floor);
    Console.Write(ceilingText);
    foreach (var arm in arms)
        await arm.DisposeAsync();
    if (Option("--out") is { } ceilingOut)
        Sections.Write(Path.Combine(ceilingOut, "benchmarks.md"), "ceiling", "## Against the raw pipelined ceiling (issue 16)\n\n" +
            $"`dotnet run -c Release --project tests/P2PLocal.Rpc.Benchmarks -- --ceiling {ceilingRounds} --arms {string.Join(',', names)}`. " + ceilingText);
    return 0;
}

if (args.Contains("--growth"))
{
    var growthOut = Option("--out") ?? Path.Combine(FindRepoRoot(), "docs");
    var growth = await Growth.RunAsync(TimeSpan.FromMilliseconds(double.Parse(Option("--slice-ms") ?? "1000", CultureInfo.InvariantCulture)), args.Contains("--peers-only"));
    if (args.Contains("--peers-only"))
        return 0;
    Sections.Write(Path.Combine(growthOut, "benchmarks.md"), "growth", GrowthReport.Markdown(growth));
    try
    {
        GrowthReport.Plot(growth, Path.Combine(growthOut, "benchmarks-growth.png"));
    }
    catch (Exception e) when (e is TypeInitializationException or DllNotFoundException)
    {
        Console.Error.WriteLine($"The plot could not be drawn (SkiaSharp native assets?): {e.Message}");
    }

    return 0;
}

if (Option("--alloc-profile") is { } profiled)
{
    await using (var profiledArm = AllArms().Select(f => f()).First(a => a.Name == profiled))
        await AllocationProfile.RunAsync(profiledArm, 200_000);
    return 0;
}

var settings = new Settings(quick, Option("--rounds") is { } r ? int.Parse(r, CultureInfo.InvariantCulture) : null);
var only = Option("--arms")?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
var outDir = Option("--out") ?? Path.Combine(FindRepoRoot(), "docs");
Directory.CreateDirectory(outDir);


var total = Stopwatch.StartNew();
_ = Report.LoadAtStart;
var rounds = new Dictionary<string, List<ArmResult>>();
for (var round = 1; round <= settings.Rounds; round++)
{
    if (settings.Rounds > 1)
        Console.WriteLine($"round {round} of {settings.Rounds}");
    foreach (var factory in AllArms())
    {
        await using var arm = factory();
        if (only is not null && !only.Contains(arm.Name))
            continue;
        Console.Write($"{arm.Name,-15} ");
        var started = Stopwatch.StartNew();
        await arm.StartAsync();
        var result = await Runner.RunAsync(arm, settings);
        (rounds.TryGetValue(arm.Name, out var list) ? list : rounds[arm.Name] = []).Add(result);
        Report.PrintLine(result, started.Elapsed);
    }
}

var results = rounds.Values.Select(Runner.Median).ToList();
if (settings.Rounds > 1)
{
    Console.WriteLine("median over rounds");
    foreach (var result in results)
    {
        Console.Write($"{result.Name,-15} ");
        Report.PrintLine(result, TimeSpan.Zero);
    }
}

DiscoveryResult? discovery = null;
if (!args.Contains("--no-discovery"))
{
    Console.Write("discovery       ");
    DiscoveryBench.RegisterGreet = TypedArms.Register;
    discovery = await DiscoveryBench.RunAsync(settings, TypedArms.FirstCall, TypedArms.FirstCall is null ? "dynamic" : "typed");
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"seen p50 {Report.Percentile(discovery.SeenMs, 50):0.0} ms p99 {Report.Percentile(discovery.SeenMs, 99):0.0} ms  " +
        $"goodbye p50 {Report.Percentile(discovery.GoodbyeMs, 50):0.0} ms  first call p50 {Report.Percentile(discovery.FirstCallMs, 50):0.0} ms"));
}

Dictionary<string, (double Client, double Server)>? split = null;
if (!args.Contains("--no-split"))
{
    Console.Write("alloc split     ");
    var splitCallers = new Dictionary<string, Func<Node, Func<ValueTask>>>
    {
        ["dynamic"] = alice => async () => await alice.RequestAsync("bob", "Greet", new Dictionary<string, object?> { ["name"] = "bench" }),
    };
    foreach (var (name, caller) in TypedArms.SplitCallers)
        splitCallers[name] = caller;
    split = await AllocationSplit.MeasureAsync(settings, splitCallers);
    Console.WriteLine(string.Join("  ", split.Select(s => string.Create(CultureInfo.InvariantCulture, $"{s.Key}: client {s.Value.Client:#,0} B server {s.Value.Server:#,0} B"))));
}

string? streamNote = null;
if (!args.Contains("--no-streams"))
{
    Console.Write("streams         ");
    streamNote = StreamBench.Describe(await StreamBench.RunAsync(settings));
    Console.WriteLine(streamNote);
}

string? firstCallNote = null;
if (!args.Contains("--no-first-call"))
{
    // Issue 10: the first call on a new connection, TLS handshake included, beside the open one.
    var count = quick ? 10 : 40;
    var openFirst = await SecureArms.FirstCallMsAsync(NodeSecurity.Open, count);
    var secureFirst = await SecureArms.FirstCallMsAsync(SecureArms.Security, count);
    firstCallNote = string.Create(CultureInfo.InvariantCulture,
        $"First call on a new connection (connect, hello, one Greet; {count} fresh callers each): open p50 {Report.Percentile(openFirst, 50):0.00} ms, " +
        $"secure (TLS 1.3 handshake with mutual authentication) p50 {Report.Percentile(secureFirst, 50):0.00} ms, ratio {Report.Percentile(secureFirst, 50) / Report.Percentile(openFirst, 50):0.0}x.");
    Console.WriteLine(firstCallNote);
}

string[] notes =
[
    "Latency: one caller, calls one after another after a warm-up; each call timed with `Stopwatch` into an HdrHistogram (3 significant digits). `seq calls/s` is the same loop's count over its time.",
    "`N in flight`: N loops each keep one call outstanding for a fixed time after a warm-up. `raw` gives each loop its own connection; every other arm shares one connection (one channel for gRPC).",
    "`alloc B/call`: `GC.GetTotalAllocatedBytes(true)` delta over the sequential batch divided by the calls. Client and server run in this process, so the figure is **both sides together** (plus anything else the process allocated meanwhile, which is negligible over the batch).",
    "`wire B/call`: TCP payload bytes sent plus received by the caller's socket, from the kernel's per-socket counters (`ss -ti`, Linux), over 1000 calls; TCP/IP headers are not counted. n/a where `ss` is missing.",
    "`raw` does no serialization for Greet (UTF-8 name in, `Hello, ` + name out) and echoes the 1 KB payload's bytes (the client serializes it with MessagePack). `raw-pipelined` is the ceiling: one connection, no thread hop anywhere (the server answers all frames of one read with one send; the client resumes each caller on its read loop and sends the requests they queue with one send per read).",
    "`dynamic` is `node.RequestAsync(\"bob\", \"Greet\", new Dictionary<string, object?> { [\"name\"] = name })`; its 1 KB echo sends the payload as a kwarg and reads the result with `RequestAsync<Payload>`. `streamjsonrpc` is `JsonRpc.InvokeAsync<T>` with `MessagePackFormatter` and `LengthHeaderMessageHandler`. `grpc` converts the payload to and from its protobuf message on the client.",
    "Discovery: loopback scope, a fresh UDP discovery port per run; nodes announce on start, so no beacon interval is waited for.",
    "`typed` awaits the generated proxy's async method (`await Peers.Get<IGreeter>(\"bob\").GreetAsync(name)`, wire name `Greet`), so the in-flight loops do not block pool threads; every P2P arm sends the same request bytes.",
    "`legacy` is `dynamic` over XML-RPC (issue 13): bob serves with `LegacyInterop`, alice sees him through a Python-style beacon, and every call is one HTTP/1.0 connection carrying XML, as with the Python p2p-local; its 1 KB echo sends the timestamp in seconds (XML-RPC has no 64-bit integers). Its wire figure counts no socket that lives past one call.",
    "Every in-flight loop greets its own name and checks its reply, so no arm can score by mixing up replies. The allocation split runs bob (and a typed bob) in a child process.",
    "`secure-typed` and `secure-dynamic` are the typed and dynamic arms with `NodeSecurity.SharedKey`: the same frames inside TLS 1.3 (SslStream, mutual authentication).",
    .. (firstCallNote is null ? Array.Empty<string>() : [firstCallNote]),
    .. (streamNote is null ? Array.Empty<string>() : [streamNote]),
];
var command = "dotnet run -c Release --project tests/P2PLocal.Rpc.Benchmarks" + (quick ? " -- --quick" : "");
var markdown = Report.Markdown(results, discovery, split, settings, command, notes);
var reportPath = Path.Combine(outDir, "benchmarks.md");
await File.WriteAllTextAsync(reportPath, markdown + Sections.Carried(reportPath));
try
{
    Report.Plot(results, Path.Combine(outDir, "benchmarks.png"));
}
catch (Exception e) when (e is TypeInitializationException or DllNotFoundException)
{
    Console.Error.WriteLine($"The plot could not be drawn (SkiaSharp native assets?): {e.Message}");
}

Console.WriteLine($"Wrote {Path.Combine(outDir, "benchmarks.md")} and benchmarks.png in {total.Elapsed.TotalSeconds:0} s");
return 0;

static IEnumerable<Func<IArm>> AllArms() =>
[
    () => new RawArm(),
    () => new RawPipelinedArm(),
    () => new FormatPipelinedArm(),
    () => new DynamicArm(),
    () => new StreamJsonRpcArm(),
    () => new GrpcArm(),
    .. TypedArms.Factories,
    () => new SecureTypedArm(),
    () => new SecureDynamicArm(),
    () => new LegacyArm(),
];

string? Option(string name)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}

static string FindRepoRoot()
{
    for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
    {
        if (File.Exists(Path.Combine(dir.FullName, "P2PLocal.Rpc.sln")))
            return dir.FullName;
    }

    return Directory.GetCurrentDirectory();
}
