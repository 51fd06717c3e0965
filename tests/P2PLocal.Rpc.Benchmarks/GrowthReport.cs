using System.Globalization;
using System.Text;

namespace P2PLocal.Rpc.Benchmarks;

/// <summary>The cost growth tables and their plot (docs/benchmarks-growth.png).</summary>
public static class GrowthReport
{
    private static readonly CultureInfo s_inv = CultureInfo.InvariantCulture;

    public static string Markdown(Growth.Result r)
    {
        var md = new StringBuilder();
        md.AppendLine("## How cost grows (issue 16)");
        md.AppendLine();
        md.AppendLine(s_inv, $"Run {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC with `dotnet run -c Release --project tests/P2PLocal.Rpc.Benchmarks -- --growth`; every node in one process on loopback (discovery scope Loopback), {Environment.ProcessorCount} logical cores shared with other work. The load average (1 min) in each row was read as that row's figure was taken.");
        md.AppendLine();
        Table(md, $"### Calling peers against one node (typed `Greet`, {Growth.LoopsPerPeer} calls in flight per peer, one connection each)",
            "| calling peers | calls in flight | calls/s | p50 µs | p99 µs | heap per idle connection (both ends) | load |",
            r.Peers.Select(p => string.Create(s_inv, $"| {p.Peers} | {p.Peers * Growth.LoopsPerPeer} | {p.PerSecond:#,0} | {p.P50Us:#,0.0} | {p.P99Us:#,0.0} | {p.ConnectionBytes / 1024:#,0.0} KiB | {p.Load} |")));
        Table(md, "### Payload size (typed `Bounce(byte[])` echo; MB/s counts request and reply bytes, 4 calls in flight)",
            "| payload | p50 µs (sequential) | MB/s | load |",
            r.Payloads.Select(p => string.Create(s_inv, $"| {Size(p.Bytes)} | {p.P50Us:#,0.0} | {p.MegabytesPerSecond:#,0.0} | {p.Load} |")));
        Table(md, "### Nodes on one discovery port (default 3 s advertise interval; beacons counted by the `p2plocal.beacons.*` metrics over two intervals of idling)",
            "| nodes | all see all (ms from the first start) | beacons sent/s | datagrams received/s (all nodes) | CPU % of one core (idle, all nodes) | heap per idle peer entry | load |",
            r.Discovery.Select(d => string.Create(s_inv, $"| {d.Nodes} | {d.AllSeeAllMs:#,0} | {d.DatagramsSentPerSecond:#,0.0} | {d.DatagramsReceivedPerSecond:#,0} | {d.CpuPercent:0.0} | {d.PeerBytes:#,0} B | {d.Load} |")));
        md.AppendLine("Heap figures are `GC.GetTotalMemory(true)` deltas: per idle connection, before and after each caller's first call (client and server objects together, kernel socket buffers not included); per idle peer entry, n nodes on one port against the same n nodes each alone on its own port, divided by the n(n-1) entries.");
        md.AppendLine();
        md.AppendLine("![How cost grows](benchmarks-growth.png)");
        return md.ToString();
    }

    /// <summary>A titled table whose columns are all right-aligned.</summary>
    private static void Table(StringBuilder md, string title, string header, IEnumerable<string> rows)
    {
        md.AppendLine(title).AppendLine().AppendLine(header);
        md.AppendLine(string.Concat(Enumerable.Repeat("|---:", header.Count(c => c == '|') - 1)) + "|");
        foreach (var row in rows)
            md.AppendLine(row);
        md.AppendLine();
    }

    private static string Size(int bytes) => bytes >= 1024 * 1024 ? $"{bytes / (1024 * 1024)} MB" : $"{bytes / 1024} KB";

    public static void Plot(Growth.Result r, string path)
    {
        var multiplot = new ScottPlot.Multiplot();
        ScottPlot.IMultiplotExtensions.AddPlots(multiplot, 6);
        multiplot.Layout = new ScottPlot.MultiplotLayouts.Grid(2, 3);
        Panel(0, "Calls/s (thousands) by calling peers", r.Peers.Select(p => (double)p.Peers), r.Peers.Select(p => p.PerSecond / 1000), logX: true);
        Panel(1, "p99 µs by calling peers", r.Peers.Select(p => (double)p.Peers), r.Peers.Select(p => p.P99Us), logX: true);
        Panel(2, "MB/s by payload (KB, log)", r.Payloads.Select(p => p.Bytes / 1024.0), r.Payloads.Select(p => p.MegabytesPerSecond), logX: true);
        Panel(3, "p50 µs by payload (KB, log; µs log)", r.Payloads.Select(p => p.Bytes / 1024.0), r.Payloads.Select(p => p.P50Us), logX: true, logY: true);
        Panel(4, "Datagrams received/s by nodes on one port", r.Discovery.Select(d => (double)d.Nodes), r.Discovery.Select(d => d.DatagramsReceivedPerSecond), logX: true);
        Panel(5, "Idle CPU % (one core) by nodes on one port", r.Discovery.Select(d => (double)d.Nodes), r.Discovery.Select(d => d.CpuPercent), logX: true);
        ScottPlot.IMultiplotExtensions.SavePng(multiplot, path, 1500, 800);

        void Panel(int index, string title, IEnumerable<double> xs, IEnumerable<double> ys, bool logX = false, bool logY = false)
        {
            var plot = ScottPlot.IMultiplotExtensions.GetPlot(multiplot, index);
            var x = xs.ToArray();
            var y = ys.ToArray();
            var scatter = plot.Add.Scatter(logX ? x.Select(Math.Log10).ToArray() : x, logY ? y.Select(v => Math.Log10(Math.Max(v, 1e-3))).ToArray() : y);
            scatter.MarkerSize = 8;
            if (logX)
                plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual([.. x.Select(v => new ScottPlot.Tick(Math.Log10(v), v.ToString("#,0", s_inv)))]);
            if (logY)
            {
                plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
                {
                    IntegerTicksOnly = true,
                    LabelFormatter = v => Math.Pow(10, v).ToString("#,0", s_inv),
                };
            }

            plot.Title(title);
        }
    }
}
