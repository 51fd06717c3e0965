using System.Diagnostics.Tracing;
using P2PLocal.Rpc.Benchmarks.Arms;

namespace P2PLocal.Rpc.Benchmarks;

/// <summary>
/// Which types a call allocates, from the runtime's sampled AllocationTick events (one per ~100 KB allocated), over
/// many sequential calls of one arm, client and server together. For profiling; <c>--alloc-profile ARM</c>.
/// </summary>
public sealed class AllocationProfile : EventListener
{
    private readonly Dictionary<string, long> _bytesByType = [];
    private bool _recording;

    protected override void OnEventSourceCreated(EventSource eventSource)
    {
        if (eventSource.Name == "Microsoft-Windows-DotNETRuntime")
            EnableEvents(eventSource, EventLevel.Verbose, (EventKeywords)0x1); // GC keyword: AllocationTick
    }

    protected override void OnEventWritten(EventWrittenEventArgs eventData)
    {
        if (!_recording || eventData.EventName != "GCAllocationTick_V4" || eventData.Payload is null)
            return;
        var type = eventData.Payload[eventData.PayloadNames!.IndexOf("TypeName")] as string ?? "?";
        var amount = Convert.ToInt64(eventData.Payload[eventData.PayloadNames!.IndexOf("AllocationAmount64")], System.Globalization.CultureInfo.InvariantCulture);
        lock (_bytesByType)
            _bytesByType[type] = _bytesByType.GetValueOrDefault(type) + amount;
    }

    public static async Task RunAsync(IArm arm, int calls)
    {
        await arm.StartAsync();
        var caller = await arm.CreateCallerAsync();
        for (var i = 0; i < 5_000; i++)
            await caller.GreetAsync("bench");
        using var profile = new AllocationProfile();
        profile._recording = true;
        var before = GC.GetTotalAllocatedBytes(true);
        for (var i = 0; i < calls; i++)
            await caller.GreetAsync("bench");
        var total = GC.GetTotalAllocatedBytes(true) - before;
        profile._recording = false;
        Console.WriteLine($"{arm.Name}: {total / (double)calls:0} B/call over {calls} calls; sampled by type (B/call, approximate):");
        lock (profile._bytesByType)
        {
            foreach (var (type, bytes) in profile._bytesByType.OrderByDescending(p => p.Value).Take(25))
                Console.WriteLine($"  {bytes / (double)calls,8:0.0}  {type}");
        }
    }
}
