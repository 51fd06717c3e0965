using System.Diagnostics;
using HdrHistogram;
using P2PLocal.Rpc.Benchmarks.Arms;

namespace P2PLocal.Rpc.Benchmarks;

public sealed record Settings(bool Quick, int? RoundsOverride = null)
{
    public int WarmupCalls => Quick ? 2_000 : 5_000;
    public TimeSpan WarmupTime => TimeSpan.FromMilliseconds(Quick ? 300 : 1_000);
    public int SequentialCalls => Quick ? 5_000 : 20_000;
    public int PayloadCalls => Quick ? 1_000 : 3_000;
    public TimeSpan ThroughputWarmup => TimeSpan.FromMilliseconds(Quick ? 150 : 300);
    public TimeSpan ThroughputDuration => TimeSpan.FromMilliseconds(Quick ? 500 : 1_000);

    /// <summary>Rounds over every arm; each figure reported is the median over the rounds (the machine is shared).</summary>
    public int Rounds => RoundsOverride ?? (Quick ? 1 : 3);
    public const int WireCalls = 1_000;
    public const int DiscoveryRuns = 20;
    public static readonly int[] InFlight = [1, 8, 64, 256];
}

/// <summary>Every figure measured for one arm.</summary>
public sealed class ArmResult
{
    public required string Name { get; init; }
    public double P50Us { get; set; }
    public double P99Us { get; set; }
    public double SequentialPerSecond { get; set; }
    public Dictionary<int, double> PerSecondInFlight { get; } = [];
    public double AllocatedPerCall { get; set; }
    public double? WirePerCall { get; set; }
    public double PayloadP50Us { get; set; }
    public double PayloadAllocatedPerCall { get; set; }
    public double? PayloadWirePerCall { get; set; }
}

public static class Runner
{
    /// <summary>The median of each figure over rounds of the same arm.</summary>
    public static ArmResult Median(IReadOnlyList<ArmResult> rounds)
    {
        static double Mid(IEnumerable<double> values) => Report.Percentile([.. values], 50);
        static double? MidOrNull(IEnumerable<double?> values) => values.All(v => v is null) ? null : Mid(values.Where(v => v is not null).Select(v => v!.Value));
        var merged = new ArmResult
        {
            Name = rounds[0].Name,
            P50Us = Mid(rounds.Select(r => r.P50Us)),
            P99Us = Mid(rounds.Select(r => r.P99Us)),
            SequentialPerSecond = Mid(rounds.Select(r => r.SequentialPerSecond)),
            AllocatedPerCall = Mid(rounds.Select(r => r.AllocatedPerCall)),
            WirePerCall = MidOrNull(rounds.Select(r => r.WirePerCall)),
            PayloadP50Us = Mid(rounds.Select(r => r.PayloadP50Us)),
            PayloadAllocatedPerCall = Mid(rounds.Select(r => r.PayloadAllocatedPerCall)),
            PayloadWirePerCall = MidOrNull(rounds.Select(r => r.PayloadWirePerCall)),
        };
        foreach (var n in Settings.InFlight)
            merged.PerSecondInFlight[n] = Mid(rounds.Select(r => r.PerSecondInFlight[n]));
        return merged;
    }

    private const string Name = "bench";

    public static async Task<ArmResult> RunAsync(IArm arm, Settings settings)
    {
        var result = new ArmResult { Name = arm.Name };
        var caller = await arm.CreateCallerAsync();
        var payload = Payload.Sample();
        if (await caller.GreetAsync(Name) != "Hello, " + Name)
            throw new InvalidOperationException($"{arm.Name}: Greet answered wrongly.");
        var echoed = await caller.EchoAsync(payload);
        if (echoed.Description != payload.Description || echoed.Values.Length != payload.Values.Length)
            throw new InvalidOperationException($"{arm.Name}: Echo answered wrongly.");

        // Warm up by count and by time, so tiered JIT has promoted the hot path before anything is timed.
        var warmupStarted = Stopwatch.GetTimestamp();
        for (var i = 0; i < settings.WarmupCalls || Stopwatch.GetElapsedTime(warmupStarted) < settings.WarmupTime; i++)
            await caller.GreetAsync(Name);
        for (var i = 0; i < settings.PayloadCalls / 5; i++)
            await caller.EchoAsync(payload);

        // Sequential latency; the allocation figure is the process-wide delta over the same calls (client and server).
        var histogram = new LongHistogram(Stopwatch.Frequency * 10, 3);
        Collect();
        var allocatedBefore = GC.GetTotalAllocatedBytes(true);
        var started = Stopwatch.GetTimestamp();
        for (var i = 0; i < settings.SequentialCalls; i++)
        {
            var t0 = Stopwatch.GetTimestamp();
            await caller.GreetAsync(Name);
            histogram.RecordValue(Stopwatch.GetTimestamp() - t0);
        }

        var elapsed = Stopwatch.GetElapsedTime(started);
        result.AllocatedPerCall = (GC.GetTotalAllocatedBytes(true) - allocatedBefore) / (double)settings.SequentialCalls;
        result.P50Us = TicksToUs(histogram.GetValueAtPercentile(50));
        result.P99Us = TicksToUs(histogram.GetValueAtPercentile(99));
        result.SequentialPerSecond = settings.SequentialCalls / elapsed.TotalSeconds;

        // The ~1 KB payload, sequential.
        var payloadHistogram = new LongHistogram(Stopwatch.Frequency * 10, 3);
        Collect();
        allocatedBefore = GC.GetTotalAllocatedBytes(true);
        for (var i = 0; i < settings.PayloadCalls; i++)
        {
            var t0 = Stopwatch.GetTimestamp();
            await caller.EchoAsync(payload);
            payloadHistogram.RecordValue(Stopwatch.GetTimestamp() - t0);
        }

        result.PayloadAllocatedPerCall = (GC.GetTotalAllocatedBytes(true) - allocatedBefore) / (double)settings.PayloadCalls;
        result.PayloadP50Us = TicksToUs(payloadHistogram.GetValueAtPercentile(50));

        // Bytes on the wire: the kernel's counters for the caller's socket, around a batch of calls.
        if (WireCounter.IsAvailable)
        {
            var before = WireCounter.Read(arm.ServerPort);
            for (var i = 0; i < Settings.WireCalls; i++)
                await caller.GreetAsync(Name);
            var after = WireCounter.Read(arm.ServerPort);
            result.WirePerCall = (after - before) / (double)Settings.WireCalls;
            before = after;
            for (var i = 0; i < Settings.WireCalls; i++)
                await caller.EchoAsync(payload);
            after = WireCounter.Read(arm.ServerPort);
            result.PayloadWirePerCall = (after - before) / (double)Settings.WireCalls;
        }

        foreach (var inFlight in Settings.InFlight)
            result.PerSecondInFlight[inFlight] = await ThroughputAsync(arm, caller, inFlight, settings);
        return result;
    }

    /// <summary>Calls/s with <paramref name="inFlight"/> loops each keeping one call outstanding.</summary>
    private static async Task<double> ThroughputAsync(IArm arm, ICaller shared, int inFlight, Settings settings)
    {
        var callers = new ICaller[inFlight];
        callers[0] = shared;
        for (var i = 1; i < inFlight; i++)
            callers[i] = await arm.CreateCallerAsync();

        await RunLoopsAsync(callers, settings.ThroughputWarmup);
        Collect();
        var (calls, elapsed) = await RunLoopsAsync(callers, settings.ThroughputDuration);
        return calls / elapsed.TotalSeconds;
    }

    /// <summary>Load for a profiler: <paramref name="inFlight"/> loops for <paramref name="duration"/>.</summary>
    public static async Task<double> LoadAsync(IArm arm, int inFlight, TimeSpan duration)
    {
        var callers = new ICaller[inFlight];
        for (var i = 0; i < inFlight; i++)
            callers[i] = await arm.CreateCallerAsync();
        var (calls, elapsed) = await RunLoopsAsync(callers, duration);
        return calls / elapsed.TotalSeconds;
    }

    internal static async Task<(long Calls, TimeSpan Elapsed)> RunLoopsAsync(ICaller[] callers, TimeSpan duration)
    {
        var stop = 0;
        long calls = 0;
        var started = Stopwatch.GetTimestamp();
        var loops = callers.Select((caller, i) => Task.Run(async () =>
        {
            // Each loop greets its own name and checks the reply, so a stack that mixes up replies cannot score.
            var name = Name + i.ToString(System.Globalization.CultureInfo.InvariantCulture);
            var expected = "Hello, " + name;
            long n = 0;
            while (Volatile.Read(ref stop) == 0)
            {
                if (!string.Equals(await caller.GreetAsync(name), expected, StringComparison.Ordinal))
                    throw new InvalidOperationException($"A reply reached the wrong caller (expected '{expected}').");
                n++;
            }

            Interlocked.Add(ref calls, n);
        })).ToArray();
        await Task.Delay(duration);
        Volatile.Write(ref stop, 1);
        await Task.WhenAll(loops);
        return (calls, Stopwatch.GetElapsedTime(started));
    }

    private static void Collect()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }

    private static double TicksToUs(long ticks) => ticks * 1_000_000.0 / Stopwatch.Frequency;
}
