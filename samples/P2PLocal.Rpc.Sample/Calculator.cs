using P2PLocal.Rpc;

namespace P2PLocal.Rpc.Sample;

/// <summary>A typed service: callers use the generated <c>ICalculator</c> proxy; kwargs are the parameter names.</summary>
[P2PService]
public partial class Calculator
{
    public int Multiply(int a, int b) => a * b;

    public async Task<long> SumAsync(int[] values, CancellationToken cancellationToken = default)
    {
        await Task.Yield();
        cancellationToken.ThrowIfCancellationRequested();
        return values.Sum(v => (long)v);
    }
}
