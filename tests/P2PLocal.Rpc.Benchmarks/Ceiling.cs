using System.Diagnostics;
using System.Globalization;
using System.Text;
using P2PLocal.Rpc.Benchmarks.Arms;

namespace P2PLocal.Rpc.Benchmarks;

/// <summary>
/// Throughput against the raw pipelined ceiling (issue 16): every arm started at once, then short slices of each arm in
/// turn, round after round, so a shared machine's load swings hit every arm alike. Besides calls/s it reports the
/// process CPU time per call, which a loaded machine moves far less than wall-clock rates.
/// </summary>
public static class Ceiling
{
    public const string Ceiling_ = "raw-pipelined";

    /// <summary>The ceiling's loops speaking the library's wire format: the most any implementation of the format reaches.</summary>
    public const string FormatCeiling = "format-pipelined";

    public sealed record Figure(string Arm, int InFlight, double PerSecond, double CpuUsPerCall);

    public static async Task<IReadOnlyList<Figure>> RunAsync(IReadOnlyList<IArm> arms, int[] inFlights, int rounds, TimeSpan slice)
    {
        var callers = new Dictionary<string, ICaller[]>();
        foreach (var arm in arms)
        {
            await arm.StartAsync();
            var list = new ICaller[inFlights.Max()];
            for (var i = 0; i < list.Length; i++)
                list[i] = await arm.CreateCallerAsync();
            callers[arm.Name] = list;
            await Runner.RunLoopsAsync(list, TimeSpan.FromMilliseconds(300)); // warm-up: tiered JIT
        }

        var samples = new Dictionary<(string, int), List<(double Rate, double Cpu)>>();
        using var process = Process.GetCurrentProcess();
        for (var round = 0; round < rounds; round++)
        {
            foreach (var n in inFlights)
            {
                foreach (var arm in arms)
                {
                    var loops = callers[arm.Name][..n];
                    await Runner.RunLoopsAsync(loops, slice / 4);
                    process.Refresh();
                    var cpuBefore = process.TotalProcessorTime;
                    var (calls, elapsed) = await Runner.RunLoopsAsync(loops, slice);
                    process.Refresh();
                    var cpu = process.TotalProcessorTime - cpuBefore;
                    (samples.TryGetValue((arm.Name, n), out var s) ? s : samples[(arm.Name, n)] = []).Add((calls / elapsed.TotalSeconds, cpu.TotalMicroseconds / calls));
                }
            }
        }

        return [.. samples.Select(s => new Figure(s.Key.Item1, s.Key.Item2,
            Report.Percentile([.. s.Value.Select(v => v.Rate)], 50), Report.Percentile([.. s.Value.Select(v => v.Cpu)], 50)))];
    }

    public static string Markdown(IReadOnlyList<Figure> figures, int rounds, TimeSpan slice, string loadBefore, string loadAfter, double floorCpuUs)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"Median of {rounds} rounds of {slice.TotalMilliseconds:0} ms slices per arm, arms interleaved; load average (1 min) {loadBefore} before and {loadAfter} after. CPU µs/call is this process's CPU time (client and server together) over the calls.");
        text.AppendLine();
        text.AppendLine("| arm | in flight | calls/s | ratio to raw-pipelined | ratio to format-pipelined | CPU µs/call | CPU ratio |");
        text.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
        foreach (var group in figures.GroupBy(f => f.InFlight).OrderBy(g => g.Key))
        {
            var ceiling = group.FirstOrDefault(f => f.Arm == Ceiling_);
            var format = group.FirstOrDefault(f => f.Arm == FormatCeiling);
            foreach (var f in group)
            {
                text.AppendLine(CultureInfo.InvariantCulture,
                    $"| `{f.Arm}` | {f.InFlight} | {f.PerSecond:#,0} | {Ratio(f.PerSecond, ceiling?.PerSecond)} | {Ratio(f.PerSecond, format?.PerSecond)} | {f.CpuUsPerCall:0.00} | {Ratio(f.CpuUsPerCall, ceiling?.CpuUsPerCall)} |");
            }
        }

        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Codec floor (`CodecFloor`: the least any implementation of the wire format must add per call to what the ceiling does, the request and result written and read on one thread without transport): **{floorCpuUs:0.000} CPU µs/call**. What each arm spends per call beyond the ceiling, and the floor's share of it (the rest is the library's own machinery, not the format):");
        text.AppendLine();
        text.AppendLine("| arm | in flight | CPU µs/call beyond the ceiling | codec floor's share |");
        text.AppendLine("|---|---:|---:|---:|");
        foreach (var group in figures.GroupBy(f => f.InFlight).OrderBy(g => g.Key))
        {
            if (group.FirstOrDefault(f => f.Arm == Ceiling_) is not { } ceiling)
                continue;
            foreach (var f in group.Where(f => f.Arm != Ceiling_))
            {
                var beyond = f.CpuUsPerCall - ceiling.CpuUsPerCall;
                text.AppendLine(CultureInfo.InvariantCulture,
                    $"| `{f.Arm}` | {f.InFlight} | {beyond:0.00} | {(beyond > 0 ? (floorCpuUs / beyond).ToString("0%", CultureInfo.InvariantCulture) : "n/a")} |");
            }
        }

        return text.ToString();
    }

    private static string Ratio(double value, double? of) =>
        of is { } denominator ? (value / denominator).ToString("0.00x", CultureInfo.InvariantCulture) : "n/a";
}
