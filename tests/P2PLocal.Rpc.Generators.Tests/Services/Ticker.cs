using System.Runtime.CompilerServices;

namespace P2PLocal.Rpc.Generators.Tests.Services;

/// <summary>Streaming functions (issue 14): an async iterator, one of [MessagePackObject] items, one that never ends.</summary>
[P2PService]
public partial class Ticker
{
    /// <summary>Completes when a call of <see cref="Forever"/> saw its token fire.</summary>
    public TaskCompletionSource ForeverStopped { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public async IAsyncEnumerable<int> Count(int from, int count = 10, [EnumeratorCancellation] CancellationToken ct = default)
    {
        for (var i = 0; i < count; i++)
        {
            await Task.Yield();
            yield return from + i;
        }
    }

    public async IAsyncEnumerable<Forecast> Forecasts(string[] cities, [EnumeratorCancellation] CancellationToken ct = default)
    {
        foreach (var city in cities)
        {
            await Task.Yield();
            yield return new Forecast { City = city, Temperatures = [city.Length] };
        }
    }

    public async IAsyncEnumerable<long> Forever([EnumeratorCancellation] CancellationToken ct = default)
    {
        using var registration = ct.Register(() => ForeverStopped.TrySetResult());
        for (var i = 0L; ; i++)
        {
            await Task.Yield();
            yield return i;
        }
    }
}
