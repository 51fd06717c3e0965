using System.Collections.Concurrent;

namespace P2PLocal.Rpc.Generators.Tests.Services;

/// <summary>A contract served by several nodes at once, for calls to any peer (issue 14).</summary>
[P2PService]
public interface IJobs
{
    /// <summary>Not idempotent: a call must run at most once.</summary>
    Task<string> RunAsync(int job, CancellationToken cancellationToken = default);

    /// <summary>Idempotent: may be sent again to another peer after a lost connection.</summary>
    [P2PFunction(Idempotent = true)]
    Task<string> LookAsync(int job, CancellationToken cancellationToken = default);
}

/// <summary>Counts how often each job ran here; <see cref="Hold"/> lets a test keep calls running.</summary>
public sealed class Jobs(string name) : IJobs
{
    public ConcurrentDictionary<int, int> Runs { get; } = new();

    public ConcurrentDictionary<int, int> Looks { get; } = new();

    /// <summary>Awaited by every call while set: a test holds calls with it.</summary>
    public Func<int, CancellationToken, Task>? Hold { get; set; }

    public async Task<string> RunAsync(int job, CancellationToken cancellationToken = default)
    {
        Runs.AddOrUpdate(job, 1, static (_, n) => n + 1);
        if (Hold is { } hold)
            await hold(job, cancellationToken);
        return name;
    }

    public async Task<string> LookAsync(int job, CancellationToken cancellationToken = default)
    {
        Looks.AddOrUpdate(job, 1, static (_, n) => n + 1);
        if (Hold is { } hold)
            await hold(job, cancellationToken);
        return name;
    }
}
