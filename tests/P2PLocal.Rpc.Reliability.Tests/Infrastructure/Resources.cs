namespace P2PLocal.Rpc.Reliability.Tests;

/// <summary>Counts of what a leak would grow: open descriptors (sockets included), threads, timers, managed memory.</summary>
public readonly record struct Resources(int Descriptors, int Sockets, int Threads, long Timers, long ManagedBytes)
{
    public static Resources Measure()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        var fds = Directory.GetFiles("/proc/self/fd");
        var sockets = 0;
        foreach (var fd in fds)
        {
            try
            {
                if (new FileInfo(fd).LinkTarget?.StartsWith("socket:", StringComparison.Ordinal) == true)
                    sockets++;
            }
            catch (IOException)
            {
                // The descriptor closed while we looked.
            }
        }

        using var self = System.Diagnostics.Process.GetCurrentProcess();
        return new Resources(fds.Length, sockets, self.Threads.Count, Timer.ActiveCount, GC.GetTotalMemory(forceFullCollection: true));
    }

    public override string ToString() =>
        $"fds={Descriptors} sockets={Sockets} threads={Threads} timers={Timers} managed={ManagedBytes / 1024} KiB";
}

/// <summary>Tests that count process-wide resources run alone, after the parallel ones.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class Serial
{
    public const string Name = "Serial (counts process-wide resources)";
}
