using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace P2PLocal.Rpc.Benchmarks;

/// <summary>Writes the markdown table (figures, then ratios to raw and to StreamJsonRpc) and the plot.</summary>
public static class Report
{
    private static readonly CultureInfo s_inv = CultureInfo.InvariantCulture;

    private sealed record Column(string Header, Func<ArmResult, double?> Value, string Format, bool HigherIsBetter);

    private static readonly Column[] s_columns =
    [
        new("p50 µs", r => r.P50Us, "0.0", false),
        new("p99 µs", r => r.P99Us, "0.0", false),
        new("seq calls/s", r => r.SequentialPerSecond, "#,0", true),
        .. Settings.InFlight.Select(n => new Column($"{n} in flight /s", r => r.PerSecondInFlight.GetValueOrDefault(n), "#,0", true)),
        new("alloc B/call", r => r.AllocatedPerCall, "#,0", false),
        new("wire B/call", r => r.WirePerCall, "#,0", false),
        new("1 KB p50 µs", r => r.PayloadP50Us, "0.0", false),
        new("1 KB alloc B/call", r => r.PayloadAllocatedPerCall, "#,0", false),
        new("1 KB wire B/call", r => r.PayloadWirePerCall, "#,0", false),
    ];

    public static void PrintLine(ArmResult result, TimeSpan took) =>
        Console.WriteLine(string.Create(s_inv,
            $"p50 {result.P50Us,7:0.0} µs  p99 {result.P99Us,7:0.0} µs  seq {result.SequentialPerSecond,8:#,0}/s  8 {result.PerSecondInFlight[8],8:#,0}/s  64 {result.PerSecondInFlight[64],8:#,0}/s  256 {result.PerSecondInFlight[256],8:#,0}/s  alloc {result.AllocatedPerCall,6:#,0} B  wire {result.WirePerCall,5:#,0} B  1KB p50 {result.PayloadP50Us,6:0.0} µs{(took > TimeSpan.Zero ? $"  ({took.TotalSeconds:0.0} s)" : "")}"));

    /// <summary>The 1-minute load average when the run began.</summary>
    public static string LoadAtStart { get; } = LoadAverage();

    public static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "n/a";

    public static string Machine()
    {
        var cpu = "unknown CPU";
        if (File.Exists("/proc/cpuinfo"))
        {
            cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? cpu;
        }

        return $"{cpu}, {Environment.ProcessorCount} logical cores, {RuntimeInformation.OSDescription}, {RuntimeInformation.FrameworkDescription}";
    }

    public static string Markdown(IReadOnlyList<ArmResult> arms, DiscoveryResult? discovery, IReadOnlyDictionary<string, (double Client, double Server)>? split, Settings settings, string command, IEnumerable<string> notes)
    {
        var md = new StringBuilder();
        md.AppendLine("# Benchmarks");
        md.AppendLine();
        md.AppendLine(s_inv, $"Run {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {(settings.Quick ? "**quick** mode (smoke test; numbers are noisy)" : $"full mode, median of {settings.Rounds} rounds")}, on {Machine()}.");
        md.AppendLine(s_inv, $"Load average (1 min) at the start and end of the run: {LoadAtStart} and {LoadAverage()}; a shared machine makes every figure noisy, compare arms within one run.");
        md.AppendLine(s_inv, $"Reproduce: `{command}`. All arms ran in this one process, one after another, on 127.0.0.1.");
        md.AppendLine();
        md.AppendLine("Figures are for `Greet(\"bench\") -> \"Hello, bench\"` unless the column says 1 KB (an echo of a ~1 KB `[MessagePackObject]`).");
        md.AppendLine();
        Table(md, arms, r => r is null ? "n/a" : null, (c, v) => v.ToString(c.Format, s_inv));

        var raw = arms.FirstOrDefault(a => a.Name == "raw");
        var sjr = arms.FirstOrDefault(a => a.Name == "streamjsonrpc");
        if (raw is not null)
        {
            md.AppendLine();
            md.AppendLine("## Ratio to `raw` (value / raw; below 1 is less time, bytes or calls/s than raw)");
            md.AppendLine();
            RatioTable(md, arms, raw);
        }

        if (sjr is not null)
        {
            md.AppendLine();
            md.AppendLine("## Ratio to `streamjsonrpc` (value / StreamJsonRpc)");
            md.AppendLine();
            RatioTable(md, arms, sjr);
        }

        if (discovery is not null)
        {
            md.AppendLine();
            md.AppendLine(s_inv, $"## Discovery ({discovery.SeenMs.Count} runs, fresh nodes and discovery port each run)");
            md.AppendLine();
            md.AppendLine("| figure | p50 ms | p99 ms | max ms |");
            md.AppendLine("|---|---:|---:|---:|");
            DiscoveryRow(md, "new peer seen (second node's `StartAsync` to `WaitForAsync` completing on the first)", discovery.SeenMs);
            DiscoveryRow(md, "goodbye removes the peer (`DisposeAsync` to the `Left` event)", discovery.GoodbyeMs);
            DiscoveryRow(md, $"start to first call ({discovery.FirstCallKind}: `StartAsync`, wait for the peer, connect, call)", discovery.FirstCallMs);
        }

        if (split is not null)
        {
            md.AppendLine();
            md.AppendLine("## Bytes allocated per Greet call, client and server apart");
            md.AppendLine();
            md.AppendLine("bob runs in a child process here, so each process's `GC.GetTotalAllocatedBytes(true)` delta is one side's alone (over the sequential batch).");
            md.AppendLine();
            md.AppendLine("| arm | client B/call | server B/call |");
            md.AppendLine("|---|---:|---:|");
            foreach (var (name, (client, server)) in split)
                md.AppendLine(s_inv, $"| `{name}` | {client:#,0} | {server:#,0} |");
        }

        md.AppendLine();
        md.AppendLine("## Targets (issue 4)");
        md.AppendLine();
        md.AppendLine("| target | measured | met |");
        md.AppendLine("|---|---|---|");
        foreach (var (target, measured, met) in Targets(arms, discovery, split))
            md.AppendLine(s_inv, $"| {target} | {measured} | {(met is null ? "n/a" : met.Value ? "yes" : "**no**")} |");

        md.AppendLine();
        md.AppendLine("## How it is measured");
        md.AppendLine();
        foreach (var note in notes)
            md.AppendLine(s_inv, $"- {note}");
        md.AppendLine();
        md.AppendLine("![Latency and throughput by arm](benchmarks.png)");
        return md.ToString();

        void RatioTable(StringBuilder sb, IReadOnlyList<ArmResult> rows, ArmResult baseline) =>
            Table(sb, rows, _ => null, (c, v) =>
            {
                var b = c.Value(baseline);
                return b is null or 0 ? "n/a" : (v / b.Value).ToString("0.00", s_inv) + "x";
            });
    }

    private static void Table(StringBuilder md, IReadOnlyList<ArmResult> arms, Func<double?, string?> missing, Func<Column, double, string> format)
    {
        md.Append("| arm |");
        foreach (var column in s_columns)
            md.Append(s_inv, $" {column.Header} |");
        md.AppendLine();
        md.Append("|---|");
        foreach (var _ in s_columns)
            md.Append("---:|");
        md.AppendLine();
        foreach (var arm in arms)
        {
            md.Append(s_inv, $"| `{arm.Name}` |");
            foreach (var column in s_columns)
            {
                var value = column.Value(arm);
                md.Append(s_inv, $" {(value is null ? missing(value) ?? "n/a" : format(column, value.Value))} |");
            }

            md.AppendLine();
        }
    }

    private static void DiscoveryRow(StringBuilder md, string label, List<double> samples)
    {
        if (samples.Count == 0)
            return;
        md.AppendLine(s_inv, $"| {label} | {Percentile(samples, 50):0.0} | {Percentile(samples, 99):0.0} | {samples.Max():0.0} |");
    }

    public static double Percentile(IReadOnlyList<double> samples, double percentile)
    {
        var sorted = samples.Order().ToArray();
        var rank = (int)Math.Ceiling(percentile / 100.0 * sorted.Length) - 1;
        return sorted[Math.Clamp(rank, 0, sorted.Length - 1)];
    }

    private static IEnumerable<(string Target, string Measured, bool? Met)> Targets(IReadOnlyList<ArmResult> arms, DiscoveryResult? discovery,
        IReadOnlyDictionary<string, (double Client, double Server)>? split)
    {
        ArmResult? Get(string name) => arms.FirstOrDefault(a => a.Name == name);
        var raw = Get("raw");
        var pipelined = Get("raw-pipelined");
        var sjr = Get("streamjsonrpc");
        var grpc = Get("grpc");
        var dynamic = Get("dynamic");
        var typed = Get("typed");
        var p2p = typed ?? dynamic;
        var label = typed is null ? "dynamic (no typed arm)" : "typed";
        if (p2p is null)
            yield break;

        var floor = new[] { raw?.P50Us, pipelined?.P50Us }.Where(v => v is > 0).Min();
        if (floor is not null)
            yield return ($"{label} p50 <= 1.3x the better raw p50", $"{p2p.P50Us:0.0} µs = {p2p.P50Us / floor:0.00}x of {floor:0.0} µs", p2p.P50Us <= 1.3 * floor);
        if (sjr is not null)
            yield return ($"{label} p50 below StreamJsonRpc's", $"{p2p.P50Us:0.0} vs {sjr.P50Us:0.0} µs", p2p.P50Us < sjr.P50Us);
        if (grpc is not null)
            yield return ($"{label} p50 below gRPC's", $"{p2p.P50Us:0.0} vs {grpc.P50Us:0.0} µs", p2p.P50Us < grpc.P50Us);
        var at64 = p2p.PerSecondInFlight.GetValueOrDefault(64);
        if (pipelined is not null)
        {
            var ceiling = pipelined.PerSecondInFlight.GetValueOrDefault(64);
            yield return ($"{label} calls/s at 64 in flight >= 0.8x raw-pipelined", $"{at64:#,0} = {at64 / ceiling:0.00}x of {ceiling:#,0}", at64 >= 0.8 * ceiling);
        }

        if (sjr is not null)
        {
            var theirs = sjr.PerSecondInFlight.GetValueOrDefault(64);
            yield return ($"{label} calls/s at 64 in flight >= 1.2x StreamJsonRpc", $"{at64:#,0} = {at64 / theirs:0.00}x of {theirs:#,0}", at64 >= 1.2 * theirs);
        }

        if (split is not null && split.TryGetValue(p2p.Name, out var sides))
            yield return ($"{label}: <= 512 B allocated per Greet on the client, and on the server", $"client {sides.Client:#,0} B, server {sides.Server:#,0} B", sides.Client <= 512 && sides.Server <= 512);
        else
            yield return ($"{label}: <= 512 B allocated per Greet, client and server each (here: both sides together <= 1024 B)",
                $"{p2p.AllocatedPerCall:#,0} B both sides", p2p.AllocatedPerCall <= 1024);
        if (typed is not null && dynamic is not null)
            yield return ("dynamic p50 within 1.5x typed", $"{dynamic.P50Us / typed.P50Us:0.00}x", dynamic.P50Us <= 1.5 * typed.P50Us);
        if (discovery is not null)
        {
            var seen = Percentile(discovery.SeenMs, 50);
            var bye = Percentile(discovery.GoodbyeMs, 50);
            var first = Percentile(discovery.FirstCallMs, 50);
            yield return ("new peer seen p50 <= 100 ms", $"{seen:0.0} ms", seen <= 100);
            yield return ("goodbye removes the peer <= 200 ms (p50)", $"{bye:0.0} ms", bye <= 200);
            yield return ($"start to first {discovery.FirstCallKind} call <= 50 ms (p50)", $"{first:0.0} ms", first <= 50);
        }
    }

    /// <summary>Draws p50/p99 latency and calls/s by in-flight count, one group per arm.</summary>
    public static void Plot(IReadOnlyList<ArmResult> arms, string path)
    {
        var multiplot = new ScottPlot.Multiplot();
        ScottPlot.IMultiplotExtensions.AddPlots(multiplot, 2);
        multiplot.Layout = new ScottPlot.MultiplotLayouts.Columns();
        var names = arms.Select(a => a.Name).ToArray();

        var latency = ScottPlot.IMultiplotExtensions.GetPlot(multiplot, 0);
        var palette = new ScottPlot.Palettes.Category10();
        var ticks = new List<ScottPlot.Tick>();
        for (var i = 0; i < arms.Count; i++)
        {
            // Log scale (p99 is often 10-100x p50): bars are log10(µs) and the axis labels say µs.
            latency.Add.Bar(new ScottPlot.Bar { Position = i * 3, Value = Math.Log10(Math.Max(arms[i].P50Us, 1)), FillColor = palette.GetColor(0) });
            latency.Add.Bar(new ScottPlot.Bar { Position = i * 3 + 1, Value = Math.Log10(Math.Max(arms[i].P99Us, 1)), FillColor = palette.GetColor(1) });
            ticks.Add(new ScottPlot.Tick(i * 3 + 0.5, names[i]));
        }

        latency.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual([.. ticks]);
        latency.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
        {
            MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
            IntegerTicksOnly = true,
            LabelFormatter = y => Math.Pow(10, y).ToString("#,0", s_inv),
        };
        latency.Axes.Margins(bottom: 0);
        latency.Title("Sequential Greet latency (µs, log scale; p50, p99)");
        latency.Legend.ManualItems.Add(new ScottPlot.LegendItem { LabelText = "p50", FillColor = palette.GetColor(0) });
        latency.Legend.ManualItems.Add(new ScottPlot.LegendItem { LabelText = "p99", FillColor = palette.GetColor(1) });
        latency.ShowLegend(ScottPlot.Alignment.UpperLeft);

        var throughput = ScottPlot.IMultiplotExtensions.GetPlot(multiplot, 1);
        ticks.Clear();
        var width = Settings.InFlight.Length + 1;
        for (var i = 0; i < arms.Count; i++)
        {
            for (var j = 0; j < Settings.InFlight.Length; j++)
            {
                throughput.Add.Bar(new ScottPlot.Bar
                {
                    Position = i * width + j,
                    Value = arms[i].PerSecondInFlight.GetValueOrDefault(Settings.InFlight[j]) / 1000,
                    FillColor = palette.GetColor(2 + j),
                });
            }

            ticks.Add(new ScottPlot.Tick(i * width + (Settings.InFlight.Length - 1) / 2.0, names[i]));
        }

        throughput.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual([.. ticks]);
        throughput.Axes.Margins(bottom: 0);
        throughput.Title("Greet throughput (thousand calls/s) by calls in flight");
        for (var j = 0; j < Settings.InFlight.Length; j++)
            throughput.Legend.ManualItems.Add(new ScottPlot.LegendItem { LabelText = $"{Settings.InFlight[j]} in flight", FillColor = palette.GetColor(2 + j) });
        throughput.ShowLegend(ScottPlot.Alignment.UpperLeft);

        ScottPlot.IMultiplotExtensions.SavePng(multiplot, path, 1600, 650);
    }
}
