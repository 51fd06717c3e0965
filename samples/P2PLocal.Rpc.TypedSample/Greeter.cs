using MessagePack;

namespace P2PLocal.Rpc.TypedSample;

[MessagePackObject]
public sealed class Trip
{
    [Key(0)]
    public string From { get; set; } = "";

    [Key(1)]
    public string To { get; set; } = "";

    [Key(2)]
    public List<string> Stops { get; set; } = [];
}

/// <summary>The service: the generator adds IGreeter, a dispatcher and a proxy.</summary>
[P2PService]
public partial class Greeter
{
    private static readonly TaskCompletionSource<bool> s_cancelled = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes with true once a WaitAsync call was cancelled by its caller.</summary>
    public static Task<bool> Cancelled => s_cancelled.Task;

    public string Greet(string name) =>
        name.Length == 0 ? throw new ArgumentException("A name is needed.", nameof(name)) : $"Hello, {name}";

    public async Task<int> AddAsync(int a, int b = 1, CancellationToken cancellationToken = default)
    {
        await Task.Yield();
        return a + b;
    }

    public Task<string[]> PlanAsync(Trip trip) => Task.FromResult<string[]>([trip.From, .. trip.Stops, trip.To]);

    public async Task WaitAsync(CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }
        catch (OperationCanceledException)
        {
            s_cancelled.TrySetResult(true);
            throw;
        }
    }
}
