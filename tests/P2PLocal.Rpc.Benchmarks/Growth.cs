using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;
using HdrHistogram;
using P2PLocal.Rpc.Benchmarks.Arms;
using P2PLocal.Rpc.Benchmarks.Typed;

namespace P2PLocal.Rpc.Benchmarks;

/// <summary>
/// How cost grows (issue 16): calling peers against one node, payload size, nodes on one discovery port, and memory
/// per idle peer and per idle connection. Every node is in this process, on loopback; each figure carries the load
/// average when it was taken, since the machine is shared.
/// </summary>
public static class Growth
{
    public const int LoopsPerPeer = 4;
    public static readonly int[] Peers = [1, 10, 50];
    public static readonly int[] PayloadSizes = [1024, 64 * 1024, 1024 * 1024];
    public static readonly int[] NodeCounts = [10, 50, 200];
    private static readonly TimeSpan s_patience = TimeSpan.FromSeconds(60);

    public sealed record PeerFigure(int Peers, double PerSecond, double P50Us, double P99Us, double ConnectionBytes, string Load);

    public sealed record PayloadFigure(int Bytes, double P50Us, double MegabytesPerSecond, string Load);

    public sealed record DiscoveryFigure(int Nodes, double AllSeeAllMs, double DatagramsSentPerSecond, double DatagramsReceivedPerSecond, double CpuPercent, double PeerBytes, string Load);

    public sealed record Result(List<PeerFigure> Peers, List<PayloadFigure> Payloads, List<DiscoveryFigure> Discovery);

    public static async Task<Result> RunAsync(TimeSpan slice, bool peersOnly = false)
    {
        var result = new Result([], [], []);
        foreach (var n in Peers)
        {
            result.Peers.Add(await CallingPeersAsync(n, slice));
            Console.WriteLine($"  {result.Peers[^1]}");
        }

        if (peersOnly)
            return result;

        result.Payloads.AddRange(await PayloadsAsync(slice));
        foreach (var p in result.Payloads)
            Console.WriteLine($"  {p}");
        foreach (var n in NodeCounts)
        {
            result.Discovery.Add(await DiscoveryAsync(n));
            Console.WriteLine($"  {result.Discovery[^1]}");
        }

        return result;
    }

    private static NodeOptions Options(string name, int port) => LoopbackNodes.Options(name, port);

    /// <summary>n caller nodes, each with <see cref="LoopsPerPeer"/> loops greeting bob; also the heap per idle connection.</summary>
    private static async Task<PeerFigure> CallingPeersAsync(int n, TimeSpan slice)
    {
        var port = LoopbackNodes.FreeUdpPort();
        await using var bob = await Node.StartAsync(Options("bob", port));
        TypedArms.Register(bob);
        var callers = await Task.WhenAll(Enumerable.Range(0, n).Select(i => Node.StartAsync(Options($"caller{i}", port))));
        try
        {
            await Task.WhenAll(callers.Select(c => c.Peers.WaitForAsync("bob").WaitAsync(s_patience)));
            var greeters = callers.Select(c => c.Peers.Get<IGreeter>("bob")).ToArray();
            var before = Heap();
            foreach (var g in greeters)
                await g.GreetAsync("connect"); // one connection per caller, then idle
            var connectionBytes = (Heap() - before) / (double)n;

            var histogram = new LongHistogram(Stopwatch.Frequency * 10, 3);
            var gate = new object();
            await LoadAsync(greeters, slice / 3, null, gate); // warm-up
            var (calls, elapsed) = await LoadAsync(greeters, slice, histogram, gate);
            return new PeerFigure(n, calls / elapsed.TotalSeconds, Us(histogram.GetValueAtPercentile(50)), Us(histogram.GetValueAtPercentile(99)), connectionBytes, Report.LoadAverage());
        }
        finally
        {
            await Task.WhenAll(callers.Select(c => c.DisposeAsync().AsTask()));
        }
    }

    private static async Task<(long Calls, TimeSpan Elapsed)> LoadAsync(IGreeter[] greeters, TimeSpan duration, LongHistogram? histogram, object gate)
    {
        var stop = 0;
        long calls = 0;
        var started = Stopwatch.GetTimestamp();
        var loops = greeters.SelectMany((g, i) => Enumerable.Range(0, LoopsPerPeer).Select(j => Task.Run(async () =>
        {
            var name = string.Create(CultureInfo.InvariantCulture, $"p{i}l{j}");
            var local = new LongHistogram(Stopwatch.Frequency * 10, 3);
            long count = 0;
            while (Volatile.Read(ref stop) == 0)
            {
                var t0 = Stopwatch.GetTimestamp();
                if (await g.GreetAsync(name) != "Hello, " + name)
                    throw new InvalidOperationException("A reply reached the wrong caller.");
                local.RecordValue(Stopwatch.GetTimestamp() - t0);
                count++;
            }

            Interlocked.Add(ref calls, count);
            if (histogram is not null)
            {
                lock (gate)
                    histogram.Add(local);
            }
        }))).ToArray();
        await Task.Delay(duration);
        Volatile.Write(ref stop, 1);
        await Task.WhenAll(loops);
        return (calls, Stopwatch.GetElapsedTime(started));
    }

    /// <summary>Bounce(byte[]) of each size: sequential p50, and MB/s (request and reply bytes) with 4 calls in flight.</summary>
    private static async Task<List<PayloadFigure>> PayloadsAsync(TimeSpan slice)
    {
        var port = LoopbackNodes.FreeUdpPort();
        await using var bob = await Node.StartAsync(Options("bob", port));
        bob.Register(new Bouncer());
        await using var alice = await Node.StartAsync(Options("alice", port));
        await alice.Peers.WaitForAsync("bob").WaitAsync(s_patience);
        var bouncer = alice.Peers.Get<IBouncer>("bob");
        var figures = new List<PayloadFigure>();
        foreach (var size in PayloadSizes)
        {
            var data = new byte[size];
            Random.Shared.NextBytes(data);
            var count = Math.Max(20, 200_000 / (size / 1024 + 1) / 10);
            for (var i = 0; i < count / 4; i++)
                await bouncer.BounceAsync(data);
            var histogram = new LongHistogram(Stopwatch.Frequency * 10, 3);
            for (var i = 0; i < count; i++)
            {
                var t0 = Stopwatch.GetTimestamp();
                var back = await bouncer.BounceAsync(data);
                histogram.RecordValue(Stopwatch.GetTimestamp() - t0);
                if (back.Length != size)
                    throw new InvalidOperationException("Bounce answered wrongly.");
            }

            var stop = 0;
            long calls = 0;
            var started = Stopwatch.GetTimestamp();
            var loops = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
            {
                while (Volatile.Read(ref stop) == 0)
                {
                    await bouncer.BounceAsync(data);
                    Interlocked.Increment(ref calls);
                }
            })).ToArray();
            await Task.Delay(slice);
            Volatile.Write(ref stop, 1);
            await Task.WhenAll(loops);
            var megabytes = calls * 2.0 * size / (1024 * 1024);
            figures.Add(new PayloadFigure(size, Us(histogram.GetValueAtPercentile(50)), megabytes / Stopwatch.GetElapsedTime(started).TotalSeconds, Report.LoadAverage()));
        }

        return figures;
    }

    /// <summary>
    /// n nodes on one discovery port: time until each knows the other n-1, then beacons and CPU over two advertise
    /// intervals of idling; heap per peer entry against the same n nodes each alone on its own port.
    /// </summary>
    private static async Task<DiscoveryFigure> DiscoveryAsync(int n)
    {
        var alone = await Task.WhenAll(Enumerable.Range(0, n).Select(i => Node.StartAsync(Options($"alone{i}", LoopbackNodes.FreeUdpPort()))));
        var aloneHeap = Heap();
        await Task.WhenAll(alone.Select(a => a.DisposeAsync().AsTask()));
        alone = null;

        var port = LoopbackNodes.FreeUdpPort();
        var started = Stopwatch.GetTimestamp();
        var nodes = await Task.WhenAll(Enumerable.Range(0, n).Select(i => Node.StartAsync(Options($"node{i}", port))));
        try
        {
            var deadline = Stopwatch.GetTimestamp() + (long)(s_patience.TotalSeconds * Stopwatch.Frequency);
            while (nodes.Any(x => x.Peers.Count < n - 1))
            {
                if (Stopwatch.GetTimestamp() > deadline)
                    throw new TimeoutException($"{n} nodes did not all see each other within {s_patience.TotalSeconds} s.");
                await Task.Delay(5);
            }

            var allSeeAll = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            var peerBytes = (Heap() - aloneHeap) / (double)(n * (n - 1));

            long sent = 0, received = 0;
            using var listener = new MeterListener();
            listener.InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == "P2PLocal.Rpc" && instrument.Name is "p2plocal.beacons.sent" or "p2plocal.beacons.received")
                    l.EnableMeasurementEvents(instrument);
            };
            listener.SetMeasurementEventCallback<long>((instrument, value, _, _) =>
            {
                if (instrument.Name == "p2plocal.beacons.sent")
                    Interlocked.Add(ref sent, value);
                else
                    Interlocked.Add(ref received, value);
            });
            listener.Start();
            using var process = Process.GetCurrentProcess();
            var cpuBefore = process.TotalProcessorTime;
            var window = Stopwatch.StartNew();
            await Task.Delay(2 * Options("x", port).AdvertiseInterval);
            process.Refresh();
            var seconds = window.Elapsed.TotalSeconds;
            var cpu = (process.TotalProcessorTime - cpuBefore).TotalSeconds / seconds * 100;
            return new DiscoveryFigure(n, allSeeAll, Interlocked.Read(ref sent) / seconds, Interlocked.Read(ref received) / seconds, cpu, peerBytes, Report.LoadAverage());
        }
        finally
        {
            await Task.WhenAll(nodes.Select(x => x.DisposeAsync().AsTask()));
        }
    }

    private static long Heap()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return GC.GetTotalMemory(true);
    }

    private static double Us(long ticks) => ticks * 1_000_000.0 / Stopwatch.Frequency;
}
