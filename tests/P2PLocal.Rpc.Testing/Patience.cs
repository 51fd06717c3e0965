using System.Diagnostics;
using Xunit;

namespace P2PLocal.Rpc.Testing;

/// <summary>
/// Waits with a generous safety net. When the net catches a wait, the test fails with
/// <see cref="PatienceExceededException"/>, never with a <see cref="TimeoutException"/>: a test that expects the
/// library's own timeout must not pass on the harness's (issue 17).
/// </summary>
public static class Patience
{
    /// <summary>The safety net: a healthy machine finishes every awaited step long before it.</summary>
    public static readonly TimeSpan Limit = TimeSpan.FromSeconds(30);

    /// <summary>Awaits <paramref name="task"/> for at most <see cref="Limit"/>.</summary>
    /// <exception cref="PatienceExceededException">The task did not finish within <see cref="Limit"/>.</exception>
    public static async Task<T> Within<T>(this Task<T> task)
    {
        try
        {
            return await task.WaitAsync(Limit);
        }
        catch (TimeoutException) when (!task.IsCompleted)
        {
            throw new PatienceExceededException(Limit);
        }
    }

    /// <inheritdoc cref="Within{T}(Task{T})"/>
    public static async Task Within(this Task task)
    {
        try
        {
            await task.WaitAsync(Limit);
        }
        catch (TimeoutException) when (!task.IsCompleted)
        {
            throw new PatienceExceededException(Limit);
        }
    }

    /// <summary>Waits until <paramref name="condition"/> holds, checking every 10 ms, for at most <see cref="Limit"/>.</summary>
    /// <exception cref="PatienceExceededException">It did not hold within <see cref="Limit"/>.</exception>
    public static async Task Until(Func<bool> condition)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > Limit)
                throw new PatienceExceededException(Limit);
            await Task.Delay(10);
        }
    }

    /// <summary>
    /// Asserts that <paramref name="call"/> fails with the library's request timeout: a <see cref="TimeoutException"/>
    /// whose message names the function and the configured timeout, after about <paramref name="requestTimeout"/>
    /// (at least 0.8x, at most 3x + 1 s: a tenfold regression fails, a loaded machine does not).
    /// </summary>
    /// <param name="call">The call, started at most a few milliseconds before, or at <paramref name="startedAt"/>.</param>
    /// <param name="function">The function the call names.</param>
    /// <param name="requestTimeout">The caller's configured <c>RequestTimeout</c>.</param>
    /// <param name="startedAt">When the call was started (<see cref="Stopwatch.GetTimestamp"/>); now when null.</param>
    /// <returns>How long the call took to fail.</returns>
    public static async Task<TimeSpan> AssertRequestTimeoutAsync(Task call, string function, TimeSpan requestTimeout, long? startedAt = null)
    {
        var start = startedAt ?? Stopwatch.GetTimestamp();
        var error = await Assert.ThrowsAsync<TimeoutException>(() => call.Within());
        var elapsed = Stopwatch.GetElapsedTime(start);
        Assert.Contains($"did not answer '{function}' within {requestTimeout.TotalMilliseconds:0} ms", error.Message, StringComparison.Ordinal);
        Assert.InRange(elapsed, requestTimeout * 0.8, (requestTimeout * 3) + TimeSpan.FromSeconds(1));
        return elapsed;
    }
}

/// <summary>The test harness's own patience ran out: the awaited work never finished. Deliberately not a <see cref="TimeoutException"/>.</summary>
public sealed class PatienceExceededException(TimeSpan patience, string what)
    : Exception($"The test gave up after its {patience.TotalSeconds:0} s safety net: {what}")
{
    /// <summary>The awaited task never finished within <paramref name="patience"/>.</summary>
    public PatienceExceededException(TimeSpan patience)
        : this(patience, "the awaited task never finished.")
    {
    }
}
